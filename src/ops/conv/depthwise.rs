//! Depthwise convolution (one input channel per group, any channel multiplier), forward and
//! input gradient. Memory bound. Under the `cpu` kernel profile each invocation computes a
//! block of neighbouring outputs of one row from one register-held read of the input
//! segment they share (no workgroup memory, which buys nothing on lavapipe). Under the `gpu`
//! profile a workgroup stages the input region of a 2-D output tile in workgroup memory with
//! coalesced loads and each lane sums a few outputs from there. Either way the input
//! gradient runs the same kernel as a forward convolution of dy (flipped taps, dy spread by
//! the stride, mirrored padding), so it gets the same reuse.

use super::{Activation, ConvGeometry, Epilogue};
use crate::gpu::{groups_for, max_linear_invocations, Grid, Kernel, KernelProfile};
use crate::tensor::Tensor;
use crate::{Error, Result};

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
/// The most outputs per invocation of the tiled kernel (its `DWT_MAX_PER`).
pub const MAX_TILE_ROWS_PER_INVOCATION: usize = 8;

crate::kernel_params! {
    /// Sizes of one depthwise convolution. For the row kernels `items` counts invocations and
    /// `blocks_per_row` the blocks of one output row; for the tiled kernel they count
    /// workgroups (tiles) and the tiles across one output plane.
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
/// segment that fits the row kernels' registers. The same gate serves both profiles: the
/// tiled kernel takes any such convolution and hands the rows those whose region does not
/// fit its workgroup storage.
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

/// The output tile one workgroup of the `gpu` profile's kernel computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub rows: usize,
    pub cols: usize,
    /// Vertically neighbouring outputs per invocation; divides `rows`, at most
    /// [`MAX_TILE_ROWS_PER_INVOCATION`].
    pub rows_per_invocation: usize,
}

impl Tile {
    /// 256 outputs in 128 invocations: a row of 32 lanes loads and stores 128 contiguous
    /// bytes, and a 3×3 stride-1 region is 10×34 words, 1.3 times the outputs, so staging
    /// costs little more than one load per output. Two rows per lane share their taps.
    pub const DEFAULT: Tile = Tile {
        rows: 8,
        cols: 32,
        rows_per_invocation: 2,
    };

    pub fn invocations(&self) -> usize {
        self.rows / self.rows_per_invocation * self.cols
    }
}

/// The two launches a depthwise convolution makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Forward,
    InputGradient,
}

/// The tile the `gpu` profile uses for this convolution under these limits, or why none
/// fits and it takes the row kernels instead.
pub fn tile_for(g: &ConvGeometry, pass: Pass, limits: &wgpu::Limits) -> std::result::Result<Tile, String> {
    match pass {
        Pass::Forward => Plan::forward(g),
        Pass::InputGradient => Plan::backward_input(g),
    }
    .choose_tile(limits)
}

/// [`forward`] through the tiled kernel with an explicit tile, whatever the kernel profile;
/// a tile that the adapter cannot hold is an error.
pub fn forward_tiled(
    x: &Tensor,
    w: &Tensor,
    epilogue: Epilogue,
    g: &ConvGeometry,
    tile: Tile,
    out: &Tensor,
) -> Result<()> {
    check_shapes(
        "depthwise::forward_tiled",
        g,
        epilogue,
        [x, w, out],
        [g.input_shape(), g.weight_shape(), g.output_shape()],
    )?;
    Plan::forward(g).launch_checked_tile(x, w, epilogue, tile, out)
}

/// [`backward_input`] through the tiled kernel with an explicit tile, as [`forward_tiled`].
pub fn backward_input_tiled(
    dy: &Tensor,
    w: &Tensor,
    g: &ConvGeometry,
    epilogue: Epilogue,
    tile: Tile,
    dx: &Tensor,
) -> Result<()> {
    check_shapes(
        "depthwise::backward_input_tiled",
        g,
        epilogue,
        [dy, w, dx],
        [g.output_shape(), g.weight_shape(), g.input_shape()],
    )?;
    Plan::backward_input(g).launch_checked_tile(dy, w, epilogue, tile, dx)
}

fn check_shapes(
    op: &'static str,
    g: &ConvGeometry,
    epilogue: Epilogue,
    tensors: [&Tensor; 3],
    shapes: [[usize; 4]; 3],
) -> Result<()> {
    if g.in_per_group() != 1 {
        return Err(Error::Shape {
            op,
            detail: format!("{} input channels per group; depthwise needs 1", g.in_per_group()),
        });
    }
    let mut checks: Vec<(&Tensor, Vec<usize>)> = tensors
        .iter()
        .zip(shapes)
        .map(|(t, s)| (*t, s.to_vec()))
        .collect();
    match epilogue {
        Epilogue::Plain => {}
        Epilogue::Bias(bias) => checks.push((bias, vec![g.out_channels])),
        // The mask is the forward's input, shaped as this launch's output.
        Epilogue::Masked(x, _) => checks.push((x, shapes[2].to_vec())),
    }
    for (t, want) in checks {
        if t.shape() != want {
            return Err(Error::Shape {
                op,
                detail: format!("a tensor of shape {:?} where {want:?} was expected", t.shape()),
            });
        }
    }
    Ok(())
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
        let gpu = input.gpu();
        if gpu.kernel_profile() == KernelProfile::Gpu {
            // Where not even the smallest tile's region fits the adapter's workgroup storage
            // (a very long dilated kernel), the row kernels compute the same sums without it.
            if let Ok(tile) = self.choose_tile(gpu.limits()) {
                return self.launch_tiled(input, w, epilogue, tile, out);
            }
        }
        self.launch_rows(input, w, epilogue, out)
    }

    /// The input region (of the zero-spread input) one tile reads: rows and columns.
    fn region(&self, tile: Tile) -> [usize; 2] {
        let extent = |outputs: usize, axis: usize| {
            (outputs - 1) * self.stride[axis] + (self.kernel[axis] - 1) * self.dilation[axis] + 1
        };
        [extent(tile.rows, 0), extent(tile.cols, 1)]
    }

    fn region_bytes(&self, tile: Tile) -> u64 {
        let [rows, cols] = self.region(tile);
        4 * (rows * cols) as u64
    }

    /// Why the tiled kernel cannot run with `tile` on an adapter with `limits`, if it cannot.
    fn check_tile(&self, tile: Tile, limits: &wgpu::Limits) -> std::result::Result<(), String> {
        let per = tile.rows_per_invocation;
        if tile.rows == 0
            || tile.cols == 0
            || per == 0
            || per > MAX_TILE_ROWS_PER_INVOCATION
            || tile.rows % per != 0
        {
            return Err(format!(
                "tile {tile:?}: rows must be a positive multiple of rows_per_invocation, which is 1 to {MAX_TILE_ROWS_PER_INVOCATION}"
            ));
        }
        let invocations = tile.invocations();
        let most = max_linear_invocations(limits) as usize;
        if invocations > most {
            return Err(format!(
                "tile {tile:?} takes {invocations} invocations per workgroup; the adapter allows {most}"
            ));
        }
        let bytes = self.region_bytes(tile);
        let limit = limits.max_compute_workgroup_storage_size;
        if bytes > u64::from(limit) {
            let [rows, cols] = self.region(tile);
            return Err(format!(
                "a {}×{} tile of a {}×{} kernel (stride {:?}, dilation {:?}) reads a {rows}×{cols} region, \
                 {bytes} bytes of workgroup storage; the adapter allows {limit}",
                tile.rows, tile.cols, self.kernel[0], self.kernel[1], self.stride, self.dilation
            ));
        }
        Ok(())
    }

    /// The default tile narrowed to the plane, then shrunk until its region fits: first
    /// fewer rows (the region's height is mostly the kernel's reach anyway), then one row
    /// per lane, then fewer columns.
    fn choose_tile(&self, limits: &wgpu::Limits) -> std::result::Result<Tile, String> {
        let per = Tile::DEFAULT.rows_per_invocation;
        // At least 8 columns, so a row of lanes fills a SIMD group of 8 or more.
        let cols = self.out_size[1].next_power_of_two().clamp(8, Tile::DEFAULT.cols);
        let outputs = Tile::DEFAULT.rows * Tile::DEFAULT.cols;
        let rows = (outputs / cols).min(self.out_size[0].next_multiple_of(per));
        let mut tile = Tile {
            rows,
            cols,
            rows_per_invocation: per,
        };
        loop {
            let reason = match self.check_tile(tile, limits) {
                Ok(()) => return Ok(tile),
                Err(reason) => reason,
            };
            if tile.rows > tile.rows_per_invocation {
                tile.rows = (tile.rows / 2).next_multiple_of(tile.rows_per_invocation);
            } else if tile.rows_per_invocation > 1 {
                tile.rows = 1;
                tile.rows_per_invocation = 1;
            } else if tile.cols > 1 {
                tile.cols /= 2;
            } else {
                return Err(format!("{reason}, even for one output per workgroup"));
            }
        }
    }

    fn launch_checked_tile(
        &self,
        input: &Tensor,
        w: &Tensor,
        epilogue: Epilogue,
        tile: Tile,
        out: &Tensor,
    ) -> Result<()> {
        self.check_tile(tile, input.gpu().limits())
            .map_err(|reason| Error::InvalidArgument(format!("depthwise_tiled: {reason}")))?;
        if out.numel() == 0 {
            return Ok(());
        }
        self.launch_tiled(input, w, epilogue, tile, out)
    }

    /// Kernel size, stride, dilation and the input-gradient form, shared by both kernels.
    fn shape_constants(&self) -> Vec<(&'static str, f64)> {
        let mut constants = vec![
            ("DW_KH", self.kernel[0] as f64),
            ("DW_KW", self.kernel[1] as f64),
            ("DW_SH", self.stride[0] as f64),
            ("DW_SW", self.stride[1] as f64),
            ("DW_DH", self.dilation[0] as f64),
            ("DW_DW", self.dilation[1] as f64),
        ];
        if self.flip {
            constants.extend([
                ("DW_FLIP", 1.0),
                ("DW_UP_H", self.up[0] as f64),
                ("DW_UP_W", self.up[1] as f64),
                ("DW_FAN", self.fan as f64),
            ]);
        }
        if self.activation != Activation::None {
            constants.push(("ACT", self.activation.code()));
        }
        constants
    }

    fn params(&self, items: usize, blocks_per_row: usize) -> DepthwiseParams {
        DepthwiseParams {
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
        }
    }

    fn launch_tiled(
        &self,
        input: &Tensor,
        w: &Tensor,
        epilogue: Epilogue,
        tile: Tile,
        out: &Tensor,
    ) -> Result<()> {
        let tiles_across = self.out_size[1].div_ceil(tile.cols);
        let tiles_down = self.out_size[0].div_ceil(tile.rows);
        let items = self.batch * self.channels_out * tiles_down * tiles_across;
        let [region_rows, region_cols] = self.region(tile);
        let mut constants = self.shape_constants();
        constants.extend([
            ("DWT_TH", tile.rows as f64),
            ("DWT_TW", tile.cols as f64),
            ("DWT_PER", tile.rows_per_invocation as f64),
            ("DWT_WG", tile.invocations() as f64),
            // Set rather than left to the shader's defaults, so the bytes checked above are
            // the bytes the pipeline reserves.
            ("DWT_IN_H", region_rows as f64),
            ("DWT_IN_W", region_cols as f64),
        ]);
        let mut buffers = vec![("dw_weight", w), ("dw_input", input), ("dw_out", out)];
        let epilogue_name = match epilogue {
            Epilogue::Plain => "",
            Epilogue::Bias(bias) => {
                buffers.push(("dw_bias", bias));
                "_bias"
            }
            Epilogue::Masked(x, activation) => {
                buffers.push(("dw_mask", x));
                constants.push(("SLOPE_ACT", activation.code()));
                "_masked"
            }
        };
        input.gpu().launch(
            &KERNEL,
            &format!("depthwise_tiled{epilogue_name}"),
            &constants,
            &self.params(items, tiles_across),
            &buffers,
            Grid::Linear(groups_for(items, 1)),
        )
    }

    fn launch_rows(&self, input: &Tensor, w: &Tensor, epilogue: Epilogue, out: &Tensor) -> Result<()> {
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
        let mut constants = vec![("WG", WG as f64)];
        constants.extend(self.shape_constants());
        constants.push(("DW_BLOCK", block as f64));
        if self.flip {
            constants.push(("DW_COL_PHASE", (-pad_left).rem_euclid(self.up[1] as i64) as f64));
        }
        if vec4 {
            constants.push(("DW_SHIFT", shift as f64));
            constants.push(("DW_PAD_QUADS", pad_quads as f64));
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
        input.gpu().launch(
            &KERNEL,
            &entry,
            &constants,
            &self.params(items, blocks_per_row),
            &buffers,
            Grid::Linear(groups_for(items, WG)),
        )
    }
}
