//! Depthwise convolution (one input channel per group, any channel multiplier), forward and
//! input gradient. Memory bound: each invocation computes a block of neighbouring outputs of
//! one row from one read of the input segment they share. The input gradient runs the same
//! kernel as a forward convolution of dy (flipped taps, dy spread by the stride, mirrored
//! padding), so it gets the same segment reuse.

use super::{Activation, ConvGeometry, Epilogue};
use crate::gpu::{groups_for, Grid, Kernel};
use crate::tensor::Tensor;
use crate::Result;

pub const KERNEL: Kernel = crate::wgsl_kernel!("conv_depthwise");

const WG: usize = 64;
/// Neighbouring outputs per invocation of the scalar kernel.
pub const BLOCK: usize = 4;
/// The longest input segment the kernel keeps in registers.
pub const MAX_SEGMENT: usize = 48;
const MAX_QUADS: usize = 16;
/// Outputs per invocation of the vec4 kernel (two vec4 accumulators).
const VEC4_BLOCK: usize = 8;
/// The most outputs the scalar kernel's accumulator array holds.
const MAX_BLOCK: usize = 8;

crate::kernel_params! {
    /// Sizes of one depthwise convolution; `items` counts invocations.
    pub struct DepthwiseParams as "DepthwiseParams" {
        items: u32,
        channels_in: u32,
        channels_out: u32,
        source_divisor: u32,
        source_multiplier: u32,
        weight_multiplier: u32,
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
    g.in_per_group() == 1 && Plan::forward(g).segment(BLOCK) <= MAX_SEGMENT
}

/// Whether the input-gradient form covers it (its segment has stride 1, so it is never the
/// longer of the two).
pub fn handles_backward(g: &ConvGeometry) -> bool {
    let plan = Plan::backward_input(g);
    g.in_per_group() == 1
        && plan.scalar_block() <= MAX_BLOCK
        && plan.segment(plan.scalar_block()) <= MAX_SEGMENT
}

/// `out = depthwise(act(x), w)` finished by `epilogue` (plain or plus a bias), `act` the
/// options' input activation.
pub fn forward(x: &Tensor, w: &Tensor, epilogue: Epilogue, g: &ConvGeometry, out: &Tensor) -> Result<()> {
    Plan::forward(g).launch(x, w, epilogue, out)
}

/// `dx` of `depthwise(x, w)` from `dy`: the forward kernel on dy with flipped taps, its
/// sums times the input activation's slope when `epilogue` masks.
pub fn backward_input(
    dy: &Tensor,
    w: &Tensor,
    g: &ConvGeometry,
    epilogue: Epilogue,
    dx: &Tensor,
) -> Result<()> {
    Plan::backward_input(g).launch(dy, w, epilogue, dx)
}

/// One launch of the kernel, in the kernel's own terms: its input and output planes, and
/// how output channels map to input channels and taps.
struct Plan {
    batch: usize,
    channels_in: usize,
    channels_out: usize,
    in_size: [usize; 2],
    out_size: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    /// Top and left padding; negative where the input-gradient form crops instead.
    pad: [i64; 2],
    /// Zero-spreading of the input (the forward's stride, for the input gradient).
    up: [usize; 2],
    flip: bool,
    /// Applied to every input value as it is loaded.
    activation: Activation,
    /// Input channels summed per output channel.
    fan: usize,
    source_divisor: usize,
    source_multiplier: usize,
    weight_multiplier: usize,
}

impl Plan {
    fn forward(g: &ConvGeometry) -> Plan {
        let o = &g.opts;
        Plan {
            batch: g.batch,
            channels_in: g.in_channels,
            channels_out: g.out_channels,
            in_size: [g.in_h, g.in_w],
            out_size: [g.out_h, g.out_w],
            kernel: [g.kernel_h, g.kernel_w],
            stride: o.stride,
            dilation: o.dilation,
            pad: [o.padding.top as i64, o.padding.left as i64],
            up: [1, 1],
            flip: false,
            activation: o.input_activation,
            fan: 1,
            source_divisor: g.out_channels / g.in_channels,
            source_multiplier: 1,
            weight_multiplier: 1,
        }
    }

    /// dx[ci] = Σ_m conv(spread(dy[ci·M + m]), flip(w[ci·M + m])) with padding
    /// (K − 1)·d − p: the same sums the forward's taps scatter, gathered in forward order.
    fn backward_input(g: &ConvGeometry) -> Plan {
        let o = &g.opts;
        let multiplier = g.out_channels / g.in_channels;
        let reach = |k: usize, d: usize| ((k - 1) * d) as i64;
        Plan {
            batch: g.batch,
            channels_in: g.out_channels,
            channels_out: g.in_channels,
            in_size: [g.out_h, g.out_w],
            out_size: [g.in_h, g.in_w],
            kernel: [g.kernel_h, g.kernel_w],
            stride: [1, 1],
            dilation: o.dilation,
            pad: [
                reach(g.kernel_h, o.dilation[0]) - o.padding.top as i64,
                reach(g.kernel_w, o.dilation[1]) - o.padding.left as i64,
            ],
            up: o.stride,
            flip: true,
            activation: Activation::None,
            fan: multiplier,
            source_divisor: 1,
            source_multiplier: multiplier,
            weight_multiplier: multiplier,
        }
    }

    /// Outputs per invocation of the scalar kernel: a multiple of the column spread, so every
    /// block starts at the same phase of the spread columns.
    fn scalar_block(&self) -> usize {
        if BLOCK % self.up[1] == 0 {
            BLOCK
        } else {
            self.up[1]
        }
    }

    /// Input columns (of the zero-spread input) one invocation reads per kernel row.
    fn segment(&self, block: usize) -> usize {
        (block - 1) * self.stride[1] + (self.kernel[1] - 1) * self.dilation[1] + 1
    }

    fn launch(&self, input: &Tensor, w: &Tensor, epilogue: Epilogue, out: &Tensor) -> Result<()> {
        // Aligned rows allow vec4 loads and stores; a wider block amortises the weight loads.
        let pad_left = self.pad[1];
        let pad_quads = (pad_left.max(0) as usize).div_ceil(4) as i64;
        let shift = 4 * pad_quads - pad_left;
        let vec4 = self.in_size[1] % 4 == 0
            && self.out_size[1] % 4 == 0
            && self.up[1] == 1
            && pad_left >= 0
            && (shift as usize + self.segment(VEC4_BLOCK)).div_ceil(4) <= MAX_QUADS;
        let block = if vec4 { VEC4_BLOCK } else { self.scalar_block() };
        let blocks_per_row = self.out_size[1].div_ceil(block);
        let items = self.batch * self.channels_out * self.out_size[0] * blocks_per_row;
        let mut constants = vec![
            ("WG", WG as f64),
            ("DW_KH", self.kernel[0] as f64),
            ("DW_KW", self.kernel[1] as f64),
            ("DW_SH", self.stride[0] as f64),
            ("DW_SW", self.stride[1] as f64),
            ("DW_DH", self.dilation[0] as f64),
            ("DW_DW", self.dilation[1] as f64),
            ("DW_BLOCK", block as f64),
        ];
        if self.flip {
            constants.extend([
                ("DW_FLIP", 1.0),
                ("DW_UP_H", self.up[0] as f64),
                ("DW_UP_W", self.up[1] as f64),
                ("DW_FAN", self.fan as f64),
                ("DW_COL_PHASE", (-pad_left).rem_euclid(self.up[1] as i64) as f64),
            ]);
        }
        if vec4 {
            constants.push(("DW_SHIFT", shift as f64));
            constants.push(("DW_PAD_QUADS", pad_quads as f64));
        }
        if self.activation != Activation::None {
            constants.push(("ACT", self.activation.code()));
        }
        let mut buffers = vec![
            ("dw_weight", w),
            ("dw_input", input),
            ("dw_out", out),
            ("dw_input4", input),
            ("dw_out4", out),
        ];
        let epilogue_name = match epilogue {
            Epilogue::Plain => "",
            Epilogue::Bias(bias) => {
                buffers.push(("dw_bias", bias));
                "_bias"
            }
            Epilogue::Masked(x, activation) => {
                buffers.extend([("dw_mask", x), ("dw_mask4", x)]);
                constants.push(("SLOPE_ACT", activation.code()));
                "_masked"
            }
        };
        let entry = format!("depthwise{}{epilogue_name}", if vec4 { "_vec4" } else { "" });
        let params = DepthwiseParams {
            items: items as u32,
            channels_in: self.channels_in as u32,
            channels_out: self.channels_out as u32,
            source_divisor: self.source_divisor as u32,
            source_multiplier: self.source_multiplier as u32,
            weight_multiplier: self.weight_multiplier as u32,
            in_rows: self.in_size[0] as u32,
            in_cols: self.in_size[1] as u32,
            out_rows: self.out_size[0] as u32,
            out_cols: self.out_size[1] as u32,
            pad_top: self.pad[0] as i32,
            pad_left: self.pad[1] as i32,
            blocks_per_row: blocks_per_row as u32,
        };
        input.gpu().launch(
            &KERNEL,
            &entry,
            &constants,
            &params,
            &buffers,
            Grid::Linear(groups_for(items, WG)),
        )
    }
}
