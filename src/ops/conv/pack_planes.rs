//! Packing of an image or gradient as zero-padded planes of vec4s of four channels, the
//! B operand of the implicit GEMM and the weight gradient.

use super::Activation;
use crate::gpu::{groups_for, Grid, Kernel, KernelParams};
use crate::tensor::{DType, Tensor};
use crate::Result;

pub const KERNEL: Kernel = crate::wgsl_kernel!("conv_pack_planes");

const WG: usize = 64;

crate::kernel_params! {
    /// `items` output vec4s; the input's and the packed plane's sizes; the packed plane's
    /// origin in input coordinates.
    pub struct PackPlanesParams as "PackParams" {
        items: u32,
        groups: u32,
        channels_per_group: u32,
        quads: u32,
        in_rows: u32,
        in_cols: u32,
        out_rows: u32,
        out_cols: u32,
        row_offset: i32,
        col_offset: i32,
    }
}

/// Pack `x: [N, C, H, W]` as `[N, groups, ceil(C/groups/4), rows, cols]` vec4s of four
/// channels, with `packed[.., r, c] = act(x[.., r + offset[0], c + offset[1]])` and zeros
/// outside.
pub fn pack_planes(
    x: &Tensor,
    [batch, channels, groups]: [usize; 3],
    in_size: [usize; 2],
    out_size: [usize; 2],
    offset: [i64; 2],
    activation: Activation,
) -> Result<Tensor> {
    let per_group = channels / groups;
    let quads = per_group.div_ceil(4);
    let items = batch * groups * quads * out_size[0] * out_size[1];
    let params = PackPlanesParams {
        items: items as u32,
        groups: groups as u32,
        channels_per_group: per_group as u32,
        quads: quads as u32,
        in_rows: in_size[0] as u32,
        in_cols: in_size[1] as u32,
        out_rows: out_size[0] as u32,
        out_cols: out_size[1] as u32,
        row_offset: offset[0] as i32,
        col_offset: offset[1] as i32,
    };
    packed(
        &KERNEL,
        "pack_planes",
        &[("ACT", activation.code())],
        &params,
        x,
        items,
    )
}

/// Launch `kernel::entry`, one invocation per vec4 of its `items`-vec4 output packed from
/// `src`; both packing kernels take this shape.
pub(super) fn packed<P: KernelParams>(
    kernel: &Kernel,
    entry: &str,
    constants: &[(&str, f64)],
    params: &P,
    src: &Tensor,
    items: usize,
) -> Result<Tensor> {
    let out = Tensor::empty(src.gpu(), &[items * 4], DType::F32)?;
    if items > 0 {
        src.gpu().launch(
            kernel,
            entry,
            &[&[("WG", WG as f64)], constants].concat(),
            params,
            &[("pack_in", src), ("pack_out", &out)],
            Grid::Linear(groups_for(items, WG)),
        )?;
    }
    Ok(out)
}
