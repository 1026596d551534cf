//! The benchmark cases, one module per kernel family.

mod conv;
mod engine;
mod models;
mod onnx;
mod render;
mod spatial;

use super::Bench;

pub fn run_all(bench: &mut Bench) {
    engine::run(bench);
    spatial::run(bench);
    conv::run(bench);
    models::run(bench);
    models::fido_step(bench);
    models::fido_explain(bench);
    models::inpainter(bench);
    onnx::run(bench);
    render::run(bench);
}

/// A file of the repository: under the source tree the benchmark was built from, or, where
/// that is gone (a binary carried to another machine), under the working directory.
pub fn repo_file(relative: &str) -> std::path::PathBuf {
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    if built.exists() {
        built
    } else {
        std::path::PathBuf::from(relative)
    }
}

/// A deterministic pseudo-random vector, so inputs are not all zeros or all equal.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Compare sampled GPU values with reference values.
pub fn check_close(
    what: &str,
    pairs: impl IntoIterator<Item = (f32, f64)>,
    atol: f64,
    rtol: f64,
) -> Result<(), String> {
    for (i, (g, r)) in pairs.into_iter().enumerate() {
        if !((g as f64 - r).abs() <= atol + rtol * r.abs()) {
            return Err(format!("{what}: sample {i}: gpu {g} vs reference {r}"));
        }
    }
    Ok(())
}

pub fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}
