//! Embedding fido in a host wgpu application: the host owns the device and queue, and fido
//! runs its kernels on them.
//!
//! `cargo run --example borrowed_device`

use fido::ops::{elementwise, matmul};
use fido::{Gpu, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    // The host's own set-up, exactly as any wgpu application does it.
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("host device"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;

    // Hand fido clones of the handles; the host keeps using its own.
    let gpu = Gpu::from_device(device.clone(), queue.clone(), adapter.get_info());
    println!("fido runs on the host's device: {}", gpu.adapter_name());

    let a = Tensor::from_slice(&gpu, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])?;
    let b = Tensor::from_slice(&gpu, &[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0])?;
    let c = matmul::matmul(&a, &b, false, false)?;
    let d = elementwise::relu(&elementwise::add_scalar(&c, -5.0)?)?;
    let result = d.to_vec()?;
    println!("relu(a·b − 5) = {result:?}");
    assert_eq!(result, vec![0.0, 0.0, 5.0, 6.0]);

    // fido's tensors are plain wgpu buffers the host can bind in its own pipelines.
    let host_copy = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("host copy"),
        size: d.bytes(),
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(d.buffer(), 0, &host_copy, 0, d.bytes());
    queue.submit(Some(encoder.finish()));
    host_copy
        .slice(..)
        .map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let bytes = host_copy.get_mapped_range(..)?.to_vec();
    let copied: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
    assert_eq!(copied, result);
    println!("the host read the same values from fido's buffer with its own commands");
    Ok(())
}
