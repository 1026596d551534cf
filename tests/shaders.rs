//! Every WGSL file parses and validates with naga, every entry point fits the portable
//! workgroup-storage limit, and the kernel contract holds: each file is named after the
//! module that launches it, each binding slot holds one named buffer, and each parameter
//! block's Rust mirror has the WGSL struct's layout. Needs no adapter.

use fido::gpu::pipelines::{declared_bindings, parse_and_validate, reflect_entry};
use fido::ops::{all_params, ALL_KERNELS};

/// WebGPU's guaranteed minimum for `maxComputeWorkgroupStorageSize`.
const PORTABLE_WORKGROUP_STORAGE: u64 = 16 * 1024;
/// WebGPU's guaranteed minimum for `maxComputeInvocationsPerWorkgroup`.
const PORTABLE_INVOCATIONS: u32 = 256;

fn shader_files() -> Vec<std::path::PathBuf> {
    wgsl_files_in("shaders")
}

fn wgsl_files_in(folder: &str) -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_wgsl_file_parses_and_validates() {
    let files = shader_files();
    assert!(!files.is_empty());
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Err(e) = parse_and_validate(&name, &source) {
            panic!("{name} does not validate:\n{e}");
        }
    }
}

#[test]
fn every_wgsl_file_is_compiled_into_the_library() {
    for path in shader_files() {
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            ALL_KERNELS.iter().any(|k| k.source == source),
            "{} is not listed in ops::ALL_KERNELS",
            path.display()
        );
    }
}

#[test]
fn every_entry_point_fits_portable_workgroup_limits() {
    for kernel in ALL_KERNELS {
        let (module, info) = parse_and_validate(kernel.name, kernel.source).unwrap();
        for ep in &module.entry_points {
            let r = reflect_entry(&module, &info, &ep.name, &[]).unwrap();
            assert!(
                r.workgroup_bytes <= PORTABLE_WORKGROUP_STORAGE,
                "{}::{} uses {} bytes of workgroup storage (portable limit {PORTABLE_WORKGROUP_STORAGE})",
                kernel.name,
                ep.name,
                r.workgroup_bytes
            );
            let invocations: u32 = r.workgroup_size.iter().product();
            assert!(
                invocations <= PORTABLE_INVOCATIONS,
                "{}::{} has {invocations} invocations",
                kernel.name,
                ep.name
            );
            assert!(
                r.bindings.iter().all(|b| b.binding < 16),
                "GL allows 16 storage buffers per stage"
            );
        }
    }
}

#[test]
fn workgroup_storage_is_measured() {
    // The reflection must see shared arrays, or the limit check above proves nothing.
    let src =
        "var<workgroup> tile: array<f32, 4096>;\n@compute @workgroup_size(64) fn main() { tile[0] = 1.0; }";
    let (module, info) = parse_and_validate("t", src).unwrap();
    assert_eq!(
        reflect_entry(&module, &info, "main", &[])
            .unwrap()
            .workgroup_bytes,
        16384
    );
    let unused = "var<workgroup> tile: array<f32, 4096>;\n@compute @workgroup_size(64) fn main() { }";
    let (module, info) = parse_and_validate("t", unused).unwrap();
    assert_eq!(
        reflect_entry(&module, &info, "main", &[])
            .unwrap()
            .workgroup_bytes,
        0
    );
}

#[test]
fn every_kernel_file_is_named_after_its_launcher_module() {
    for kernel in ALL_KERNELS {
        let module = kernel.module.strip_prefix("fido::ops::").unwrap_or_else(|| {
            panic!(
                "kernel `{}` is launched from {}, outside ops",
                kernel.name, kernel.module
            )
        });
        assert_eq!(
            kernel.name,
            module.replace("::", "_"),
            "shaders/{}.wgsl is launched from {}",
            kernel.name,
            kernel.module
        );
    }
    let mut names: Vec<_> = ALL_KERNELS.iter().map(|k| k.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), ALL_KERNELS.len(), "a kernel is listed twice");
}

#[test]
fn each_binding_slot_holds_one_named_buffer() {
    for kernel in ALL_KERNELS {
        let (module, _) = parse_and_validate(kernel.name, kernel.source).unwrap();
        let mut slots = std::collections::HashMap::new();
        for (_, var) in module.global_variables.iter() {
            let Some(b) = &var.binding else { continue };
            assert_eq!(b.group, 0, "{}: everything binds in group 0", kernel.name);
            let name = var.name.clone().expect("named buffers");
            if let Some(other) = slots.insert(b.binding, name.clone()) {
                panic!(
                    "{}: binding {} holds both `{other}` and `{name}`; split the file by entry group",
                    kernel.name, b.binding
                );
            }
        }
        let declared = declared_bindings(&module);
        let mut unique = declared.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            declared.len(),
            "{}: buffer names repeat",
            kernel.name
        );
    }
}

#[test]
fn every_parameter_block_mirrors_its_wgsl_struct() {
    let layouts = all_params();
    for kernel in ALL_KERNELS {
        let (module, _) = parse_and_validate(kernel.name, kernel.source).unwrap();
        let mut layouter = naga::proc::Layouter::default();
        layouter.update(module.to_ctx()).unwrap();
        for (_, var) in module.global_variables.iter() {
            if var.space != naga::AddressSpace::Uniform {
                continue;
            }
            let ty = &module.types[var.ty];
            let wgsl_name = ty.name.clone().unwrap();
            let naga::TypeInner::Struct { members, .. } = &ty.inner else {
                panic!("{}: the uniform block is a struct", kernel.name)
            };
            let mirror = layouts
                .iter()
                .find(|l| l.kernel.name == kernel.name && l.wgsl_struct == wgsl_name)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: struct {wgsl_name} has no Rust mirror in ops::all_params",
                        kernel.name
                    )
                });
            let wgsl: Vec<(String, usize)> = members
                .iter()
                .map(|m| (m.name.clone().unwrap(), m.offset as usize))
                .filter(|(name, _)| !name.starts_with('_'))
                .collect();
            let rust: Vec<(String, usize)> = mirror
                .fields
                .iter()
                .filter(|(name, _)| !name.starts_with('_'))
                .map(|&(name, offset)| (name.to_string(), offset))
                .collect();
            assert_eq!(
                rust, wgsl,
                "{} mirrors {}::{wgsl_name}: names and offsets",
                mirror.rust_type, kernel.name
            );
            assert_eq!(
                mirror.size, layouter[var.ty].size as usize,
                "{} mirrors {}::{wgsl_name}: size",
                mirror.rust_type, kernel.name
            );
        }
    }
    for l in &layouts {
        assert!(
            ALL_KERNELS.iter().any(|k| k.name == l.kernel.name),
            "{} belongs to an unlisted kernel",
            l.rust_type
        );
    }
}

#[test]
fn override_sized_workgroup_storage_is_measured_after_overrides() {
    // The pipeline cache checks a launch's workgroup storage with this reflection, so it must
    // see the sizes the tile constants give the shared arrays, and agree with the launcher's
    // own count that names the setting to lower.
    use fido::ops::matmul::{self, SharedTiles};
    let (module, info) = parse_and_validate("matmul", matmul::KERNEL.source).unwrap();
    for tiles in [
        SharedTiles::DEFAULT,
        SharedTiles {
            tile_m: 128,
            tile_n: 64,
            tile_k: 8,
            thread_m: 8,
            thread_n: 4,
        },
        SharedTiles {
            tile_m: 128,
            tile_n: 128,
            tile_k: 32,
            thread_m: 8,
            thread_n: 8,
        },
        SharedTiles {
            tile_m: 16,
            tile_n: 32,
            tile_k: 4,
            thread_m: 4,
            thread_n: 8,
        },
    ] {
        let r = reflect_entry(&module, &info, "matmul_tiled", &tiles.constants()).unwrap();
        assert_eq!(r.workgroup_bytes, tiles.workgroup_bytes(), "{tiles:?}");
        assert_eq!(r.workgroup_size, [tiles.invocations(), 1, 1], "{tiles:?}");
    }
}

#[test]
fn subgroup_operations_live_only_in_subgroup_files() {
    // A module using subgroup operations is refused on devices without
    // wgpu::Features::SUBGROUP, so every other kernel must validate without the capability,
    // and each `*_subgroup` file must need it (or it is misnamed, and its plain twin would do).
    let without = naga::valid::Capabilities::all()
        - naga::valid::Capabilities::SUBGROUP
        - naga::valid::Capabilities::SUBGROUP_BARRIER;
    for kernel in ALL_KERNELS {
        let module = naga::front::wgsl::parse_str(kernel.source).unwrap();
        let valid = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), without)
            .validate(&module)
            .is_ok();
        let named = kernel.name.ends_with("_subgroup");
        assert_eq!(
            valid, !named,
            "{}: validates without subgroup support: {valid}",
            kernel.name
        );
        if named {
            let plain = kernel.name.strip_suffix("_subgroup").unwrap();
            assert!(
                ALL_KERNELS.iter().any(|k| k.name == plain),
                "{} has no plain twin `{plain}` for devices without subgroups",
                kernel.name
            );
        }
    }
}

/// The render shaders of `fido::render` (`shaders/render/`) are not compute kernels, so
/// they are not in `ALL_KERNELS`; they validate with naga all the same, each file is the one
/// the library compiles, and each keeps to the portable limit of storage buffers per stage.
#[test]
fn every_render_shader_validates_and_is_the_one_compiled() {
    let files = wgsl_files_in("shaders/render");
    assert_eq!(files.len(), 2, "{files:?}");
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (module, _) = parse_and_validate(&name, &source).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            [fido::render::PANEL_WGSL, fido::render::CURVE_WGSL].contains(&source.as_str()),
            "{name} is not compiled into fido::render"
        );
        let stages: Vec<_> = module.entry_points.iter().map(|e| e.stage).collect();
        assert!(
            stages.contains(&naga::ShaderStage::Vertex) && stages.contains(&naga::ShaderStage::Fragment),
            "{name}: {stages:?}"
        );
        let storage = module
            .global_variables
            .iter()
            .filter(|(_, v)| matches!(v.space, naga::AddressSpace::Storage { .. }))
            .count();
        // WebGPU guarantees 8 storage buffers per stage (and GL-class devices 4).
        assert!(storage <= 4, "{name} binds {storage} storage buffers");
    }
}
