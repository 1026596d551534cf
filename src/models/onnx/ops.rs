//! Each ONNX op as calls on the tape. An op is either a tape op of its own (convolution,
//! matmul, pooling, activations, permute) or a composition of them (LayerNormalization,
//! PRelu, Pad's reflect and edge modes, Gather, Split), so every one has a backward rule.
//! Attributes fido cannot honour are errors naming the attribute and its value, never a
//! silent approximation.

use super::host::{self, normalize_axis, HostData, HostTensor};
use super::{attribute, Value};
use crate::autodiff::{Tape, Var};
use crate::gpu::Gpu;
use crate::ops::conv::{self, Activation, Conv2dOptions, Padding};
use crate::ops::elementwise::{self, UnaryOp};
use crate::ops::reduce::Reduction;
use crate::ops::resize::NearestMode;
use crate::ops::{layout, pool};
use crate::tensor::Tensor;
use crate::weights::onnx::NodeProto;
use crate::{Error, Result};

/// What one node's run sees.
pub(super) struct Context<'a> {
    pub tape: &'a Tape,
    pub gpu: &'a Gpu,
    pub node: &'a NodeProto,
    pub inputs: &'a [Option<Value>],
    pub opset: i64,
}

fn bad(detail: impl Into<String>) -> Error {
    Error::InvalidArgument(detail.into())
}

/// Input `i` as a value on the tape: weights and host floats enter as constants, and a
/// fused activation is applied for a reader that cannot fuse it.
pub(super) fn var_of(tape: &Tape, gpu: &Gpu, value: Option<&Value>, i: usize) -> Result<Var> {
    match value {
        None => Err(bad(format!("input {i} is missing"))),
        Some(Value::Var(x)) => Ok(x.clone()),
        Some(Value::Weight(t, _)) => Ok(tape.constant(t.clone())),
        Some(Value::Host(h)) => match &h.data {
            HostData::Float(v) => Ok(tape.constant(Tensor::from_slice(gpu, &h.dims, v)?)),
            HostData::Int(_) => Err(bad(format!(
                "input {i} is an integer tensor (shape {:?}) where fido needs floats",
                h.dims
            ))),
        },
        Some(Value::ConvInput { x, act, pads }) => {
            let y = match act {
                Activation::None => x.clone(),
                Activation::Relu => x.relu()?,
                Activation::Relu6 => x.relu6()?,
            };
            if *pads == [0; 4] {
                Ok(y)
            } else {
                y.pad(*pads, 0.0)
            }
        }
    }
}

impl Context<'_> {
    fn input(&self, i: usize) -> Option<&Value> {
        self.inputs.get(i).and_then(Option::as_ref)
    }
    fn var(&self, i: usize) -> Result<Var> {
        var_of(self.tape, self.gpu, self.input(i), i)
    }
    fn host(&self, i: usize) -> Option<HostTensor> {
        self.input(i).and_then(super::host_form)
    }
    /// Input `i` as constant integers (a shape, axes, indices).
    fn ints(&self, i: usize) -> Result<Vec<i64>> {
        self.host(i)
            .map(|h| h.as_ints())
            .ok_or_else(|| bad(format!("input {i} must be a constant or a shape computation")))
    }
    /// The one value of input `i`, when it is a single-element constant.
    fn scalar(&self, i: usize) -> Option<f32> {
        self.host(i)
            .filter(|h| h.numel() == 1)
            .and_then(|h| h.scalar().ok())
    }
    /// A weight tensor: BatchNormalization statistics, ConvTranspose kernels.
    fn weight(&self, i: usize) -> Result<Tensor> {
        match self.input(i) {
            Some(Value::Weight(t, _)) => Ok(t.clone()),
            _ => Err(bad(format!("input {i} must be a float initializer"))),
        }
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        attribute(self.node, name).map_or(default, |a| a.i)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        attribute(self.node, name).map_or(default, |a| a.f)
    }
    fn list(&self, name: &str) -> Option<Vec<i64>> {
        attribute(self.node, name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str, default: &str) -> String {
        attribute(self.node, name)
            .map_or_else(|| default.into(), |a| String::from_utf8_lossy(&a.s).into_owned())
    }
    /// Axes from input `i` (newer opsets) or the `axes` attribute (older ones).
    fn axes(&self, i: usize) -> Result<Option<Vec<i64>>> {
        if self.input(i).is_some() {
            return self.ints(i).map(Some);
        }
        Ok(self.list("axes"))
    }
}

/// Run the node on the GPU; one value per output.
pub(super) fn run(ctx: &Context) -> Result<Vec<Value>> {
    let op = ctx.node.op_type.as_str();
    let one = |v: Var| Ok(vec![Value::Var(v)]);
    if op == "Split" {
        return split(ctx);
    }
    if op == "Conv" {
        return one(convolution(ctx)?);
    }
    let x = ctx.var(0)?;
    match op {
        "Identity" | "Dropout" => one(x),
        "Cast" => match ctx.int("to", 1) {
            1 | 10 | 11 | 16 => one(x),
            to => Err(bad(format!(
                "Cast of an activation to type {to}: fido computes in floats only"
            ))),
        },
        "Relu" => one(x.relu()?),
        "LeakyRelu" => one(x.unary(UnaryOp::LeakyRelu {
            alpha: ctx.float("alpha", 0.01),
        })?),
        "PRelu" => {
            // relu(x) − slope·relu(−x): the slope broadcasts as ONNX says, and each piece
            // has its rule.
            let slope = ctx.var(1)?;
            one(x.relu()?.sub(&slope.mul(&x.neg()?.relu()?)?)?)
        }
        "Sigmoid" => one(x.sigmoid()?),
        "HardSigmoid" => one(x.unary(UnaryOp::HardSigmoid {
            alpha: ctx.float("alpha", 0.2),
            beta: ctx.float("beta", 0.5),
        })?),
        "HardSwish" => one(x.unary(UnaryOp::HardSwish)?),
        "Tanh" => one(x.unary(UnaryOp::Tanh)?),
        "Erf" => one(x.unary(UnaryOp::Erf)?),
        "Gelu" => match ctx.string("approximate", "none").as_str() {
            "none" => one(x.unary(UnaryOp::Gelu)?),
            "tanh" => one(x.unary(UnaryOp::GeluTanh)?),
            other => Err(bad(format!("Gelu approximate `{other}`"))),
        },
        "Exp" => one(x.exp()?),
        "Log" => one(x.log()?),
        "Sqrt" => one(x.unary(UnaryOp::Sqrt)?),
        "Neg" => one(x.neg()?),
        "Abs" => one(x.unary(UnaryOp::Abs)?),
        "Pow" => {
            let e = ctx
                .scalar(1)
                .ok_or_else(|| bad("Pow needs a constant single-value exponent"))?;
            one(match e {
                1.0 => x,
                2.0 => x.unary(UnaryOp::Square)?,
                0.5 => x.unary(UnaryOp::Sqrt)?,
                e => x.unary(UnaryOp::PowScalar(e))?,
            })
        }
        "Clip" => {
            let lo = ctx.scalar(1).unwrap_or(f32::MIN);
            let hi = ctx.scalar(2).unwrap_or(f32::MAX);
            if ctx.input(1).is_some() && ctx.scalar(1).is_none()
                || ctx.input(2).is_some() && ctx.scalar(2).is_none()
            {
                return Err(bad("Clip bounds must be constants"));
            }
            one(if lo == 0.0 && hi == 6.0 {
                x.relu6()?
            } else {
                x.unary(UnaryOp::Clamp { lo, hi })?
            })
        }
        "Softmax" | "LogSoftmax" => one(softmax(ctx, &x, op == "LogSoftmax")?),
        "Add" | "Sub" | "Mul" | "Div" => one(arithmetic(ctx, op)?),
        "ConvTranspose" => one(conv_transpose(ctx, &x)?),
        "Gemm" => {
            let flag = |name: &str| ctx.int(name, 0) != 0;
            let alpha = ctx.float("alpha", 1.0);
            let beta = ctx.float("beta", 1.0);
            let mut y = x.matmul(&ctx.var(1)?, flag("transA"), flag("transB"))?;
            if alpha != 1.0 {
                y = y.mul_scalar(alpha)?;
            }
            if ctx.input(2).is_some() {
                let c = ctx.var(2)?;
                let c = if beta != 1.0 { c.mul_scalar(beta)? } else { c };
                y = y.add(&c)?;
            }
            one(y)
        }
        "MatMul" => one(matmul(&x, &ctx.var(1)?)?),
        "BatchNormalization" => {
            let eps = ctx.float("epsilon", 1e-5);
            one(x.batch_norm(
                &ctx.weight(1)?,
                &ctx.weight(2)?,
                &ctx.weight(3)?,
                &ctx.weight(4)?,
                eps,
            )?)
        }
        "LayerNormalization" => one(layer_norm(ctx, &x)?),
        "MaxPool" | "AveragePool" => one(pool(ctx, &x, op == "MaxPool")?),
        "GlobalAveragePool" => {
            need_rank(&x, 4)?;
            one(x.global_avg_pool()?)
        }
        "GlobalMaxPool" => {
            let s = need_rank(&x, 4)?;
            let flat = x.reshape(&[s[0], s[1], s[2] * s[3]])?;
            one(flat.reduce_max_axis(2, false)?.reshape(&[s[0], s[1], 1, 1])?)
        }
        "ReduceMean" | "ReduceSum" | "ReduceMax" => one(reduce(ctx, &x, op)?),
        "Flatten" => {
            let rank = x.shape().len();
            let axis = ctx.int("axis", 1);
            let axis = if axis == rank as i64 {
                rank
            } else {
                normalize_axis(axis, rank)?
            };
            let (lead, tail) = x.shape().split_at(axis);
            let shape = [lead.iter().product(), tail.iter().product()];
            one(x.reshape(&shape)?)
        }
        "Reshape" => {
            let shape = host::reshape_target(x.shape(), &ctx.ints(1)?, ctx.int("allowzero", 0) != 0)?;
            one(x.reshape(&shape)?)
        }
        "Squeeze" => {
            let axes = ctx.axes(1)?.unwrap_or_default();
            one(x.reshape(&host::squeeze_shape(x.shape(), &axes)?)?)
        }
        "Unsqueeze" => {
            let axes = ctx.axes(1)?.ok_or_else(|| bad("Unsqueeze needs axes"))?;
            one(x.reshape(&host::unsqueeze_shape(x.shape(), &axes)?)?)
        }
        "Expand" => {
            let target: Vec<usize> = ctx.ints(1)?.iter().map(|&d| d.max(0) as usize).collect();
            let shape = host::broadcast_shape(x.shape(), &target)?;
            one(if shape == x.shape() {
                x
            } else {
                x.broadcast_to(&shape)?
            })
        }
        "Transpose" => {
            let rank = x.shape().len();
            let perm: Vec<usize> = match ctx.list("perm") {
                Some(p) => p
                    .iter()
                    .map(|&a| normalize_axis(a, rank))
                    .collect::<Result<_>>()?,
                None => (0..rank).rev().collect(),
            };
            one(x.permute(&perm)?)
        }
        "Concat" => {
            let parts: Vec<Var> = (0..ctx.inputs.len())
                .filter(|&i| ctx.input(i).is_some())
                .map(|i| ctx.var(i))
                .collect::<Result<_>>()?;
            let axis = normalize_axis(ctx.int("axis", 0), x.shape().len())?;
            let refs: Vec<&Var> = parts.iter().filter(|p| p.shape()[axis] > 0).collect();
            one(Var::concat(&refs, axis)?)
        }
        "Slice" => one(slice(ctx, &x)?),
        "Gather" => one(gather(ctx, &x)?),
        "Pad" => one(pad(ctx, &x)?),
        "Resize" | "Upsample" => one(resize(ctx, &x)?),
        other => Err(bad(format!("`{other}` has no rule for activations"))),
    }
}

fn need_rank(x: &Var, rank: usize) -> Result<Vec<usize>> {
    if x.shape().len() != rank {
        return Err(bad(format!(
            "expected a {rank}-D input, got shape {:?}",
            x.shape()
        )));
    }
    Ok(x.shape().to_vec())
}

/// Add, Sub, Mul and Div; a single-value constant operand becomes a scalar op, which saves
/// reading a broadcast tensor (the constants of an exported GELU, say).
fn arithmetic(ctx: &Context, op: &str) -> Result<Var> {
    let activation = |i: usize| !matches!(ctx.input(i), Some(Value::Host(_)) | Some(Value::Weight(..)));
    if activation(0) {
        if let Some(s) = ctx.scalar(1) {
            let x = ctx.var(0)?;
            return match op {
                "Add" => x.add_scalar(s),
                "Sub" => x.add_scalar(-s),
                "Mul" => x.mul_scalar(s),
                _ => x.mul_scalar(1.0 / s),
            };
        }
    }
    if activation(1) {
        if let Some(s) = ctx.scalar(0) {
            let y = ctx.var(1)?;
            return match op {
                "Add" => y.add_scalar(s),
                "Sub" => y.unary(UnaryOp::RsubScalar(s)),
                "Mul" => y.mul_scalar(s),
                _ => y.unary(UnaryOp::RdivScalar(s)),
            };
        }
    }
    let (a, b) = (ctx.var(0)?, ctx.var(1)?);
    match op {
        "Add" => a.add(&b),
        "Sub" => a.sub(&b),
        "Mul" => a.mul(&b),
        _ => a.div(&b),
    }
}

/// Softmax over `axis`. From opset 13 the axis is one axis; before, the input is read as
/// a matrix whose rows start at `axis`.
fn softmax(ctx: &Context, x: &Var, log: bool) -> Result<Var> {
    let apply = |v: &Var| if log { v.log_softmax() } else { v.softmax() };
    let rank = x.shape().len();
    let shape = x.shape().to_vec();
    if ctx.opset < 13 {
        let axis = normalize_axis(ctx.int("axis", 1), rank)?;
        let rows: usize = shape[..axis].iter().product();
        let y = apply(&x.reshape(&[rows, shape[axis..].iter().product()])?)?;
        return y.reshape(&shape);
    }
    let axis = normalize_axis(ctx.int("axis", -1), rank)?;
    if axis == rank - 1 {
        return apply(x);
    }
    let mut perm: Vec<usize> = (0..rank).collect();
    perm.swap(axis, rank - 1);
    apply(&x.permute(&perm)?)?.permute(&perm)
}

/// Conv, with a producer's fused activation and zero padding applied as the input is read.
fn convolution(ctx: &Context) -> Result<Var> {
    let (x, act, extra) = match ctx.input(0) {
        Some(Value::ConvInput { x, act, pads }) => (x.clone(), *act, *pads),
        _ => (ctx.var(0)?, Activation::None, [0; 4]),
    };
    let w = ctx.var(1)?;
    // SAME padding is computed from the padded input the graph describes.
    let mut shape = x.shape().to_vec();
    if shape.len() == 4 {
        shape[2] += extra[0] + extra[1];
        shape[3] += extra[2] + extra[3];
    }
    let mut opts = conv_options(ctx, &shape, w.shape())?.input_activation(act);
    opts.padding = Padding {
        top: opts.padding.top + extra[0],
        bottom: opts.padding.bottom + extra[1],
        left: opts.padding.left + extra[2],
        right: opts.padding.right + extra[3],
    };
    let b = ctx.input(2).map(|_| ctx.var(2)).transpose()?;
    x.conv2d(&w, b.as_ref(), &opts)
}

/// Two non-negative integers of a 2-D attribute, or `default`.
fn pair(ctx: &Context, name: &str, default: [usize; 2]) -> Result<[usize; 2]> {
    match ctx.list(name) {
        None => Ok(default),
        Some(v) if v.len() == 2 && v.iter().all(|&x| x >= 0) => Ok([v[0] as usize, v[1] as usize]),
        Some(v) => Err(bad(format!(
            "`{name}` is {v:?}; fido runs 2-D images, so it takes two non-negative values"
        ))),
    }
}

/// `pads` as (top, left, bottom, right), or zeros.
fn pads(ctx: &Context) -> Result<[usize; 4]> {
    match ctx.list("pads") {
        None => Ok([0; 4]),
        Some(v) if v.len() == 4 && v.iter().all(|&x| x >= 0) => {
            Ok([v[0] as usize, v[1] as usize, v[2] as usize, v[3] as usize])
        }
        Some(v) => Err(bad(format!("`pads` is {v:?}; expected four non-negative values"))),
    }
}

/// Padding that SAME_UPPER / SAME_LOWER give: output = ceil(input / stride).
fn same_padding(size: usize, kernel: usize, stride: usize, dilation: usize, upper: bool) -> (usize, usize) {
    let extent = (kernel - 1) * dilation + 1;
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + extent).saturating_sub(size);
    let small = total / 2;
    if upper {
        (small, total - small)
    } else {
        (total - small, small)
    }
}

/// (top, left, bottom, right) padding from `pads` or `auto_pad`.
fn spatial_pads(
    ctx: &Context,
    x: &[usize],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<[usize; 4]> {
    Ok(match ctx.string("auto_pad", "NOTSET").as_str() {
        "NOTSET" => pads(ctx)?,
        "VALID" => [0; 4],
        mode @ ("SAME_UPPER" | "SAME_LOWER") => {
            let upper = mode == "SAME_UPPER";
            let (t, b) = same_padding(x[2], kernel[0], stride[0], dilation[0], upper);
            let (l, r) = same_padding(x[3], kernel[1], stride[1], dilation[1], upper);
            [t, l, b, r]
        }
        other => return Err(bad(format!("auto_pad `{other}`"))),
    })
}

fn conv_options(ctx: &Context, x: &[usize], w: &[usize]) -> Result<Conv2dOptions> {
    if x.len() != 4 || w.len() != 4 {
        return Err(bad(format!(
            "input {x:?} and weight {w:?}: fido runs 2-D convolutions (4-D tensors)"
        )));
    }
    let stride = pair(ctx, "strides", [1, 1])?;
    let dilation = pair(ctx, "dilations", [1, 1])?;
    let groups = ctx.int("group", 1);
    if groups < 1 {
        return Err(bad(format!("group {groups}")));
    }
    let [top, left, bottom, right] = spatial_pads(ctx, x, [w[2], w[3]], stride, dilation)?;
    Ok(Conv2dOptions::new()
        .stride(stride[0], stride[1])
        .dilation(dilation[0], dilation[1])
        .padding(Padding {
            top,
            bottom,
            left,
            right,
        })
        .groups(groups as usize))
}

/// ConvTranspose with a constant kernel. Its input gradient is the forward convolution
/// with the same kernel, stride, padding and dilation.
fn conv_transpose(ctx: &Context, x: &Var) -> Result<Var> {
    need_rank(x, 4)?;
    let w = ctx.weight(1)?;
    let groups = usize::try_from(ctx.int("group", 1)).unwrap_or(0);
    let cin = x.shape()[1];
    if groups == 0 || cin % groups != 0 || w.shape().len() != 4 || w.shape()[0] != cin {
        return Err(bad(format!(
            "ConvTranspose of {cin} channels with weight {:?} and group {}",
            w.shape(),
            ctx.int("group", 1)
        )));
    }
    if ctx.list("output_shape").is_some() {
        return Err(bad(
            "ConvTranspose `output_shape` is not supported yet; give pads and output_padding",
        ));
    }
    match ctx.string("auto_pad", "NOTSET").as_str() {
        "NOTSET" | "VALID" => {}
        other => {
            return Err(bad(format!(
                "ConvTranspose auto_pad `{other}` is not supported yet"
            )))
        }
    }
    let stride = pair(ctx, "strides", [1, 1])?;
    let dilation = pair(ctx, "dilations", [1, 1])?;
    let output_padding = pair(ctx, "output_padding", [0, 0])?;
    let [top, left, bottom, right] = pads(ctx)?;
    if top != bottom || left != right {
        return Err(bad(format!(
            "ConvTranspose pads {:?}: only symmetric padding is supported",
            [top, left, bottom, right]
        )));
    }
    let bias = ctx.input(2).map(|_| ctx.weight(2)).transpose()?;
    let geometry = TransposeGeometry {
        stride,
        padding: [top, left],
        output_padding,
        dilation,
    };
    if groups == 1 {
        return geometry.apply(x, w, bias);
    }
    // A grouped transposed convolution is one per group of input channels, side by side.
    let (per_in, per_out) = (cin / groups, w.shape()[1]);
    let parts: Vec<Var> = (0..groups)
        .map(|g| {
            let xg = x.slice(1, g * per_in, (g + 1) * per_in)?;
            let wg = layout::slice(&w, 0, g * per_in, (g + 1) * per_in)?;
            let bg = bias
                .as_ref()
                .map(|b| layout::slice(b, 0, g * per_out, (g + 1) * per_out))
                .transpose()?;
            geometry.apply(&xg, wg, bg)
        })
        .collect::<Result<_>>()?;
    let refs: Vec<&Var> = parts.iter().collect();
    Var::concat(&refs, 1)
}

struct TransposeGeometry {
    stride: [usize; 2],
    padding: [usize; 2],
    output_padding: [usize; 2],
    dilation: [usize; 2],
}

impl TransposeGeometry {
    /// `conv_transpose2d(x, w) + bias` on the tape; the input gradient is the forward
    /// convolution of the output gradient with the same kernel and geometry.
    fn apply(&self, x: &Var, w: Tensor, bias: Option<Tensor>) -> Result<Var> {
        let out = conv::conv_transpose2d(
            x.value(),
            &w,
            bias.as_ref(),
            self.stride,
            self.padding,
            self.output_padding,
            self.dilation,
        )?;
        let opts = Conv2dOptions::new()
            .stride(self.stride[0], self.stride[1])
            .dilation(self.dilation[0], self.dilation[1])
            .padding(Padding::symmetric(self.padding[0], self.padding[1]));
        let in_shape = x.shape().to_vec();
        Ok(x.record_unary("conv_transpose2d", out, move |dy| {
            let dx = conv::conv2d(dy, &w, None, &opts)?;
            if dx.shape() != in_shape.as_slice() {
                return Err(Error::Shape {
                    op: "conv_transpose2d backward",
                    detail: format!("gradient {:?} for an input of shape {in_shape:?}", dx.shape()),
                });
            }
            Ok(dx)
        }))
    }
}

/// MatMul with numpy's broadcasting of the batch axes and 1-D operands.
fn matmul(a: &Var, b: &Var) -> Result<Var> {
    let (a1, b1) = (a.shape().len() == 1, b.shape().len() == 1);
    let a = if a1 {
        a.reshape(&[1, a.shape()[0]])?
    } else {
        a.clone()
    };
    let b = if b1 {
        b.reshape(&[b.shape()[0], 1])?
    } else {
        b.clone()
    };
    let (ra, rb) = (a.shape().len(), b.shape().len());
    let (lead_a, lead_b) = (&a.shape()[..ra - 2], &b.shape()[..rb - 2]);
    let batch = host::broadcast_shape(lead_a, lead_b)?;
    let count = |s: &[usize]| s.iter().product::<usize>();
    let fits = |lead: &[usize]| count(lead) == 1 || count(lead) == count(&batch) && lead.len() == batch.len();
    let (a, b) = if fits(lead_a) && fits(lead_b) {
        (a.clone(), b.clone())
    } else {
        let full = |x: &Var| -> Result<Var> {
            let r = x.shape().len();
            let mut shape = batch.clone();
            shape.extend_from_slice(&x.shape()[r - 2..]);
            x.broadcast_to(&shape)
        };
        (full(&a)?, full(&b)?)
    };
    let y = a.matmul(&b, false, false)?;
    let (m, n) = (a.shape()[a.shape().len() - 2], b.shape()[b.shape().len() - 1]);
    let mut shape = batch;
    if !a1 {
        shape.push(m);
    }
    if !b1 {
        shape.push(n);
    }
    y.reshape(&shape)
}

/// LayerNormalization over the axes from `axis` on, composed of tape ops.
fn layer_norm(ctx: &Context, x: &Var) -> Result<Var> {
    let shape = x.shape().to_vec();
    let axis = normalize_axis(ctx.int("axis", -1), shape.len())?;
    let eps = ctx.float("epsilon", 1e-5);
    let rows: usize = shape[..axis].iter().product();
    let flat = x.reshape(&[rows, shape[axis..].iter().product()])?;
    let centred = flat.sub(&flat.reduce_axis(1, Reduction::Mean, true)?)?;
    let variance = centred
        .unary(UnaryOp::Square)?
        .reduce_axis(1, Reduction::Mean, true)?;
    let normed = centred
        .div(&variance.add_scalar(eps)?.unary(UnaryOp::Sqrt)?)?
        .reshape(&shape)?;
    let scaled = normed.mul(&ctx.var(1)?)?;
    match ctx.input(2) {
        Some(_) => scaled.add(&ctx.var(2)?),
        None => Ok(scaled),
    }
}

/// MaxPool and AveragePool, with `ceil_mode` and asymmetric padding: what the pooling
/// kernels do not take directly becomes explicit padding first.
fn pool(ctx: &Context, x: &Var, max: bool) -> Result<Var> {
    let s = need_rank(x, 4)?;
    let kernel = pair(ctx, "kernel_shape", [0, 0])?;
    if kernel.contains(&0) {
        return Err(bad("`kernel_shape` is missing"));
    }
    let stride = pair(ctx, "strides", [1, 1])?;
    if pair(ctx, "dilations", [1, 1])? != [1, 1] {
        return Err(bad("dilated pooling is not supported yet"));
    }
    if max && ctx.node.output.get(1).is_some_and(|o| !o.is_empty()) {
        return Err(bad("MaxPool's Indices output is not supported"));
    }
    let [top, left, bottom, right] = spatial_pads(ctx, &s, kernel, stride, [1, 1])?;
    let ceil = ctx.int("ceil_mode", 0) != 0;
    // Rows and columns a ceil-mode window reaches beyond the padded input.
    let extra = |size: usize, k: usize, st: usize, before: usize, after: usize| -> Result<usize> {
        let padded = size + before + after;
        if padded < k {
            return Err(bad(format!(
                "a pooling window of {k} is larger than the padded input ({padded})"
            )));
        }
        if !ceil {
            return Ok(0);
        }
        let mut out = (padded - k).div_ceil(st) + 1;
        // PyTorch's rule: the last window must start inside the input or its leading pad.
        if (out - 1) * st >= size + before {
            out -= 1;
        }
        Ok(((out - 1) * st + k).saturating_sub(padded))
    };
    let extra_h = extra(s[2], kernel[0], stride[0], top, bottom)?;
    let extra_w = extra(s[3], kernel[1], stride[1], left, right)?;
    let symmetric = top == bottom && left == right && extra_h == 0 && extra_w == 0;
    if max {
        if symmetric {
            return x.max_pool2d(kernel, stride, [top, left]);
        }
        // The lowest float pads: a window always holds a real element, so the maximum (and
        // its gradient) is never a pad.
        let padded = x.pad([top, bottom + extra_h, left, right + extra_w], f32::MIN)?;
        return padded.max_pool2d(kernel, stride, [0, 0]);
    }
    let include = ctx.int("count_include_pad", 0) != 0;
    if symmetric {
        return x.avg_pool2d(kernel, stride, [top, left], include);
    }
    // Asymmetric pads or a ceil-mode partial window: sum over zero-padded windows, then
    // divide by how many counted elements each window holds (the input, plus the declared
    // pads when they count; never the ceil-mode overhang), as PyTorch does.
    let sums = x
        .pad([top, bottom + extra_h, left, right + extra_w], 0.0)?
        .avg_pool2d(kernel, stride, [0, 0], true)?;
    let counted = if include {
        Tensor::full(ctx.gpu, &[1, 1, s[2] + top + bottom, s[3] + left + right], 1.0)?
    } else {
        Tensor::full(ctx.gpu, &[1, 1, s[2], s[3]], 1.0)?
    };
    let counted_pads = if include {
        [0, extra_h, 0, extra_w]
    } else {
        [top, bottom + extra_h, left, right + extra_w]
    };
    let share = pool::avg_pool2d(
        &layout::pad(&counted, counted_pads, 0.0)?,
        kernel,
        stride,
        [0, 0],
        true,
    )?;
    // `sums` divided by k²; the share of counted elements is that count over k².
    let scale = elementwise::unary(&share, UnaryOp::RdivScalar(1.0))?;
    sums.mul(&ctx.tape.constant(scale))
}

/// ReduceMean, ReduceSum and ReduceMax over the listed axes (all when none).
fn reduce(ctx: &Context, x: &Var, op: &str) -> Result<Var> {
    let rank = x.shape().len();
    let keep = ctx.int("keepdims", 1) != 0;
    let listed = ctx.axes(1)?.unwrap_or_default();
    if listed.is_empty() && ctx.int("noop_with_empty_axes", 0) != 0 {
        return Ok(x.clone());
    }
    let mut axes: Vec<usize> = if listed.is_empty() {
        (0..rank).collect()
    } else {
        listed
            .iter()
            .map(|&a| normalize_axis(a, rank))
            .collect::<Result<_>>()?
    };
    axes.sort_unstable();
    axes.dedup();
    let mut y = x.clone();
    for &axis in axes.iter().rev() {
        y = match op {
            "ReduceMean" => y.reduce_axis(axis, Reduction::Mean, true)?,
            "ReduceSum" => y.reduce_axis(axis, Reduction::Sum, true)?,
            _ => y.reduce_max_axis(axis, true)?,
        };
    }
    if keep {
        return Ok(y);
    }
    let shape: Vec<usize> = (0..rank)
        .filter(|a| !axes.contains(a))
        .map(|a| x.shape()[a])
        .collect();
    y.reshape(&shape)
}

/// Split into the node's outputs along `axis`.
fn split(ctx: &Context) -> Result<Vec<Value>> {
    let x = ctx.var(0)?;
    let rank = x.shape().len();
    let axis = normalize_axis(ctx.int("axis", 0), rank)?;
    let n = x.shape()[axis];
    let outputs = ctx.node.output.len();
    let sizes: Vec<usize> = match (ctx.input(1).is_some(), ctx.list("split")) {
        (true, _) => ctx.ints(1)?.iter().map(|&s| s.max(0) as usize).collect(),
        (false, Some(s)) => s.iter().map(|&s| s.max(0) as usize).collect(),
        (false, None) => {
            let parts = usize::try_from(ctx.int("num_outputs", outputs as i64))
                .unwrap_or(outputs)
                .max(1);
            let chunk = n.div_ceil(parts);
            (0..parts)
                .map(|i| chunk.min(n.saturating_sub(i * chunk)))
                .collect()
        }
    };
    if sizes.iter().sum::<usize>() != n || sizes.len() != outputs {
        return Err(bad(format!(
            "Split of an axis of {n} into {sizes:?} for {outputs} outputs"
        )));
    }
    let mut start = 0;
    sizes
        .iter()
        .map(|&len| {
            let part = x.slice(axis, start, start + len)?;
            start += len;
            Ok(Value::Var(part))
        })
        .collect()
}

fn slice(ctx: &Context, x: &Var) -> Result<Var> {
    let rank = x.shape().len();
    let starts = ctx.ints(1)?;
    let ends = ctx.ints(2)?;
    let axes = match ctx.input(3) {
        Some(_) => ctx.ints(3)?,
        None => (0..starts.len() as i64).collect(),
    };
    let steps = match ctx.input(4) {
        Some(_) => ctx.ints(4)?,
        None => vec![1; starts.len()],
    };
    if starts.len() != ends.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(bad(format!(
            "Slice with {} starts, {} ends, {} axes and {} steps",
            starts.len(),
            ends.len(),
            axes.len(),
            steps.len()
        )));
    }
    let mut y = x.clone();
    for k in 0..starts.len() {
        let axis = normalize_axis(axes[k], rank)?;
        let n = y.shape()[axis];
        y = match steps[k] {
            1 => {
                let (a, b) = host::slice_range(starts[k], ends[k], n);
                if (a, b) == (0, n) {
                    y
                } else {
                    y.slice(axis, a, b)?
                }
            }
            0 => return Err(bad("Slice with a step of 0")),
            step => {
                // Other steps pick single elements; the host's Slice says which.
                let positions = HostTensor::vector((0..n as i64).collect());
                let picked = host::evaluate_slice(&positions, starts[k], ends[k], step)?;
                pick(&y, axis, &picked, &[picked.len()])?
            }
        };
    }
    Ok(y)
}

/// Elements `indices` of `axis`, as slices concatenated and reshaped so that the axis
/// becomes `index_dims`.
fn pick(x: &Var, axis: usize, indices: &[usize], index_dims: &[usize]) -> Result<Var> {
    let parts: Vec<Var> = indices
        .iter()
        .map(|&i| x.slice(axis, i, i + 1))
        .collect::<Result<_>>()?;
    let refs: Vec<&Var> = parts.iter().collect();
    let joined = match refs.as_slice() {
        [] => return Err(bad(format!("an empty selection of axis {axis}"))),
        [one] => (*one).clone(),
        _ => Var::concat(&refs, axis)?,
    };
    let mut shape = x.shape()[..axis].to_vec();
    shape.extend(index_dims);
    shape.extend(&x.shape()[axis + 1..]);
    joined.reshape(&shape)
}

/// Gather with constant indices: slices of `axis`, concatenated and reshaped.
fn gather(ctx: &Context, x: &Var) -> Result<Var> {
    let indices = ctx
        .host(1)
        .ok_or_else(|| bad("Gather on an activation needs constant indices"))?;
    let rank = x.shape().len();
    let axis = normalize_axis(ctx.int("axis", 0), rank)?;
    let n = x.shape()[axis] as i64;
    let picked: Vec<usize> = indices
        .as_ints()
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n } else { i };
            if (0..n).contains(&j) {
                Ok(j as usize)
            } else {
                Err(bad(format!(
                    "Gather index {i} is out of range for an axis of {n}"
                )))
            }
        })
        .collect::<Result<_>>()?;
    pick(x, axis, &picked, &indices.dims)
}

#[derive(Clone, Copy, PartialEq)]
enum PadMode {
    Constant(f32),
    Reflect,
    Edge,
}

fn pad(ctx: &Context, x: &Var) -> Result<Var> {
    let rank = x.shape().len();
    let mode = match ctx.string("mode", "constant").as_str() {
        "constant" => PadMode::Constant(ctx.scalar(2).unwrap_or(0.0)),
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        other => return Err(bad(format!("Pad mode `{other}` is not supported"))),
    };
    let pads = match ctx.input(1) {
        Some(_) => ctx.ints(1)?,
        None => ctx.list("pads").ok_or_else(|| bad("Pad needs pads"))?,
    };
    let axes: Vec<usize> = match ctx.input(3) {
        Some(_) => ctx
            .ints(3)?
            .iter()
            .map(|&a| normalize_axis(a, rank))
            .collect::<Result<_>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() || pads.iter().any(|&p| p < 0) {
        return Err(bad(format!(
            "Pad pads {pads:?} for {} axes: fido takes two non-negative values per axis",
            axes.len()
        )));
    }
    let amount = |k: usize| (pads[k] as usize, pads[k + axes.len()] as usize);
    let spatial_only = rank >= 2
        && axes
            .iter()
            .enumerate()
            .all(|(k, &a)| a >= rank - 2 || amount(k) == (0, 0));
    if let (PadMode::Constant(value), true) = (mode, spatial_only) {
        let (mut p, mut q) = ((0, 0), (0, 0));
        for (k, &a) in axes.iter().enumerate() {
            if a == rank - 2 {
                p = amount(k);
            } else if a == rank - 1 {
                q = amount(k);
            }
        }
        return x.pad([p.0, p.1, q.0, q.1], value);
    }
    let mut y = x.clone();
    for (k, &axis) in axes.iter().enumerate() {
        let (before, after) = amount(k);
        y = pad_axis(ctx, &y, axis, before, after, mode)?;
    }
    Ok(y)
}

/// Pad one axis by concatenating constant blocks, or slices of the input for reflect and
/// edge, so the gradient comes from the slice and concat rules.
fn pad_axis(ctx: &Context, x: &Var, axis: usize, before: usize, after: usize, mode: PadMode) -> Result<Var> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    let n = x.shape()[axis];
    let mut parts = Vec::new();
    let block = |len: usize, value: f32| -> Result<Var> {
        let mut shape = x.shape().to_vec();
        shape[axis] = len;
        Ok(ctx.tape.constant(Tensor::full(ctx.gpu, &shape, value)?))
    };
    match mode {
        PadMode::Constant(value) => {
            if before > 0 {
                parts.push(block(before, value)?);
            }
            parts.push(x.clone());
            if after > 0 {
                parts.push(block(after, value)?);
            }
        }
        PadMode::Edge => {
            for _ in 0..before {
                parts.push(x.slice(axis, 0, 1)?);
            }
            parts.push(x.clone());
            for _ in 0..after {
                parts.push(x.slice(axis, n - 1, n)?);
            }
        }
        PadMode::Reflect => {
            if before >= n || after >= n {
                return Err(bad(format!(
                    "reflect padding of {before} and {after} on an axis of {n}: each must be smaller than the axis"
                )));
            }
            for j in (1..=before).rev() {
                parts.push(x.slice(axis, j, j + 1)?);
            }
            parts.push(x.clone());
            for j in 1..=after {
                parts.push(x.slice(axis, n - 1 - j, n - j)?);
            }
        }
    }
    let refs: Vec<&Var> = parts.iter().collect();
    Var::concat(&refs, axis)
}

/// Resize and Upsample of the two spatial axes, in the modes PyTorch exports.
fn resize(ctx: &Context, x: &Var) -> Result<Var> {
    let s = need_rank(x, 4)?;
    let upsample = ctx.node.op_type == "Upsample";
    let (scales_at, sizes_at) = if upsample { (1, usize::MAX) } else { (2, 3) };
    let sizes = ctx.host(sizes_at).filter(|h| h.numel() > 0);
    let scales = ctx.host(scales_at).filter(|h| h.numel() > 0);
    let (out_h, out_w) = match (sizes, scales) {
        (Some(sz), _) => {
            let v = sz.as_ints();
            if v.len() != 4 || v[0] as usize != s[0] || v[1] as usize != s[1] {
                return Err(bad(format!(
                    "Resize sizes {v:?} for an input of {s:?}: only H and W may change"
                )));
            }
            (v[2] as usize, v[3] as usize)
        }
        (None, Some(sc)) => {
            let v = sc.as_floats();
            if v.len() != 4 || v[0] != 1.0 || v[1] != 1.0 {
                return Err(bad(format!("Resize scales {v:?}: only H and W may change")));
            }
            (
                (s[2] as f32 * v[2]).floor() as usize,
                (s[3] as f32 * v[3]).floor() as usize,
            )
        }
        (None, None) => return Err(bad("Resize needs constant scales or sizes")),
    };
    let mode = ctx.string("mode", "nearest");
    let default_transform = if upsample { "asymmetric" } else { "half_pixel" };
    let transform = ctx.string("coordinate_transformation_mode", default_transform);
    let nearest = ctx.string(
        "nearest_mode",
        if upsample { "floor" } else { "round_prefer_floor" },
    );
    match (mode.as_str(), transform.as_str()) {
        ("linear" | "bilinear", "half_pixel" | "pytorch_half_pixel") => x.resize_bilinear(out_h, out_w, false),
        ("linear" | "bilinear", "align_corners") => x.resize_bilinear(out_h, out_w, true),
        ("nearest", "asymmetric") if nearest == "floor" => x.resize_nearest(out_h, out_w, NearestMode::Torch),
        _ => Err(bad(format!(
            "Resize mode `{mode}` with coordinate_transformation_mode `{transform}` and nearest_mode `{nearest}` is not supported; fido runs linear with half_pixel or align_corners, and nearest with asymmetric and floor (what PyTorch exports)"
        ))),
    }
}
