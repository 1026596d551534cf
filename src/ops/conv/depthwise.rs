//! Depthwise convolution (one input channel per group, any channel multiplier), forward and
//! input gradient. Memory bound: each forward invocation computes a block of neighbouring
//! outputs of one row from one read of the input segment they share.

use super::ConvGeometry;
use crate::gpu::{groups_for, Grid, Kernel};
use crate::tensor::Tensor;
use crate::Result;

pub const KERNEL: Kernel = crate::wgsl_kernel!("conv_depthwise");

const WG: usize = 64;
/// Neighbouring outputs per invocation of the scalar forward kernel.
pub const BLOCK: usize = 4;
/// The longest input segment the forward kernel keeps in registers.
pub const MAX_SEGMENT: usize = 48;
const MAX_QUADS: usize = 16;
/// Outputs per invocation of the vec4 forward kernel (two vec4 accumulators).
const VEC4_BLOCK: usize = 8;

crate::kernel_params! {
    /// Sizes of one depthwise convolution; `items` counts invocations.
    pub struct DepthwiseParams as "DepthwiseParams" {
        items: u32,
        channels_in: u32,
        channels_out: u32,
        multiplier: u32,
        in_rows: u32,
        in_cols: u32,
        out_rows: u32,
        out_cols: u32,
        pad_top: i32,
        pad_left: i32,
        blocks_per_row: u32,
    }
}

/// Whether the forward kernel covers this convolution: one input channel per group and a
/// segment that fits its registers.
pub fn handles(g: &ConvGeometry) -> bool {
    g.in_per_group() == 1 && segment(g, BLOCK) <= MAX_SEGMENT
}

/// `out = depthwise(x, w) + bias`.
pub fn forward(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, g: &ConvGeometry, out: &Tensor) -> Result<()> {
    let o = &g.opts;
    // Aligned rows allow vec4 loads and stores; a wider block amortises the weight loads.
    let pad_quads = o.padding.left.div_ceil(4);
    let shift = 4 * pad_quads - o.padding.left;
    let vec4 =
        g.in_w % 4 == 0 && g.out_w % 4 == 0 && (shift + segment(g, VEC4_BLOCK)).div_ceil(4) <= MAX_QUADS;
    let block = if vec4 { VEC4_BLOCK } else { BLOCK };
    let blocks_per_row = g.out_w.div_ceil(block);
    let items = g.batch * g.out_channels * g.out_h * blocks_per_row;
    let mut constants = constants(g);
    constants.push(("DW_BLOCK", block as f64));
    if vec4 {
        constants.push(("DW_SHIFT", shift as f64));
        constants.push(("DW_PAD_QUADS", pad_quads as f64));
    }
    let entry = match (vec4, bias.is_some()) {
        (false, false) => "depthwise",
        (false, true) => "depthwise_bias",
        (true, false) => "depthwise_vec4",
        (true, true) => "depthwise_vec4_bias",
    };
    let mut buffers = vec![
        ("dw_weight", w),
        ("dw_input", x),
        ("dw_out", out),
        ("dw_input4", x),
        ("dw_out4", out),
    ];
    buffers.extend(bias.map(|b| ("dw_bias", b)));
    x.gpu().launch(
        &KERNEL,
        entry,
        &constants,
        &params(g, items, blocks_per_row),
        &buffers,
        Grid::Linear(groups_for(items, WG)),
    )
}

/// The input gradient: one invocation per input element gathering over the taps.
pub fn backward_input(dy: &Tensor, w: &Tensor, g: &ConvGeometry, dx: &Tensor) -> Result<()> {
    let items = g.batch * g.in_channels * g.in_h * g.in_w;
    // The gather reads dy where the forward reads its input.
    dy.gpu().launch(
        &KERNEL,
        "depthwise_backward_input",
        &constants(g),
        &params(g, items, 0),
        &[("dw_weight", w), ("dw_input", dy), ("dw_out", dx)],
        Grid::Linear(groups_for(items, WG)),
    )
}

fn params(g: &ConvGeometry, items: usize, blocks_per_row: usize) -> DepthwiseParams {
    let o = &g.opts;
    DepthwiseParams {
        items: items as u32,
        channels_in: g.in_channels as u32,
        channels_out: g.out_channels as u32,
        multiplier: (g.out_channels / g.in_channels) as u32,
        in_rows: g.in_h as u32,
        in_cols: g.in_w as u32,
        out_rows: g.out_h as u32,
        out_cols: g.out_w as u32,
        pad_top: o.padding.top as i32,
        pad_left: o.padding.left as i32,
        blocks_per_row: blocks_per_row as u32,
    }
}

/// Kernel size, stride and dilation as constants, so the loops unroll.
fn constants(g: &ConvGeometry) -> Vec<(&'static str, f64)> {
    let o = &g.opts;
    vec![
        ("WG", WG as f64),
        ("DW_KH", g.kernel_h as f64),
        ("DW_KW", g.kernel_w as f64),
        ("DW_SH", o.stride[0] as f64),
        ("DW_SW", o.stride[1] as f64),
        ("DW_DH", o.dilation[0] as f64),
        ("DW_DW", o.dilation[1] as f64),
    ]
}

/// Input columns one invocation reads per kernel row.
fn segment(g: &ConvGeometry, block: usize) -> usize {
    (block - 1) * g.opts.stride[1] + (g.kernel_w - 1) * g.opts.dilation[1] + 1
}
