//! `fido check`: a matrix multiply on the chosen adapter, checked against the CPU and timed.

use std::time::Instant;

use clap::Args;

use fido::ops::matmul::{self, MatmulShape};
use fido::{Error, Result, Tensor};

use super::AdapterArgs;

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub adapter: AdapterArgs,
    /// Matrix side.
    #[arg(long, default_value_t = 512)]
    pub size: usize,
}

pub fn run(args: &CheckArgs) -> Result<()> {
    let size = args.size;
    if size == 0 || size > 4096 {
        return Err(Error::InvalidArgument(format!("--size {size}: choose 1 to 4096")));
    }
    let gpu = args.adapter.gpu()?;
    println!("adapter: {}", gpu.adapter_name());
    let a_host: Vec<f32> = (0..size * size)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
        .collect();
    let b_host: Vec<f32> = (0..size * size)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let a = Tensor::from_slice(&gpu, &[size, size], &a_host)?;
    let b = Tensor::from_slice(&gpu, &[size, size], &b_host)?;
    let c = matmul::matmul(&a, &b, false, false)?;
    gpu.sync()?;
    let start = Instant::now();
    let c2 = matmul::matmul(&a, &b, false, false)?;
    gpu.sync()?;
    let secs = start.elapsed().as_secs_f64();
    let got = c.to_vec()?;
    drop(c2);
    let mut worst = 0.0f64;
    for s in 0..64 {
        let (i, j) = ((s * 7919) % size, (s * 104_729) % size);
        let want: f64 = (0..size)
            .map(|k| a_host[i * size + k] as f64 * b_host[k * size + j] as f64)
            .sum();
        worst = worst.max((got[i * size + j] as f64 - want).abs() / (1.0 + want.abs()));
    }
    let flops = MatmulShape::infer(&[size, size], &[size, size], false, false)?
        .cost()
        .flops;
    println!(
        "matmul {size}³: {:.1} ms, {:.2} GFLOP/s, max relative error {worst:.1e}",
        secs * 1e3,
        flops / secs / 1e9
    );
    if worst > 1e-4 {
        return Err(Error::Gpu(format!(
            "matmul result differs from the CPU by {worst:.1e}"
        )));
    }
    println!("ok");
    Ok(())
}
