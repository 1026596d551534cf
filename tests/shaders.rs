//! Every WGSL file parses and validates with naga, and every entry point fits the portable
//! workgroup-storage limit. Needs no adapter.

use fido::gpu::pipelines::{parse_and_validate, reflect_entry};
use fido::ops::ALL_KERNELS;

/// WebGPU's guaranteed minimum for `maxComputeWorkgroupStorageSize`.
const PORTABLE_WORKGROUP_STORAGE: u64 = 16 * 1024;
/// WebGPU's guaranteed minimum for `maxComputeInvocationsPerWorkgroup`.
const PORTABLE_INVOCATIONS: u32 = 256;

fn shader_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("shaders/ exists")
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
                r.bindings.iter().all(|b| b.0 < 16),
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
