//! Kernel benchmarks: validate each kernel's output, then time it.
//!
//! `cargo bench --bench kernels [-- [FILTER...] [--json] [--adapter A] [--backend B]]`
//!
//! A case runs when its name contains any FILTER (all run when none is given).
//!
//! Reports median/min/max milliseconds, GFLOP/s, GB/s, and the fraction of this adapter's
//! peak as measured by two probes run first: an FMA loop and a vec4 copy. GPU time comes
//! from timestamp queries when the adapter has them, else from wall time around a blocking poll.

use std::time::Instant;

use fido::ops::{self, Cost};
use fido::{AdapterChoice, DType, Gpu, Tensor};

mod cases;

pub struct Bench {
    pub gpu: Gpu,
    filters: Vec<String>,
    json: bool,
    peak_gflops: f64,
    peak_gbps: f64,
    pub failures: usize,
}

pub struct Timing {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Bench {
    /// Whether some filter contains `text`: cases too slow to run by default run only then.
    pub fn asks_for(&self, text: &str) -> bool {
        self.filters.iter().any(|f| f.contains(text))
    }

    pub fn wants(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }

    /// Validate, then time `run` (which records GPU work) and report it with `cost`.
    pub fn case(
        &mut self,
        name: &str,
        cost: Cost,
        validate: impl FnOnce(&Gpu) -> Result<(), String>,
        mut run: impl FnMut(&Gpu) -> fido::Result<()>,
    ) {
        if !self.wants(name) {
            return;
        }
        if let Err(e) = validate(&self.gpu) {
            eprintln!("{name}: VALIDATION FAILED: {e}");
            self.failures += 1;
            return;
        }
        let timing = match time(&self.gpu, &mut run) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: failed: {e}");
                self.failures += 1;
                return;
            }
        };
        self.report(name, cost, &timing);
    }

    pub fn report(&self, name: &str, cost: Cost, t: &Timing) {
        let secs = t.median / 1e3;
        let gflops = cost.flops / secs / 1e9;
        let gbps = cost.bytes / secs / 1e9;
        let frac_fma = if self.peak_gflops > 0.0 {
            gflops / self.peak_gflops
        } else {
            0.0
        };
        let frac_copy = if self.peak_gbps > 0.0 {
            gbps / self.peak_gbps
        } else {
            0.0
        };
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "name": name, "ms_median": t.median, "ms_min": t.min, "ms_max": t.max,
                    "gflops": gflops, "gbps": gbps, "frac_fma_peak": frac_fma, "frac_copy_peak": frac_copy,
                    "adapter": self.gpu.adapter_name(),
                    "timer": if self.gpu.has_timestamps() { "timestamp" } else { "wall" },
                })
            );
        } else {
            println!(
                "{name:<44} {:>9.3} {:>9.3} {:>9.3} {:>9.2} {:>9.2} {:>6.1}% {:>6.1}%",
                t.median,
                t.min,
                t.max,
                gflops,
                gbps,
                100.0 * frac_fma,
                100.0 * frac_copy
            );
        }
    }
}

/// Warm up once, then repeat until about 1.5 s or 25 runs (at least 3, or 1 when a single
/// run takes seconds, as whole networks do on a CPU adapter).
fn time(gpu: &Gpu, run: &mut impl FnMut(&Gpu) -> fido::Result<()>) -> fido::Result<Timing> {
    let warm = Instant::now();
    run(gpu)?;
    gpu.sync()?;
    let min_runs = if warm.elapsed().as_secs_f64() > 3.0 { 1 } else { 3 };
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < min_runs || (samples.len() < 25 && start.elapsed().as_secs_f64() < 1.5) {
        run(gpu)?;
        let t = gpu.flush_timed()?;
        samples.push(t.gpu_ms.unwrap_or(t.wall_ms));
    }
    samples.sort_by(f64::total_cmp);
    Ok(Timing {
        median: samples[samples.len() / 2],
        min: samples[0],
        max: *samples.last().unwrap(),
    })
}

/// The best FMA throughput over every chain count and the best copy bandwidth over every
/// copy pattern, each with the variant that reached it.
struct Peaks {
    gflops: f64,
    chains: usize,
    gbps: f64,
    copy: ops::probe::CopyPattern,
}

fn measure_peaks(gpu: &Gpu) -> fido::Result<Peaks> {
    // FMA: enough invocations to fill the adapter (a GPU such as an H200 keeps 270,000
    // resident), enough trips to hide launch cost.
    let invocations = match gpu.kernel_profile() {
        fido::gpu::KernelProfile::Cpu => 1 << 16,
        fido::gpu::KernelProfile::Gpu => 1 << 20,
    };
    let trips = 1024;
    let mut peaks = Peaks {
        gflops: 0.0,
        chains: 1,
        gbps: 0.0,
        copy: ops::probe::CopyPattern::all()[0],
    };
    for chains in 1..=ops::probe::MAX_CHAINS {
        for _ in 0..3 {
            ops::probe::fma_loop(gpu, invocations, trips, chains)?;
            let t = gpu.flush_timed()?;
            let ms = t.gpu_ms.unwrap_or(t.wall_ms);
            let gflops = ops::probe::fma_cost(invocations, trips, chains).flops / (ms / 1e3) / 1e9;
            if gflops > peaks.gflops {
                (peaks.gflops, peaks.chains) = (gflops, chains);
            }
        }
    }
    // Copy: 64 MiB each way on a CPU adapter; 256 MiB on a GPU, several times any L2
    // (an H200 has 60 MB), so the probe measures memory rather than cache.
    let n = match gpu.kernel_profile() {
        fido::gpu::KernelProfile::Cpu => 16 << 20,
        fido::gpu::KernelProfile::Gpu => (64 << 20).min(gpu.max_binding_bytes() as usize / 4),
    };
    let src = Tensor::zeros(gpu, &[n])?;
    let dst = Tensor::empty(gpu, &[n], DType::F32)?;
    for pattern in ops::probe::CopyPattern::all() {
        for _ in 0..5 {
            ops::probe::copy(&src, &dst, pattern)?;
            let t = gpu.flush_timed()?;
            let ms = t.gpu_ms.unwrap_or(t.wall_ms);
            let gbps = ops::probe::copy_cost(n).bytes / (ms / 1e3) / 1e9;
            if gbps > peaks.gbps {
                (peaks.gbps, peaks.copy) = (gbps, pattern);
            }
        }
    }
    Ok(peaks)
}

fn main() {
    let mut filters = Vec::new();
    let mut json = false;
    let mut choice = AdapterChoice::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--json" => json = true,
            "--adapter" => choice.adapter = args.next().expect("--adapter needs a value").parse().unwrap(),
            "--backend" => choice.backend = args.next().expect("--backend needs a value").parse().unwrap(),
            other if !other.starts_with('-') => filters.push(other.to_string()),
            _ => {}
        }
    }
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let gpu = match Gpu::new(&choice) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    // Validate every probe variant before timing any of them.
    for chains in 1..=ops::probe::MAX_CHAINS {
        let got = ops::probe::fma_loop(&gpu, 64, 100, chains)
            .and_then(|t| t.to_vec())
            .expect("probe runs");
        for i in 0..64 {
            let want = ops::probe::reference::fma_loop(i, 100, chains);
            assert!(
                (got[4 * i] as f64 - want).abs() < 1e-4 * want.abs(),
                "FMA probe with {chains} chains failed validation at {i}"
            );
        }
    }
    let values: Vec<f32> = (0..4 * 5000).map(|i| i as f32).collect();
    let src = Tensor::from_slice(&gpu, &[values.len()], &values).expect("upload");
    for pattern in ops::probe::CopyPattern::all() {
        let dst = Tensor::zeros(&gpu, &[values.len()]).expect("alloc");
        ops::probe::copy(&src, &dst, pattern).expect("copy runs");
        assert_eq!(
            dst.to_vec().expect("read"),
            values,
            "copy probe {pattern:?} failed validation"
        );
    }
    let peaks = measure_peaks(&gpu).expect("peak probes run");
    let (peak_gflops, peak_gbps) = (peaks.gflops, peaks.gbps);
    let timer = if gpu.has_timestamps() {
        "timestamp queries"
    } else {
        "wall clock around a blocking poll"
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"name": "peak", "adapter": gpu.adapter_name(), "peak_gflops": peak_gflops, "peak_gbps": peak_gbps, "fma_chains": peaks.chains, "copy_per_invocation": peaks.copy.per_invocation, "copy_strided": peaks.copy.strided, "timer": timer})
        );
    } else {
        println!("adapter: {}", gpu.adapter_name());
        println!("timer:   {timer}");
        println!(
            "peak:    FMA loop {peak_gflops:.1} GFLOP/s ({} independent vec4 chains), copy {peak_gbps:.1} GB/s ({} vec4 per invocation{})",
            peaks.chains,
            peaks.copy.per_invocation,
            if peaks.copy.strided { ", strided" } else { "" }
        );
        println!(
            "{:<44} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}",
            "case", "median ms", "min ms", "max ms", "GFLOP/s", "GB/s", "%FMA", "%copy"
        );
    }
    let mut bench = Bench {
        gpu,
        filters,
        json,
        peak_gflops,
        peak_gbps,
        failures: 0,
    };
    cases::run_all(&mut bench);
    if bench.failures > 0 {
        eprintln!("{} case(s) failed", bench.failures);
        std::process::exit(1);
    }
}
