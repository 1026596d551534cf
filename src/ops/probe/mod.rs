//! Peak probes: what this adapter can do at best, so benchmarks can report a fraction of it.

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::ops::Cost;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("probe");
const WG: usize = 256;

crate::kernel_params! {
    /// The size of one probe launch.
    pub struct ProbeParams as "Params" {
        /// Invocations (`fma_loop`) or vec4s copied (`copy`).
        n: u32,
        /// FMA loop trips per invocation.
        iterations: u32,
    }
}

/// Independent vec4 chains per invocation the FMA probe supports.
pub const MAX_CHAINS: usize = 16;

/// How the copy probe moves its data: `per_invocation` vec4s per invocation (1 to 8), WG
/// apart when `strided`, else adjacent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyPattern {
    pub per_invocation: usize,
    pub strided: bool,
}

impl CopyPattern {
    /// Every pattern the benchmark tries.
    pub fn all() -> Vec<CopyPattern> {
        let mut all = Vec::new();
        for per_invocation in [1, 2, 4, 8] {
            for strided in [false, true] {
                if per_invocation > 1 || !strided {
                    all.push(CopyPattern {
                        per_invocation,
                        strided,
                    });
                }
            }
        }
        all
    }
}

/// Run `iterations` trips of the FMA loop with `chains` independent vec4 chains (1 to
/// [`MAX_CHAINS`]) on `invocations` invocations; returns one vec4 each.
pub fn fma_loop(gpu: &crate::Gpu, invocations: usize, iterations: u32, chains: usize) -> Result<Tensor> {
    if !(1..=MAX_CHAINS).contains(&chains) {
        return Err(Error::InvalidArgument(format!(
            "the FMA probe runs 1 to {MAX_CHAINS} chains, not {chains}"
        )));
    }
    let out = Tensor::empty(gpu, &[invocations, 4], DType::F32)?;
    let params = ProbeParams {
        n: invocations as u32,
        iterations,
    };
    gpu.launch(
        &KERNEL,
        "fma_loop",
        &[("CHAINS", chains as f64)],
        &params,
        &[("dst", &out)],
        Grid::Linear(groups_for(invocations, WG)),
    )?;
    Ok(out)
}

/// Two FLOPs (a multiply and an add) per component per chain per trip.
pub fn fma_cost(invocations: usize, iterations: u32, chains: usize) -> Cost {
    Cost {
        flops: (invocations * iterations as usize * chains * 4 * 2) as f64,
        bytes: 16.0 * invocations as f64,
    }
}

/// Copy `src` into `dst` with vec4 loads and stores moved as `pattern` says. Both must hold
/// a multiple of 4 floats.
pub fn copy(src: &Tensor, dst: &Tensor, pattern: CopyPattern) -> Result<()> {
    if !(1..=8).contains(&pattern.per_invocation) {
        return Err(Error::InvalidArgument(format!(
            "the copy probe moves 1 to 8 vec4s per invocation, not {}",
            pattern.per_invocation
        )));
    }
    if src.numel() != dst.numel() || src.numel() % 4 != 0 {
        return Err(Error::Shape {
            op: "copy",
            detail: format!(
                "{:?} into {:?}: sizes must match and be multiples of 4",
                src.shape(),
                dst.shape()
            ),
        });
    }
    let n = src.numel() / 4;
    src.gpu().launch(
        &KERNEL,
        "copy",
        &[
            ("PER_INVOCATION", pattern.per_invocation as f64),
            ("STRIDED", pattern.strided as u32 as f64),
        ],
        &ProbeParams {
            n: n as u32,
            ..Default::default()
        },
        &[("src", src), ("dst", dst)],
        Grid::Linear(groups_for(n, WG * pattern.per_invocation)),
    )
}

pub fn copy_cost(n: usize) -> Cost {
    Cost {
        flops: 0.0,
        bytes: 8.0 * n as f64,
    }
}
