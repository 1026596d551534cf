//! Shared helpers for the GPU tests: one device per test, a seeded RNG, tolerance checks.
#![allow(dead_code)]

use fido::{AdapterChoice, Gpu};

pub fn gpu() -> Gpu {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    Gpu::new(&AdapterChoice::default()).expect("a GPU adapter (install mesa-vulkan-drivers for lavapipe)")
}

/// A file of the repository: under the source tree the test was built from, or, where that
/// is gone (tools/device-check.sh carries the binary to another machine), under the
/// working directory, which is then the repository's root.
pub fn repo_path(relative: &str) -> std::path::PathBuf {
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    if built.exists() {
        built
    } else {
        std::path::PathBuf::from(relative)
    }
}

/// Run `f` under each kernel profile on one adapter, so both shapes of every kernel are
/// checked here on lavapipe. A failure message follows the profile's name on stderr.
#[allow(dead_code)]
pub fn for_each_profile(mut f: impl FnMut(&Gpu)) {
    let gpu = gpu();
    for profile in [fido::gpu::KernelProfile::Cpu, fido::gpu::KernelProfile::Gpu] {
        eprintln!("kernel profile: {}", profile.name());
        gpu.set_kernel_profile(profile);
        f(&gpu);
    }
}

/// A small xorshift generator so tests need no extra crate and are reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Assert `|gpu − ref| ≤ atol + rtol·|ref|` everywhere, reporting the worst element.
#[track_caller]
pub fn assert_close(what: &str, gpu: &[f32], reference: &[f64], atol: f64, rtol: f64) {
    assert_eq!(gpu.len(), reference.len(), "{what}: length");
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &r)) in gpu.iter().zip(reference).enumerate() {
        let g = g as f64;
        if r.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: expected NaN, got {g}");
            continue;
        }
        if r.is_infinite() {
            assert_eq!(g, r, "{what}[{i}]");
            continue;
        }
        let excess = (g - r).abs() - (atol + rtol * r.abs());
        if excess > worst.1 || g.is_nan() {
            worst = (i, if g.is_nan() { f64::INFINITY } else { excess });
        }
    }
    let (i, excess) = worst;
    assert!(
        excess <= 0.0,
        "{what}: element {i}: gpu {} vs ref {} exceeds atol {atol} + rtol {rtol}",
        gpu[i],
        reference[i]
    );
}

/// Central finite differences of `L(x) = Σ f(x)·r`, in f64: the reference a GPU backward
/// rule is checked against when it is given `dy = r`.
pub fn fd_gradient(f: impl Fn(&[f64]) -> Vec<f64>, x: &[f32], r: &[f32], eps: f64) -> Vec<f64> {
    let mut xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let loss = |xs: &[f64]| -> f64 { f(xs).iter().zip(r).map(|(y, &w)| y * w as f64).sum() };
    (0..xs.len())
        .map(|i| {
            let keep = xs[i];
            xs[i] = keep + eps;
            let up = loss(&xs);
            xs[i] = keep - eps;
            let down = loss(&xs);
            xs[i] = keep;
            (up - down) / (2.0 * eps)
        })
        .collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
}

/// A tensor of uniform values in [−1, 1) and the values themselves.
/// Inputs for an activation (ReLU, ReLU6) in [-8, 8], kept 0.05 away from its kinks at 0
/// and 6, so finite differences never straddle one.
pub fn activation_input(gpu: &Gpu, rng: &mut Rng, shape: &[usize]) -> (fido::Tensor, Vec<f32>) {
    let v: Vec<f32> = rng
        .vec(shape.iter().product(), -8.0, 8.0)
        .into_iter()
        .map(|v| {
            let nudge = |v: f32, kink: f32| if (v - kink).abs() < 0.05 { kink + 0.1 } else { v };
            nudge(nudge(v, 0.0), 6.0)
        })
        .collect();
    (fido::Tensor::from_slice(gpu, shape, &v).unwrap(), v)
}

pub fn rand_tensor(gpu: &Gpu, rng: &mut Rng, shape: &[usize]) -> (fido::Tensor, Vec<f32>) {
    let v = rng.vec(shape.iter().product(), -1.0, 1.0);
    (fido::Tensor::from_slice(gpu, shape, &v).unwrap(), v)
}

/// Central finite differences of a scalar function `f` at `at`, in f64.
pub fn fd_scalar(f: impl Fn(&[f64]) -> f64, at: &[f64], eps: f64) -> Vec<f64> {
    let mut p = at.to_vec();
    (0..at.len())
        .map(|i| {
            p[i] = at[i] + eps;
            let up = f(&p);
            p[i] = at[i] - eps;
            let down = f(&p);
            p[i] = at[i];
            (up - down) / (2.0 * eps)
        })
        .collect()
}

/// A fresh, empty folder `fido-PREFIX-PID-NAME` in the system's temporary directory.
pub fn scratch(prefix: &str, name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fido-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The `fido` binary this test was built with, ready for arguments.
pub fn fido_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_fido"));
    cmd.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    cmd
}

/// Run the `fido` binary with `args` and collect its output.
pub fn fido(args: &[&str]) -> std::process::Output {
    fido_command().args(args).output().unwrap()
}
