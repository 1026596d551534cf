//! The weight gradient: each dw element is a reduction over (N, OH, OW) of dy times the
//! packed image, computed by one invocation (no atomics).

use super::gemm::block_for;
use super::ConvGeometry;
use crate::gpu::{groups_for, Grid, Kernel};
use crate::tensor::Tensor;
use crate::Result;

pub const KERNEL: Kernel = crate::wgsl_kernel!("conv_weight_grad");

const WG: usize = 64;
/// Rows (output channels) and columns (four input channels at one tap) per invocation.
const MAX_ROWS: usize = 4;
const COLUMNS: usize = 2;

crate::kernel_params! {
    /// Sizes of the reduction; image strides in vec4 units of the packed planes.
    pub struct WeightGradParams as "WeightGradParams" {
        images: u32,
        columns_per_group: u32,
        rows_per_group: u32,
        blocks_per_group: u32,
        kernel_area: u32,
        kernel_w: u32,
        channels_per_group: u32,
        x_image_stride: u32,
        x_quad_stride: u32,
        x_group_stride: u32,
        tap_row_step: u32,
        tap_col_step: u32,
        out_rows: u32,
        out_cols: u32,
        x_row_step: u32,
        x_col_step: u32,
        dy_image_stride: u32,
    }
}

/// `out = dw` from `dy` and the input packed by `pack_planes` to `padded` rows and columns.
pub fn launch(
    dy: &Tensor,
    packed_x: &Tensor,
    g: &ConvGeometry,
    [hp, wp]: [usize; 2],
    out: &Tensor,
) -> Result<()> {
    let opts = &g.opts;
    let cin_g = g.in_per_group();
    let quads = cin_g.div_ceil(4);
    let area = g.kernel_h * g.kernel_w;
    let columns = quads * area;
    let rows = g.out_per_group();
    let block = block_for(rows).min(MAX_ROWS);
    let blocks_per_group = rows.div_ceil(block);
    let params = WeightGradParams {
        images: g.batch as u32,
        columns_per_group: columns as u32,
        rows_per_group: rows as u32,
        blocks_per_group: blocks_per_group as u32,
        kernel_area: area as u32,
        kernel_w: g.kernel_w as u32,
        channels_per_group: cin_g as u32,
        x_image_stride: (g.groups * quads * hp * wp) as u32,
        x_quad_stride: (hp * wp) as u32,
        x_group_stride: (quads * hp * wp) as u32,
        tap_row_step: (opts.dilation[0] * wp) as u32,
        tap_col_step: opts.dilation[1] as u32,
        out_rows: g.out_h as u32,
        out_cols: g.out_w as u32,
        x_row_step: (opts.stride[0] * wp) as u32,
        x_col_step: opts.stride[1] as u32,
        dy_image_stride: (g.out_channels * g.out_h * g.out_w) as u32,
    };
    let grid = Grid::Xyz(
        groups_for(columns, WG * COLUMNS),
        (g.groups * blocks_per_group) as u32,
        1,
    );
    dy.gpu().launch(
        &KERNEL,
        "weight_grad",
        &[("WG", WG as f64), ("WG_ROWS", block as f64)],
        &params,
        &[("grad_out", dy), ("image", packed_x), ("grad_weight", out)],
        grid,
    )
}
