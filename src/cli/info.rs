//! `fido info`: the adapters, the one chosen, its limits and its features.

use clap::Args;
use serde_json::json;

use fido::gpu::{describe, driver_version, list_adapters, upgrade_advice};
use fido::Result;

use super::AdapterArgs;

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub adapter: AdapterArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &InfoArgs) -> Result<()> {
    let choice = args.adapter.choice();
    let adapters: Vec<_> = list_adapters(choice.backend)
        .iter()
        .map(|a| a.get_info())
        .collect();
    let gpu = args.adapter.gpu()?;
    let limits = gpu.limits();
    // Each limit under its own name, widened to one integer type.
    macro_rules! rows {
        ($($name:ident),* $(,)?) => { vec![$((stringify!($name), u64::from(limits.$name))),*] };
    }
    let limit_rows: Vec<(&str, u64)> = rows!(
        max_buffer_size,
        max_storage_buffer_binding_size,
        max_uniform_buffer_binding_size,
        max_storage_buffers_per_shader_stage,
        max_bind_groups,
        max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup,
        max_compute_workgroup_size_x,
        max_compute_workgroup_size_y,
        max_compute_workgroup_size_z,
        max_compute_workgroups_per_dimension,
        min_storage_buffer_offset_alignment,
        min_uniform_buffer_offset_alignment,
    );
    let features: Vec<String> = gpu
        .features()
        .iter_names()
        .map(|(name, _)| name.to_string())
        .collect();
    if args.json {
        let list: Vec<_> = adapters.iter().map(adapter_json).collect();
        let out = json!({
            "adapters": list,
            "chosen": adapter_json(gpu.info()),
            "driver_version": driver_version(gpu.info()),
            "kernel_profile": gpu.kernel_profile().name(),
            "upgrade_advice": upgrade_advice(gpu.info()),
            "limits": limit_rows.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "features": features,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("JSON of plain values")
        );
        return Ok(());
    }
    println!("Adapters:");
    for a in &adapters {
        println!("  {}", describe(a));
    }
    let info = gpu.info();
    println!("Chosen: {}", describe(info));
    println!("  driver: {} {}", info.driver, info.driver_info);
    println!("  driver version: {}", driver_version(info));
    println!(
        "  kernel profile: {} (FIDO_KERNELS=cpu|gpu to force)",
        gpu.kernel_profile().name()
    );
    if let Some(advice) = upgrade_advice(info) {
        println!("  note: {advice}");
    }
    println!("Limits:");
    for (k, v) in &limit_rows {
        println!("  {k:<40} {v}");
    }
    println!("Features used by fido when present:");
    for f in &features {
        println!("  {f}");
    }
    Ok(())
}

fn adapter_json(info: &wgpu::AdapterInfo) -> serde_json::Value {
    json!({
        "name": info.name,
        "backend": format!("{:?}", info.backend),
        "device_type": format!("{:?}", info.device_type),
        "driver": info.driver,
        "driver_info": info.driver_info,
        "vendor": info.vendor,
        "device": info.device,
    })
}
