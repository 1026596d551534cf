//! Packing of a weight tensor as rows of vec4s of four reduction channels, the A operand of
//! the implicit GEMM.

use super::pack_planes::packed;
use crate::gpu::Kernel;
use crate::tensor::Tensor;
use crate::Result;

pub const KERNEL: Kernel = crate::wgsl_kernel!("conv_pack_weights");

crate::kernel_params! {
    /// `items` output vec4s of `rows_per_group` rows × `taps` × `quads`; the source's strides.
    pub struct PackWeightsParams as "PackWeightParams" {
        items: u32,
        rows_per_group: u32,
        taps: u32,
        reduction: u32,
        quads: u32,
        group_stride: u32,
        row_stride: u32,
        reduction_stride: u32,
    }
}

/// Pack a weight tensor as `[rows][tap][ceil(reduction/4)]` vec4s, where row `r` of group
/// `g` and reduction channel `q` at `tap` reads `w[g·strides[0] + r·strides[1] + q·strides[2] + tap]`.
pub fn pack_weights(
    w: &Tensor,
    rows: usize,
    rows_per_group: usize,
    taps: usize,
    reduction: usize,
    strides: [usize; 3],
) -> Result<Tensor> {
    let quads = reduction.div_ceil(4);
    let items = rows * taps * quads;
    let params = PackWeightsParams {
        items: items as u32,
        rows_per_group: rows_per_group as u32,
        taps: taps as u32,
        reduction: reduction as u32,
        quads: quads as u32,
        group_stride: strides[0] as u32,
        row_stride: strides[1] as u32,
        reduction_stride: strides[2] as u32,
    };
    packed(&KERNEL, "pack_weights", &[], &params, w, items)
}
