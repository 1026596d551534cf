//! The runtime: buffer pool reuse, pipeline caching, batched submissions, adapter errors.

mod common;

use common::gpu;
use fido::gpu::{fold_grid, Grid};
use fido::ops::batchnorm::{self, BatchNormParams};
use fido::ops::elementwise::{self as ew, UnaryOp};
use fido::{AdapterChoice, AdapterSelector, DType, Error, Tensor};

#[test]
fn buffers_return_to_the_pool_and_are_reused() {
    let gpu = gpu();
    let x = Tensor::from_slice(&gpu, &[1000], &vec![1.0; 1000]).unwrap();
    let mut before = gpu.pool_stats();
    for round in 0..21 {
        if round == 1 {
            // The first round fills the pool; from here on nothing new may be created.
            gpu.sync().unwrap();
            before = gpu.pool_stats();
        }
        let y = ew::exp(&x).unwrap();
        let z = ew::add(&y, &x).unwrap();
        drop((y, z));
        gpu.flush();
    }
    gpu.sync().unwrap();
    let after = gpu.pool_stats();
    assert_eq!(
        after.created, before.created,
        "steady state allocates nothing: {before:?} -> {after:?}"
    );
    assert!(after.reused > before.reused);
}

/// A size nobody asks for again is released after MAX_IDLE_FLUSHES submissions, while the
/// sizes a loop reuses every submission stay.
#[test]
fn idle_buffers_are_released_and_busy_ones_kept() {
    let gpu = gpu();
    let x = Tensor::from_slice(&gpu, &[1000], &vec![1.0; 1000]).unwrap();
    let one_off = Tensor::zeros(&gpu, &[123_457]).unwrap();
    drop(one_off);
    gpu.sync().unwrap();
    let idle = gpu.pool_stats().bytes_idle;
    assert!(
        idle >= 4 * 123_457,
        "the one-off buffer waits in the pool: {idle}"
    );
    let mut warm = None;
    for round in 0..=fido::gpu::pool::MAX_IDLE_FLUSHES + 2 {
        let y = ew::exp(&x).unwrap();
        drop(y);
        gpu.sync().unwrap();
        if round == 0 {
            warm = Some(gpu.pool_stats());
        }
    }
    let (warm, after) = (warm.unwrap(), gpu.pool_stats());
    assert_eq!(
        after.created, warm.created,
        "the loop's own buffer is kept: {warm:?} -> {after:?}"
    );
    assert!(
        after.released > warm.released,
        "the idle one is released: {warm:?} -> {after:?}"
    );
    assert!(after.bytes_idle < 4 * 123_457, "{after:?}");
}

#[test]
fn pipelines_are_compiled_once() {
    let gpu = gpu();
    let x = Tensor::from_slice(&gpu, &[10], &[0.5; 10]).unwrap();
    ew::exp(&x).unwrap();
    let compiled = gpu.pipelines_compiled();
    for _ in 0..50 {
        ew::exp(&x).unwrap();
    }
    assert_eq!(gpu.pipelines_compiled(), compiled);
    ew::unary(&x, UnaryOp::Tanh).unwrap();
    assert_eq!(
        gpu.pipelines_compiled(),
        compiled + 1,
        "a new override constant is a new pipeline"
    );
}

#[test]
fn many_dispatches_go_in_one_submission() {
    let gpu = gpu();
    let mut x = Tensor::from_slice(&gpu, &[64], &[0.0; 64]).unwrap();
    gpu.sync().unwrap();
    let before = gpu.submissions();
    for _ in 0..100 {
        x = ew::add_scalar(&x, 1.0).unwrap();
    }
    assert_eq!(
        gpu.submissions(),
        before,
        "nothing is submitted until a flush or a read"
    );
    assert_eq!(x.to_vec().unwrap(), vec![100.0; 64]);
    assert_eq!(
        gpu.submissions(),
        before + 1,
        "the whole chain and the readback are one submission"
    );
}

#[test]
fn per_dispatch_parameters_do_not_leak_between_batched_dispatches() {
    // Each dispatch has its own parameter slot; a shared uniform buffer would make every
    // dispatch in the batch see the last scalar.
    let gpu = gpu();
    let x = Tensor::from_slice(&gpu, &[8], &[1.0; 8]).unwrap();
    let outs: Vec<_> = (0..10).map(|i| ew::mul_scalar(&x, i as f32).unwrap()).collect();
    for (i, o) in outs.iter().enumerate() {
        assert_eq!(o.to_vec().unwrap(), vec![i as f32; 8]);
    }
}

#[test]
fn in_place_updates_see_earlier_batched_work() {
    let gpu = gpu();
    let x = Tensor::from_slice(&gpu, &[5], &[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    ew::unary_into(&x, UnaryOp::MulScalar(2.0), &x).unwrap();
    ew::unary_into(&x, UnaryOp::AddScalar(1.0), &x).unwrap();
    assert_eq!(x.to_vec().unwrap(), vec![3.0, 5.0, 7.0, 9.0, 11.0]);
    // Odd length takes the scalar path; broadcasting in place accumulates a row into each row.
    let m = Tensor::from_slice(&gpu, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let row = Tensor::from_slice(&gpu, &[3], &[10.0, 20.0, 30.0]).unwrap();
    ew::binary_into(&m, &row, fido::ops::elementwise::BinaryOp::Add, &m).unwrap();
    ew::unary_into(&m, UnaryOp::Neg, &m).unwrap();
    assert_eq!(
        m.to_vec().unwrap(),
        vec![-11.0, -22.0, -33.0, -14.0, -25.0, -36.0]
    );
    let v = Tensor::from_slice(&gpu, &[4], &[1.0; 4]).unwrap();
    let w = Tensor::from_slice(&gpu, &[4], &[2.0; 4]).unwrap();
    ew::binary_into(&v, &w, fido::ops::elementwise::BinaryOp::Mul, &v).unwrap();
    assert_eq!(v.to_vec().unwrap(), vec![2.0; 4]);
    // Aliasing the second operand is refused with an error, not a device fault.
    assert!(ew::binary_into(&v, &w, fido::ops::elementwise::BinaryOp::Sub, &w).is_err());
}

#[test]
fn grid_folding_covers_every_workgroup() {
    for n in [1u32, 65535, 65536, 65537, 1 << 20, 4_000_001] {
        let [x, y, z] = fold_grid(n, 65535);
        assert!(x <= 65535 && y <= 65535 && z == 1);
        assert!(x as u64 * y as u64 >= n as u64, "{n}: {x}×{y}");
        assert!(
            (x as u64 * y as u64) < n as u64 + x as u64,
            "{n}: at most one partial row"
        );
    }
}

#[test]
fn oversized_grids_and_tensors_are_errors() {
    let gpu = gpu();
    let t = Tensor::zeros(&gpu, &[4]).unwrap();
    let params = BatchNormParams {
        items: 4,
        channels: 1,
        plane: 4,
        eps: 1e-5,
    };
    let one = Tensor::zeros(&gpu, &[1]).unwrap();
    let err = gpu.launch(
        &batchnorm::KERNEL,
        "batch_norm",
        &[],
        &params,
        &[
            ("x", &t),
            ("gamma", &one),
            ("beta", &one),
            ("mean", &one),
            ("variance", &one),
            ("y", &t),
        ],
        Grid::Xyz(70000, 1, 1),
    );
    assert!(matches!(err, Err(Error::InvalidArgument(_))), "{err:?}");
    let too_big = gpu.max_binding_bytes() as usize / 4 + 1;
    assert!(matches!(
        Tensor::empty(&gpu, &[too_big], DType::F32),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn unknown_adapter_names_list_the_available_ones() {
    let choice = AdapterChoice {
        adapter: AdapterSelector::Name("no-such-adapter-xyz".into()),
        ..Default::default()
    };
    let err = fido::Gpu::new(&choice).unwrap_err().to_string();
    assert!(
        err.contains("no-such-adapter-xyz") && err.contains("available"),
        "{err}"
    );
    assert!("".parse::<AdapterSelector>().is_err());
    assert!("quantum".parse::<fido::BackendSelector>().is_err());
}

#[test]
fn no_adapter_error_names_the_fix() {
    let msg = Error::NoAdapter {
        detail: String::new(),
    }
    .to_string();
    assert!(
        msg.contains("mesa-vulkan-drivers") && msg.contains("libvulkan1") && msg.contains("--backend gl"),
        "{msg}"
    );
}

#[test]
fn a_host_device_can_be_borrowed() {
    common::gpu(); // sets XDG_RUNTIME_DIR the same way
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).unwrap();
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default())).unwrap();
    let gpu = fido::Gpu::from_device(device.clone(), queue, adapter.get_info());
    // fido respects the host's (default) limits rather than the adapter's.
    assert_eq!(
        gpu.limits().max_storage_buffer_binding_size,
        device.limits().max_storage_buffer_binding_size
    );
    let x = Tensor::from_slice(&gpu, &[3], &[1.0, -2.0, 3.0]).unwrap();
    assert_eq!(ew::relu(&x).unwrap().to_vec().unwrap(), vec![1.0, 0.0, 3.0]);
}

#[test]
fn launches_bind_buffers_by_name_and_check_the_parameter_block() {
    let gpu = gpu();
    let x = Tensor::from_slice(&gpu, &[1, 2, 1, 1], &[3.0, 5.0]).unwrap();
    let c = |v: [f32; 2]| Tensor::from_slice(&gpu, &[2], &v).unwrap();
    let (gamma, beta, mean, var) = (c([2.0, 1.0]), c([0.5, 0.0]), c([1.0, 1.0]), c([3.0, 0.0]));
    let y = Tensor::zeros(&gpu, &[1, 2, 1, 1]).unwrap();
    let params = BatchNormParams {
        items: 2,
        channels: 2,
        plane: 1,
        eps: 1.0,
    };
    // Given out of order: names, not positions, decide the binding.
    gpu.launch(
        &batchnorm::KERNEL,
        "batch_norm",
        &[],
        &params,
        &[
            ("y", &y),
            ("variance", &var),
            ("mean", &mean),
            ("beta", &beta),
            ("gamma", &gamma),
            ("x", &x),
        ],
        Grid::Linear(1),
    )
    .unwrap();
    let got = y.to_vec().unwrap();
    assert!(
        (got[0] - 2.5).abs() < 1e-6 && (got[1] - 4.0).abs() < 1e-6,
        "{got:?}"
    );

    let missing = gpu
        .launch(
            &batchnorm::KERNEL,
            "batch_norm",
            &[],
            &params,
            &[("x", &x), ("y", &y)],
            Grid::Linear(1),
        )
        .unwrap_err()
        .to_string();
    assert!(missing.contains("needs the buffer `gamma`"), "{missing}");
    let all = [
        ("x", &x),
        ("gamma", &gamma),
        ("beta", &beta),
        ("mean", &mean),
        ("variance", &var),
        ("y", &y),
    ];
    let mut misspelt = all;
    misspelt[4].0 = "var";
    let err = gpu
        .launch(
            &batchnorm::KERNEL,
            "batch_norm",
            &[],
            &params,
            &misspelt,
            Grid::Linear(1),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("no buffer named `var`"), "{err}");

    fido::kernel_params! {
        struct Foreign as "SomethingElse" { items: u32 }
    }
    let err = gpu
        .launch(
            &batchnorm::KERNEL,
            "batch_norm",
            &[],
            &Foreign { items: 2 },
            &all,
            Grid::Linear(1),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("reads a `Params` parameter block but was given `SomethingElse`"),
        "{err}"
    );
}

#[test]
fn the_driver_version_is_read_and_old_lavapipe_gets_advice() {
    use fido::gpu::{driver_version, mesa_version, upgrade_advice};
    assert_eq!(
        mesa_version("Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)"),
        Some((25, 0, 7))
    );
    assert_eq!(mesa_version("Mesa 22.3.6 (LLVM 15.0.6)"), Some((22, 3, 6)));
    assert_eq!(mesa_version("Mesa 26.1.0-devel"), Some((26, 1, 0)));
    assert_eq!(mesa_version("575.57.08"), None);
    let gpu = gpu();
    let mut info = gpu.info().clone();
    info.device_type = wgpu::DeviceType::Cpu;
    info.driver_info = "Mesa 22.3.6 (LLVM 15.0.6)".into();
    assert_eq!(driver_version(&info), "Mesa 22.3.6");
    let advice = upgrade_advice(&info).expect("old lavapipe gets advice");
    assert!(
        advice.contains("Mesa 22.3.6") && advice.contains("bookworm-backports"),
        "{advice}"
    );
    info.driver_info = "Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6)".into();
    assert!(upgrade_advice(&info).is_none());
    info.device_type = wgpu::DeviceType::DiscreteGpu;
    info.driver_info = "Mesa 22.3.6".into();
    assert!(
        upgrade_advice(&info).is_none(),
        "hardware drivers get no lavapipe advice"
    );
}

#[test]
fn io_errors_name_the_path() {
    use fido::IoContext;
    let missing = std::env::temp_dir().join("fido-no-such-dir/no-such-file.bin");
    let err = std::fs::read(&missing).at(&missing).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("fido-no-such-dir/no-such-file.bin"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

/// A device whose limits are far below what fido's default tiles and buffers need.
fn tiny_device(limits: wgpu::Limits) -> fido::Gpu {
    common::gpu();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default())).unwrap();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        required_limits: limits,
        ..Default::default()
    }))
    .unwrap();
    fido::Gpu::from_device(device, queue, adapter.get_info())
}

#[test]
fn a_limit_the_device_lacks_is_an_error_naming_what_to_change() {
    let small_buffers = tiny_device(wgpu::Limits {
        max_storage_buffer_binding_size: 4096,
        ..wgpu::Limits::default()
    });
    let err = Tensor::empty(&small_buffers, &[2048], DType::F32)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_storage_buffer_binding_size") && err.contains("--batch"),
        "{err}"
    );
    assert!(Tensor::empty(&small_buffers, &[1024], DType::F32).is_ok());

    // 2 KiB of workgroup storage: the gpu profile's tiled GEMM shrinks its stages to fit
    // where it can, and a tile that cannot fit says which field to lower.
    let small_shared = tiny_device(wgpu::Limits {
        max_compute_workgroup_storage_size: 2048,
        ..wgpu::Limits::default()
    });
    small_shared.set_kernel_profile(fido::gpu::KernelProfile::Gpu);
    let x = Tensor::from_slice(&small_shared, &[1, 4, 3, 3], &[0.5; 36]).unwrap();
    let w = Tensor::from_slice(&small_shared, &[2, 4, 1, 1], &[1.0; 8]).unwrap();
    let opts = fido::ops::conv::Conv2dOptions::new();
    let err = fido::ops::conv::conv2d(&x, &w, None, &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("workgroup storage") && err.contains("lower"),
        "{err}"
    );
    // The cpu profile's kernels need no workgroup storage for this and still run.
    small_shared.set_kernel_profile(fido::gpu::KernelProfile::Cpu);
    let y = fido::ops::conv::conv2d(&x, &w, None, &opts)
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(y, vec![2.0; 18]);

    // GL-class devices allow only 4 storage buffers per stage.
    let few_buffers = tiny_device(wgpu::Limits::downlevel_defaults());
    let x = Tensor::from_slice(&few_buffers, &[1, 4, 3, 3], &[0.5; 36]).unwrap();
    let w = Tensor::from_slice(&few_buffers, &[2, 4, 1, 1], &[1.0; 8]).unwrap();
    let err = fido::ops::conv::conv2d(&x, &w, None, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_storage_buffers_per_shader_stage"), "{err}");
}

#[test]
fn a_lost_device_is_a_clear_error_not_a_panic() {
    let gpu = gpu();
    let x = Tensor::from_slice(&gpu, &[3], &[1.0, -2.0, 3.0]).unwrap();
    // A driver reset loses the device at once; `destroy` loses it at the next poll, as the
    // WebGPU spec has it, so poll once to get there.
    gpu.device().destroy();
    let _ = gpu.device().poll(wgpu::PollType::wait_indefinitely());
    let err = ew::relu(&x).and_then(|y| y.to_vec()).unwrap_err();
    assert!(matches!(err, Error::DeviceLost { .. }), "{err}");
    assert!(err.to_string().contains("device was lost"), "{err}");
}
