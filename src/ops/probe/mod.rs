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

/// FLOPs per invocation per loop trip: 8 chains × vec4 × (mul + add).
pub const FLOPS_PER_TRIP: usize = 8 * 4 * 2;

/// Run `iterations` trips of the FMA loop on `invocations` invocations; returns one vec4 each.
pub fn fma_loop(gpu: &crate::Gpu, invocations: usize, iterations: u32) -> Result<Tensor> {
    let out = Tensor::empty(gpu, &[invocations, 4], DType::F32)?;
    let params = ProbeParams {
        n: invocations as u32,
        iterations,
    };
    gpu.launch(
        &KERNEL,
        "fma_loop",
        &[],
        &params,
        &[("dst", &out)],
        Grid::Linear(groups_for(invocations, WG)),
    )?;
    Ok(out)
}

pub fn fma_cost(invocations: usize, iterations: u32) -> Cost {
    Cost {
        flops: (invocations * iterations as usize * FLOPS_PER_TRIP) as f64,
        bytes: 16.0 * invocations as f64,
    }
}

/// Copy `src` into `dst` with vec4 loads and stores. Both must hold a multiple of 4 floats.
pub fn copy(src: &Tensor, dst: &Tensor) -> Result<()> {
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
        &[],
        &ProbeParams {
            n: n as u32,
            ..Default::default()
        },
        &[("src", src), ("dst", dst)],
        Grid::Linear(groups_for(n, WG)),
    )
}

pub fn copy_cost(n: usize) -> Cost {
    Cost {
        flops: 0.0,
        bytes: 8.0 * n as f64,
    }
}
