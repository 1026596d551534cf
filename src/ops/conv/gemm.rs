//! The implicit GEMM behind the dense convolution, its input gradient and the transposed
//! convolution: `out[m, p] = Σ_k dot(A[row(m) + tap(k).x], B[base(p) + tap(k).y])` over
//! packed operands and a host-built tap table (see `shaders/conv_gemm.wgsl`).

use super::{Activation, Epilogue};
use crate::gpu::{groups_for, Grid, Kernel};
use crate::tensor::Tensor;
use crate::Result;

pub const KERNEL: Kernel = crate::wgsl_kernel!("conv_gemm");

/// Invocations per workgroup.
const WG: usize = 64;
/// Output pixels per invocation (one vec4 accumulator per row).
const PIX: usize = 4;
/// Largest number of rows (channels) one invocation accumulates.
const MAX_BLOCK: usize = 8;

crate::kernel_params! {
    /// Strides of the packed operands (vec4 units) and of the output (scalars).
    pub struct GemmParams as "GemmParams" {
        images: u32,
        rows_per_group: u32,
        blocks_per_group: u32,
        a_group_stride: u32,
        a_row_stride: u32,
        b_group_stride: u32,
        b_image_stride: u32,
        b_row_stride: u32,
        b_col_stride: u32,
        b_channel_stride: u32,
        out_image_stride: u32,
        out_channel_stride: u32,
        out_row_stride: u32,
        out_col_stride: u32,
    }
}

/// One GEMM launch: the sizes and strides, plus its phase count (input gradients with a
/// stride run one phase per stride offset) and the largest phase's pixel count.
pub struct GemmSpec {
    pub images: usize,
    pub groups: usize,
    pub rows_per_group: usize,
    pub a_group_stride: usize,
    pub a_row_stride: usize,
    pub b_group_stride: usize,
    pub b_image_stride: usize,
    pub b_row_stride: usize,
    pub b_col_stride: usize,
    /// `Some(channel stride)` when B is the NCHW tensor itself, read with `activation`;
    /// all B strides are then in scalars.
    pub direct: Option<(usize, Activation)>,
    pub out_image_stride: usize,
    pub out_channel_stride: usize,
    pub out_row_stride: usize,
    pub out_col_stride: usize,
    pub phases: usize,
    pub max_phase_pixels: usize,
}

/// Run the GEMM of packed weights `a` and packed planes `b` with the tap `table` into `out`,
/// finishing each sum with `epilogue`.
pub fn launch_gemm(
    a: &Tensor,
    b: &Tensor,
    table: &[[u32; 2]],
    epilogue: Epilogue,
    out: &Tensor,
    spec: &GemmSpec,
) -> Result<()> {
    let gpu = a.gpu();
    let block = block_for(spec.rows_per_group);
    let blocks_per_group = spec.rows_per_group.div_ceil(block);
    let flat: Vec<u32> = table.iter().flatten().copied().collect();
    let taps = Tensor::from_u32(gpu, &[flat.len()], &flat)?;
    let params = GemmParams {
        images: spec.images as u32,
        rows_per_group: spec.rows_per_group as u32,
        blocks_per_group: blocks_per_group as u32,
        a_group_stride: spec.a_group_stride as u32,
        a_row_stride: spec.a_row_stride as u32,
        b_group_stride: spec.b_group_stride as u32,
        b_image_stride: spec.b_image_stride as u32,
        b_row_stride: spec.b_row_stride as u32,
        b_col_stride: spec.b_col_stride as u32,
        b_channel_stride: spec.direct.map_or(0, |(stride, _)| stride) as u32,
        out_image_stride: spec.out_image_stride as u32,
        out_channel_stride: spec.out_channel_stride as u32,
        out_row_stride: spec.out_row_stride as u32,
        out_col_stride: spec.out_col_stride as u32,
    };
    let grid = Grid::Xyz(
        (spec.groups * blocks_per_group) as u32,
        groups_for(spec.max_phase_pixels, WG * PIX),
        spec.phases as u32,
    );
    // Both forms of B are statically used, so both names are bound, to the same buffer.
    let mut buffers = vec![
        ("mat_a", a),
        ("mat_b", b),
        ("mat_b_direct", b),
        ("taps", &taps),
        ("out", out),
    ];
    let mut constants = vec![("WG", WG as f64), ("BLOCK", block as f64)];
    if let Some((_, activation)) = spec.direct {
        constants.extend([("DIRECT", 1.0), ("ACT", activation.code())]);
    }
    let entry = match epilogue {
        Epilogue::Plain => "gemm",
        Epilogue::Bias(bias) => {
            buffers.push(("bias", bias));
            "gemm_bias"
        }
        Epilogue::Masked(x, activation) => {
            buffers.push(("gemm_mask", x));
            constants.push(("SLOPE_ACT", activation.code()));
            "gemm_masked"
        }
    };
    gpu.launch(&KERNEL, entry, &constants, &params, &buffers, grid)
}

/// Rows per invocation: the largest power of two up to MAX_BLOCK that the rows fill.
pub fn block_for(rows: usize) -> usize {
    let mut block = MAX_BLOCK;
    while block > 1 && block > rows {
        block /= 2;
    }
    block
}
