//! 2-D convolution (NCHW, f32): forward, gradients and transposed convolution.
//!
//! The dense path is an implicit GEMM (see `gemm` and `shaders/conv_gemm.wgsl`): the input is first packed
//! into a zero-padded copy whose vec4s hold four channels, and the weights into matching
//! vec4s, so the inner loop has no bounds checks and every load carries four channels.
//! Convolutions with one input channel per group (depthwise, with any channel multiplier)
//! take a memory-bound kernel that checks bounds itself. The input gradient is a gather: dx is
//! split into stride phases, and within one phase every dx pixel is reached by the same
//! kernel taps, so each phase is a dense GEMM over a packed, zero-padded dy.

pub mod reference;

pub mod bias_grad;
pub mod depthwise;
pub mod gemm;
pub mod pack_planes;
pub mod pack_weights;
pub mod weight_grad;

use crate::gpu::KernelProfile;
use crate::ops::Cost;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};
use gemm::{launch_gemm, GemmSpec};

use pack_planes::pack_planes;
use pack_weights::pack_weights;

/// What a kernel does to its sums before storing them.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    Plain,
    /// Add a per-output-channel bias.
    Bias(&'a Tensor),
    /// Multiply by the activation's slope at the same element of this tensor (the forward's
    /// input, for an input gradient through an input activation).
    Masked(&'a Tensor, Activation),
}

/// Zero padding on each side of the image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Padding {
    pub top: usize,
    pub bottom: usize,
    pub left: usize,
    pub right: usize,
}

impl Padding {
    /// `ph` rows above and below, `pw` columns left and right (PyTorch's `padding=(ph, pw)`).
    pub fn symmetric(ph: usize, pw: usize) -> Self {
        Padding {
            top: ph,
            bottom: ph,
            left: pw,
            right: pw,
        }
    }

    /// TensorFlow's 'SAME' padding: the output has `ceil(n / stride)` pixels per axis and the
    /// odd pixel of padding, if any, goes after (bottom/right).
    pub fn tf_same(
        in_h: usize,
        in_w: usize,
        kh: usize,
        kw: usize,
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> Self {
        let axis = |n: usize, k: usize, s: usize, d: usize| {
            let s = s.max(1);
            let out = n.div_ceil(s);
            let needed = (out.saturating_sub(1) * s + k.saturating_sub(1) * d + 1) as i64;
            let total = (needed - n as i64).max(0) as usize;
            (total / 2, total - total / 2)
        };
        let (top, bottom) = axis(in_h, kh, stride[0], dilation[0]);
        let (left, right) = axis(in_w, kw, stride[1], dilation[1]);
        Padding {
            top,
            bottom,
            left,
            right,
        }
    }
}

/// An activation a convolution applies to its input as it reads it: `conv(act(x))`.
///
/// This is how a producer's activation is fused: the producer writes its pre-activation
/// output once, each consumer activates values as it loads them (free: no extra load), and
/// the input gradient multiplies by the activation's slope in its epilogue, one load per dx
/// element. Done the other way round (masking dy in the input gradient's prologue), every
/// block of output channels would reload the mask with dy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activation {
    #[default]
    None,
    Relu,
    /// `min(max(x, 0), 6)`
    Relu6,
}

impl Activation {
    /// The kernels' `ACT` override.
    pub fn code(self) -> f64 {
        match self {
            Activation::None => 0.0,
            Activation::Relu => 1.0,
            Activation::Relu6 => 2.0,
        }
    }
}

/// Stride, padding, dilation and groups of a convolution, as in PyTorch's `Conv2d`, plus an
/// optional activation of its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dOptions {
    /// (vertical, horizontal)
    pub stride: [usize; 2],
    pub padding: Padding,
    /// (vertical, horizontal)
    pub dilation: [usize; 2],
    pub groups: usize,
    pub input_activation: Activation,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: [1, 1],
            padding: Padding::default(),
            dilation: [1, 1],
            groups: 1,
            input_activation: Activation::None,
        }
    }
}

impl Conv2dOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn stride(mut self, sh: usize, sw: usize) -> Self {
        self.stride = [sh, sw];
        self
    }
    pub fn padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }
    pub fn dilation(mut self, dh: usize, dw: usize) -> Self {
        self.dilation = [dh, dw];
        self
    }
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    pub fn input_activation(mut self, activation: Activation) -> Self {
        self.input_activation = activation;
        self
    }
}

/// Every size of one convolution, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub in_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_channels: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub groups: usize,
    pub opts: Conv2dOptions,
}

impl ConvGeometry {
    /// Check an input shape `[N, Cin, H, W]` against a weight shape `[Cout, Cin/groups, KH, KW]`.
    pub fn new(x_shape: &[usize], w_shape: &[usize], opts: &Conv2dOptions) -> Result<Self> {
        geometry("conv2d", x_shape, w_shape, opts)
    }
    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }
    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }
    pub fn input_shape(&self) -> [usize; 4] {
        [self.batch, self.in_channels, self.in_h, self.in_w]
    }
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.out_channels,
            self.in_per_group(),
            self.kernel_h,
            self.kernel_w,
        ]
    }
    pub fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.out_channels, self.out_h, self.out_w]
    }
    fn padded_h(&self) -> usize {
        self.in_h + self.opts.padding.top + self.opts.padding.bottom
    }
    fn padded_w(&self) -> usize {
        self.in_w + self.opts.padding.left + self.opts.padding.right
    }
    /// Multiply-adds times two.
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.out_channels * self.out_h * self.out_w) as f64
            * (self.in_per_group() * self.kernel_h * self.kernel_w) as f64
    }
}

/// The output shape PyTorch gives: `(n + pads - dilation·(k−1) − 1) / stride + 1` per axis.
pub fn conv2d_output_shape(x_shape: &[usize], w_shape: &[usize], opts: &Conv2dOptions) -> Result<[usize; 4]> {
    Ok(geometry("conv2d", x_shape, w_shape, opts)?.output_shape())
}

/// FLOPs and the bytes of input, weight and output one forward convolution touches.
pub fn conv2d_cost(x_shape: &[usize], w_shape: &[usize], opts: &Conv2dOptions) -> Result<Cost> {
    let g = geometry("conv2d_cost", x_shape, w_shape, opts)?;
    let elems = |s: [usize; 4]| s.iter().product::<usize>() as f64;
    Ok(Cost {
        flops: g.flops(),
        bytes: 4.0 * (elems(g.input_shape()) + elems(g.weight_shape()) + elems(g.output_shape())),
    })
}

/// `conv2d(act(x), w) + bias`, with `x: [N, Cin, H, W]`, `w: [Cout, Cin/groups, KH, KW]`,
/// `bias: [Cout]` and `act` the options' input activation.
pub fn conv2d(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, opts: &Conv2dOptions) -> Result<Tensor> {
    const OP: &str = "conv2d";
    check_tensors(OP, &[Some(x), Some(w), bias])?;
    let g = geometry(OP, x.shape(), w.shape(), opts)?;
    check_bias(OP, bias, g.out_channels)?;
    let out = Tensor::empty(x.gpu(), &g.output_shape(), DType::F32)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let epilogue = bias.map_or(Epilogue::Plain, Epilogue::Bias);
    if depthwise::handles(&g) {
        depthwise::forward(x, w, epilogue, &g, &out)?;
        return Ok(out);
    }
    if reads_directly(x, &g, g.in_per_group()) {
        Pointwise::forward(&g).launch(x, w, epilogue, &out)?;
        return Ok(out);
    }
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    let (hp, wp) = (g.padded_h(), g.padded_w());
    let [sh, sw] = opts.stride;
    let [dh, dw] = opts.dilation;
    let (cin_g, cout_g) = (g.in_per_group(), g.out_per_group());
    let quads = cin_g.div_ceil(4);
    let area = kh * kw;
    let packed_x = pack_planes(
        x,
        [g.batch, g.in_channels, g.groups],
        [g.in_h, g.in_w],
        [hp, wp],
        [-(opts.padding.top as i64), -(opts.padding.left as i64)],
        opts.input_activation,
    )?;
    let packed_w = pack_weights(
        w,
        g.groups * cout_g,
        cout_g,
        area,
        cin_g,
        [cout_g * cin_g * area, cin_g * area, area],
    )?;
    // One phase: header, then one tap per (channel quad, ky, kx).
    let mut table = vec![
        [3, (quads * area) as u32],
        [g.out_h as u32, g.out_w as u32],
        [0, 0],
    ];
    for q in 0..quads {
        for ky in 0..kh {
            for kx in 0..kw {
                table.push([
                    ((ky * kw + kx) * quads + q) as u32,
                    (q * hp * wp + ky * dh * wp + kx * dw) as u32,
                ]);
            }
        }
    }
    let spec = GemmSpec {
        images: g.batch,
        groups: g.groups,
        rows_per_group: cout_g,
        a_group_stride: cout_g * area * quads,
        a_row_stride: area * quads,
        b_group_stride: quads * hp * wp,
        b_image_stride: g.groups * quads * hp * wp,
        b_row_stride: sh * wp,
        b_col_stride: sw,
        direct: None,
        out_image_stride: g.out_channels * g.out_h * g.out_w,
        out_channel_stride: g.out_h * g.out_w,
        out_row_stride: g.out_w,
        out_col_stride: 1,
        phases: 1,
        max_phase_pixels: g.batch * g.out_h * g.out_w,
    };
    launch_gemm(&packed_w, &packed_x, &table, epilogue, &out, &spec)?;
    Ok(out)
}

/// Gradient of `conv2d` with respect to its input: a transposed convolution of `dy`, computed
/// as a gather (every dx element sums the (ky, kx, cout) that reach it). For options with an
/// input activation, use [`conv2d_backward_input_activated`], which needs the input itself.
pub fn conv2d_backward_input(
    dy: &Tensor,
    w: &Tensor,
    opts: &Conv2dOptions,
    input_shape: &[usize],
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_input";
    if opts.input_activation != Activation::None {
        return Err(Error::InvalidArgument(format!(
            "{OP}: a convolution with input activation {:?} needs its input; use conv2d_backward_input_activated",
            opts.input_activation
        )));
    }
    input_gradient(OP, dy, w, opts, input_shape, None)
}

/// Gradient of `conv2d(act(x), w)` with respect to `x`: the input gradient times `act'(x)`,
/// applied in the kernels' epilogue.
pub fn conv2d_backward_input_activated(
    dy: &Tensor,
    w: &Tensor,
    opts: &Conv2dOptions,
    x: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_input_activated";
    check_tensors(OP, &[Some(x)])?;
    input_gradient(OP, dy, w, opts, x.shape(), Some(x))
}

fn input_gradient(
    op: &'static str,
    dy: &Tensor,
    w: &Tensor,
    opts: &Conv2dOptions,
    input_shape: &[usize],
    x: Option<&Tensor>,
) -> Result<Tensor> {
    check_tensors(op, &[Some(dy), Some(w), x])?;
    let g = geometry(op, input_shape, w.shape(), opts)?;
    check_grad_shape(op, dy.shape(), &g)?;
    let out = Tensor::empty(dy.gpu(), &g.input_shape(), DType::F32)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let epilogue = match x {
        Some(x) if opts.input_activation != Activation::None => Epilogue::Masked(x, opts.input_activation),
        _ => Epilogue::Plain,
    };
    if depthwise::handles_backward(&g) {
        depthwise::backward_input(dy, w, &g, epilogue, &out)?;
    } else if opts.stride == [1, 1] && reads_directly(dy, &g, g.out_per_group()) {
        Pointwise::input_gradient(&g).launch(dy, w, epilogue, &out)?;
    } else {
        input_gradient_into(dy, w, epilogue, &g, &out)?;
    }
    Ok(out)
}

/// Gradient of `conv2d` with respect to its weight: each dw element is a reduction over
/// (N, OH, OW), computed by one invocation (no atomics).
pub fn conv2d_backward_weight(
    x: &Tensor,
    dy: &Tensor,
    opts: &Conv2dOptions,
    weight_shape: &[usize],
) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_weight";
    check_tensors(OP, &[Some(x), Some(dy)])?;
    let g = geometry(OP, x.shape(), weight_shape, opts)?;
    check_grad_shape(OP, dy.shape(), &g)?;
    let out = Tensor::empty(x.gpu(), &g.weight_shape(), DType::F32)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    if g.batch * g.out_h * g.out_w == 0 {
        return Tensor::zeros(x.gpu(), &g.weight_shape());
    }
    let (hp, wp) = (g.padded_h(), g.padded_w());
    let packed_x = pack_planes(
        x,
        [g.batch, g.in_channels, g.groups],
        [g.in_h, g.in_w],
        [hp, wp],
        [-(opts.padding.top as i64), -(opts.padding.left as i64)],
        opts.input_activation,
    )?;
    weight_grad::launch(dy, &packed_x, &g, [hp, wp], &out)?;
    Ok(out)
}

/// Gradient of the bias: `dy` summed over N, H and W.
pub fn conv2d_backward_bias(dy: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv2d_backward_bias";
    check_tensors(OP, &[Some(dy)])?;
    if dy.rank() != 4 {
        return Err(Error::Shape {
            op: OP,
            detail: format!("dy {:?} is not [N, C, H, W]", dy.shape()),
        });
    }
    let [n, c, h, w] = [dy.shape()[0], dy.shape()[1], dy.shape()[2], dy.shape()[3]];
    if c == 0 {
        return Tensor::empty(dy.gpu(), &[0], DType::F32);
    }
    let out = Tensor::empty(dy.gpu(), &[c], DType::F32)?;
    bias_grad::launch(dy, [n, c, h * w], &out)?;
    Ok(out)
}

/// PyTorch's `conv_transpose2d` with `groups = 1`: `x: [N, Cin, H, W]`, `w: [Cin, Cout, KH, KW]`,
/// output `[N, Cout, (H−1)·s − 2p + d·(K−1) + output_padding + 1, …]`.
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: [usize; 2],
    padding: [usize; 2],
    output_padding: [usize; 2],
    dilation: [usize; 2],
) -> Result<Tensor> {
    const OP: &str = "conv_transpose2d";
    check_tensors(OP, &[Some(x), Some(w), bias])?;
    let shape =
        conv_transpose2d_output_shape(x.shape(), w.shape(), stride, padding, output_padding, dilation)?;
    check_bias(OP, bias, shape[1])?;
    let opts = Conv2dOptions {
        stride,
        padding: Padding::symmetric(padding[0], padding[1]),
        dilation,
        groups: 1,
        input_activation: Activation::None,
    };
    // The transposed convolution of x is the input gradient of the convolution whose output
    // is x and whose weight is w ([Cin_t, Cout_t, KH, KW] read as [Cout, Cin, KH, KW]).
    let g = geometry(OP, &shape, w.shape(), &opts)?;
    check_grad_shape(OP, x.shape(), &g)?;
    let out = Tensor::empty(x.gpu(), &shape, DType::F32)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    input_gradient_into(x, w, bias.map_or(Epilogue::Plain, Epilogue::Bias), &g, &out)?;
    Ok(out)
}

/// Output shape of [`conv_transpose2d`].
pub fn conv_transpose2d_output_shape(
    x_shape: &[usize],
    w_shape: &[usize],
    stride: [usize; 2],
    padding: [usize; 2],
    output_padding: [usize; 2],
    dilation: [usize; 2],
) -> Result<[usize; 4]> {
    const OP: &str = "conv_transpose2d";
    let err = |detail: String| Error::Shape { op: OP, detail };
    if x_shape.len() != 4 || w_shape.len() != 4 {
        return Err(err(format!(
            "input {x_shape:?} and weight {w_shape:?} must both be 4-D"
        )));
    }
    if x_shape[1] != w_shape[0] {
        return Err(err(format!(
            "input {x_shape:?} has {} channels but weight {w_shape:?} expects {}",
            x_shape[1], w_shape[0]
        )));
    }
    if stride.contains(&0) || dilation.contains(&0) {
        return Err(err(format!(
            "stride {stride:?} and dilation {dilation:?} must be positive"
        )));
    }
    let mut size = [0usize; 2];
    for a in 0..2 {
        if output_padding[a] >= stride[a].max(dilation[a]) {
            return Err(err(format!(
                "output_padding {output_padding:?} must be smaller than stride {stride:?} or dilation {dilation:?}"
            )));
        }
        let full = (x_shape[2 + a] as i64 - 1) * stride[a] as i64
            + (dilation[a] * (w_shape[2 + a].max(1) - 1)) as i64
            + output_padding[a] as i64
            + 1;
        let n = full - 2 * padding[a] as i64;
        if x_shape[2 + a] == 0 || w_shape[2 + a] == 0 || n <= 0 {
            return Err(err(format!(
                "input {x_shape:?} with weight {w_shape:?}, stride {stride:?}, padding {padding:?} gives an empty output"
            )));
        }
        size[a] = n as usize;
    }
    Ok([x_shape[0], w_shape[1], size[0], size[1]])
}

// ---------------------------------------------------------------------------------------

fn geometry(
    op: &'static str,
    x_shape: &[usize],
    w_shape: &[usize],
    opts: &Conv2dOptions,
) -> Result<ConvGeometry> {
    let err = |detail: String| Error::Shape { op, detail };
    if x_shape.len() != 4 || w_shape.len() != 4 {
        return Err(err(format!(
            "input {x_shape:?} and weight {w_shape:?} must both be 4-D (NCHW and [Cout, Cin/groups, KH, KW])"
        )));
    }
    if opts.stride.contains(&0) || opts.dilation.contains(&0) || opts.groups == 0 {
        return Err(err(format!(
            "stride {:?}, dilation {:?} and groups {} must be positive",
            opts.stride, opts.dilation, opts.groups
        )));
    }
    let [n, cin, h, w] = [x_shape[0], x_shape[1], x_shape[2], x_shape[3]];
    let [cout, cin_g, kh, kw] = [w_shape[0], w_shape[1], w_shape[2], w_shape[3]];
    let groups = opts.groups;
    if cin % groups != 0 || cout % groups != 0 {
        return Err(err(format!(
            "groups {groups} must divide the input channels of {x_shape:?} and the output channels of weight {w_shape:?}"
        )));
    }
    if cin_g != cin / groups {
        return Err(err(format!(
            "input {x_shape:?} has {cin} channels, so weight {w_shape:?} needs {} input channels per group (groups {groups})",
            cin / groups
        )));
    }
    if kh == 0 || kw == 0 || cin == 0 {
        return Err(err(format!(
            "empty kernel or channels: input {x_shape:?}, weight {w_shape:?}"
        )));
    }
    let p = opts.padding;
    let extent_h = opts.dilation[0] * (kh - 1) + 1;
    let extent_w = opts.dilation[1] * (kw - 1) + 1;
    let (hp, wp) = (h + p.top + p.bottom, w + p.left + p.right);
    if extent_h > hp || extent_w > wp {
        return Err(err(format!(
            "dilated kernel {extent_h}x{extent_w} of weight {w_shape:?} is larger than the padded input {hp}x{wp} of {x_shape:?}"
        )));
    }
    let g = ConvGeometry {
        batch: n,
        in_channels: cin,
        in_h: h,
        in_w: w,
        out_channels: cout,
        kernel_h: kh,
        kernel_w: kw,
        out_h: (hp - extent_h) / opts.stride[0] + 1,
        out_w: (wp - extent_w) / opts.stride[1] + 1,
        groups,
        opts: *opts,
    };
    // Offsets are 32-bit in the kernels.
    let padded = n * cin * hp * wp;
    if padded > u32::MAX as usize / 2 || n * cout * g.out_h * g.out_w > u32::MAX as usize / 2 {
        return Err(err(format!(
            "input {x_shape:?} with weight {w_shape:?} is too large for 32-bit offsets"
        )));
    }
    Ok(g)
}

fn check_grad_shape(op: &'static str, dy: &[usize], g: &ConvGeometry) -> Result<()> {
    if dy != g.output_shape() {
        return Err(Error::Shape {
            op,
            detail: format!(
                "gradient {dy:?} does not match the convolution output {:?} of input {:?} and weight {:?}",
                g.output_shape(),
                g.input_shape(),
                g.weight_shape()
            ),
        });
    }
    Ok(())
}

fn check_bias(op: &'static str, bias: Option<&Tensor>, channels: usize) -> Result<()> {
    match bias {
        Some(b) if b.shape() != [channels] => Err(Error::Shape {
            op,
            detail: format!("bias {:?} vs {channels} output channels", b.shape()),
        }),
        _ => Ok(()),
    }
}

fn check_tensors(op: &'static str, tensors: &[Option<&Tensor>]) -> Result<()> {
    let present: Vec<&Tensor> = tensors.iter().flatten().copied().collect();
    for t in &present {
        t.expect_f32(op)?;
        t.same_gpu(present[0], op)?;
    }
    Ok(())
}

/// Whether the GEMM reads B straight from the NCHW tensor: a 1×1 kernel with no padding
/// (every pixel it reads exists) and whole quads of `channels` (the reduction's channels per
/// group), on any adapter but lavapipe before Mesa 25.1 under the `cpu` profile. There a
/// packed vec4 costs one per-lane branch for four values, and the packed Lite0 FIDO step
/// measured faster counting the packing pass; on Mesa 26 the direct one is faster
/// (RESULTS.md). The `gpu` profile reads directly everywhere, so CI tests both forms.
fn reads_directly(x: &Tensor, g: &ConvGeometry, channels: usize) -> bool {
    let gpu = x.gpu();
    (gpu.kernel_profile() == KernelProfile::Gpu || !gpu.per_lane_loads())
        && g.kernel_h == 1
        && g.kernel_w == 1
        && g.opts.padding == Padding::default()
        && channels % 4 == 0
}

/// One 1×1 convolution as a GEMM over its input tensor itself, with no packing pass: the
/// forward, or the input gradient of a stride-1 one (dy as input, the weight transposed).
struct Pointwise {
    batch: usize,
    groups: usize,
    /// Reduction channels per group (a multiple of 4) and outputs per group.
    channels: usize,
    rows: usize,
    in_size: [usize; 2],
    out_size: [usize; 2],
    stride: [usize; 2],
    /// Weight element strides per group, output row and reduction channel.
    weight_strides: [usize; 3],
    activation: Activation,
}

impl Pointwise {
    fn forward(g: &ConvGeometry) -> Self {
        let (cin_g, cout_g) = (g.in_per_group(), g.out_per_group());
        Pointwise {
            batch: g.batch,
            groups: g.groups,
            channels: cin_g,
            rows: cout_g,
            in_size: [g.in_h, g.in_w],
            out_size: [g.out_h, g.out_w],
            stride: g.opts.stride,
            weight_strides: [cout_g * cin_g, cin_g, 1],
            activation: g.opts.input_activation,
        }
    }

    fn input_gradient(g: &ConvGeometry) -> Self {
        let (cin_g, cout_g) = (g.in_per_group(), g.out_per_group());
        Pointwise {
            batch: g.batch,
            groups: g.groups,
            channels: cout_g,
            rows: cin_g,
            in_size: [g.out_h, g.out_w],
            out_size: [g.in_h, g.in_w],
            stride: [1, 1],
            weight_strides: [cout_g * cin_g, 1, cin_g],
            activation: Activation::None,
        }
    }

    fn launch(&self, x: &Tensor, w: &Tensor, epilogue: Epilogue, out: &Tensor) -> Result<()> {
        let quads = self.channels / 4;
        let plane = self.in_size[0] * self.in_size[1];
        let out_plane = self.out_size[0] * self.out_size[1];
        let packed_w = pack_weights(
            w,
            self.groups * self.rows,
            self.rows,
            1,
            self.channels,
            self.weight_strides,
        )?;
        let mut table = vec![
            [3, quads as u32],
            [self.out_size[0] as u32, self.out_size[1] as u32],
            [0, 0],
        ];
        table.extend((0..quads).map(|q| [q as u32, (4 * q * plane) as u32]));
        let spec = GemmSpec {
            images: self.batch,
            groups: self.groups,
            rows_per_group: self.rows,
            a_group_stride: self.rows * quads,
            a_row_stride: quads,
            b_group_stride: self.channels * plane,
            b_image_stride: self.groups * self.channels * plane,
            b_row_stride: self.stride[0] * self.in_size[1],
            b_col_stride: self.stride[1],
            direct: Some((plane, self.activation)),
            out_image_stride: self.groups * self.rows * out_plane,
            out_channel_stride: out_plane,
            out_row_stride: self.out_size[1],
            out_col_stride: 1,
            phases: 1,
            max_phase_pixels: self.batch * out_plane,
        };
        launch_gemm(&packed_w, x, &table, epilogue, out, &spec)
    }
}

/// dx (or a transposed convolution's output) into `out: [N, Cin, H, W]` from
/// `dy: [N, Cout, OH, OW]`, one GEMM phase per (ih mod stride_h, iw mod stride_w).
fn input_gradient_into(
    dy: &Tensor,
    w: &Tensor,
    epilogue: Epilogue,
    g: &ConvGeometry,
    out: &Tensor,
) -> Result<()> {
    let opts = &g.opts;
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    let cin_g = g.in_per_group();
    let cout_g = g.out_per_group();
    let rows = PhaseAxis::new(
        g.in_h,
        g.out_h,
        kh,
        opts.stride[0],
        opts.padding.top,
        opts.dilation[0],
    );
    let cols = PhaseAxis::new(
        g.in_w,
        g.out_w,
        kw,
        opts.stride[1],
        opts.padding.left,
        opts.dilation[1],
    );
    let (hd, wd) = (rows.padded_len(), cols.padded_len());
    let area = kh * kw;
    let quads = cout_g.div_ceil(4);
    let packed_dy = pack_planes(
        dy,
        [g.batch, g.out_channels, g.groups],
        [g.out_h, g.out_w],
        [hd, wd],
        [rows.low, cols.low],
        Activation::None,
    )?;
    let packed_w = pack_weights(
        w,
        g.groups * cin_g,
        cin_g,
        area,
        cout_g,
        [cout_g * cin_g * area, area, cin_g * area],
    )?;
    let phases = opts.stride[0] * opts.stride[1];
    let mut table = vec![[0u32; 2]; 3 * phases];
    let mut max_pixels = 0;
    for rh in 0..opts.stride[0] {
        for rw in 0..opts.stride[1] {
            let z = rh * opts.stride[1] + rw;
            let (ph, pw) = (rows.pixels[rh], cols.pixels[rw]);
            let start = table.len();
            for &(ky, oy) in &rows.taps[rh] {
                for &(kx, ox) in &cols.taps[rw] {
                    let shift = (oy - rows.low) as usize * wd + (ox - cols.low) as usize;
                    for q in 0..quads {
                        table.push([((ky * kw + kx) * quads + q) as u32, (q * hd * wd + shift) as u32]);
                    }
                }
            }
            table[3 * z] = [start as u32, (table.len() - start) as u32];
            table[3 * z + 1] = [ph as u32, pw as u32];
            table[3 * z + 2] = [(rh * g.in_w + rw) as u32, 0];
            max_pixels = max_pixels.max(g.batch * ph * pw);
        }
    }
    let spec = GemmSpec {
        images: g.batch,
        groups: g.groups,
        rows_per_group: cin_g,
        a_group_stride: cin_g * area * quads,
        a_row_stride: area * quads,
        b_group_stride: quads * hd * wd,
        b_image_stride: g.groups * quads * hd * wd,
        b_row_stride: wd,
        b_col_stride: 1,
        direct: None,
        out_image_stride: g.in_channels * g.in_h * g.in_w,
        out_channel_stride: g.in_h * g.in_w,
        out_row_stride: opts.stride[0] * g.in_w,
        out_col_stride: opts.stride[1],
        phases,
        max_phase_pixels: max_pixels,
    };
    launch_gemm(&packed_w, &packed_dy, &table, epilogue, out, &spec)
}

/// One axis of the input-gradient gather. Input pixel `i = phase + stride·t` receives from
/// kernel tap `k` exactly when `i + pad − k·dilation` is a multiple of the stride, and then
/// from output pixel `t + offset(phase, k)`.
struct PhaseAxis {
    /// Input pixels per phase.
    pixels: Vec<usize>,
    /// Per phase: (tap, output offset) of the taps that reach it.
    taps: Vec<Vec<(usize, i64)>>,
    /// First output index the gather reads (≤ 0); dy is padded from here.
    low: i64,
    /// One past the last output index it reads (≥ the output length).
    high: i64,
}

impl PhaseAxis {
    fn new(in_len: usize, out_len: usize, kernel: usize, stride: usize, pad: usize, dilation: usize) -> Self {
        let (mut low, mut high) = (0i64, out_len as i64);
        let mut pixels = Vec::with_capacity(stride);
        let mut taps = Vec::with_capacity(stride);
        for phase in 0..stride {
            let count = if phase < in_len {
                (in_len - phase).div_ceil(stride)
            } else {
                0
            };
            let mut list = Vec::new();
            for k in 0..kernel {
                let num = (phase + pad) as i64 - (k * dilation) as i64;
                if num.rem_euclid(stride as i64) != 0 {
                    continue;
                }
                let offset = num.div_euclid(stride as i64);
                // Taps that only ever read padding contribute nothing.
                if count == 0 || offset + count as i64 <= 0 || offset >= out_len as i64 {
                    continue;
                }
                low = low.min(offset);
                high = high.max(offset + count as i64);
                list.push((k, offset));
            }
            pixels.push(count);
            taps.push(list);
        }
        PhaseAxis {
            pixels,
            taps,
            low,
            high,
        }
    }

    fn padded_len(&self) -> usize {
        (self.high - self.low) as usize
    }
}
