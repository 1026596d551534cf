//! The bias gradient: `dy` summed over N, H and W, one workgroup per channel.

use crate::gpu::{Grid, Kernel};
use crate::tensor::Tensor;
use crate::Result;

pub const KERNEL: Kernel = crate::wgsl_kernel!("conv_bias_grad");

crate::kernel_params! {
    /// `dy: [images, channels, plane]`.
    pub struct BiasGradParams as "BiasGradParams" {
        images: u32,
        channels: u32,
        plane: u32,
    }
}

/// `out[c] = Σ dy[n, c, ...]` for `dy: [n, c, h·w]`.
pub fn launch(dy: &Tensor, [n, c, plane]: [usize; 3], out: &Tensor) -> Result<()> {
    let params = BiasGradParams {
        images: n as u32,
        channels: c as u32,
        plane: plane as u32,
    };
    dy.gpu().launch(
        &KERNEL,
        "bias_grad",
        &[],
        &params,
        &[("bg_dy", dy), ("bg_out", out)],
        Grid::Linear(c as u32),
    )
}
