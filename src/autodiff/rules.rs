//! One method per differentiable op: the forward call and, next to it, its backward rule.
//!
//! Ops with one input record through [`Var::record_unary`], so each rule is its math alone:
//! the output's gradient in, the input's gradient out.

use super::{BackwardFn, Var};
use crate::ops::conv::{self, Conv2dOptions};
use crate::ops::elementwise::{self, BinaryOp, UnaryOp};
use crate::ops::matmul;
use crate::ops::reduce::{self, Reduction};
use crate::ops::resize::{self, NearestMode};
use crate::ops::softmax::{self, SoftmaxKind};
use crate::ops::{batchnorm, layout, mix, pool, random};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// Sum `g` over the axes along which a value of `shape` was broadcast to `g`'s shape.
pub fn sum_to_shape(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.shape() == shape {
        return Ok(g.clone());
    }
    let offset = g.rank() - shape.len();
    let mut current = g.clone();
    for axis in 0..g.rank() {
        let target = if axis < offset { 1 } else { shape[axis - offset] };
        if target == 1 && current.shape()[axis] != 1 {
            current = reduce::reduce_axis(&current, axis, Reduction::Sum, true)?;
        }
    }
    current.reshape(shape)
}

impl Var {
    /// Record `out`, made from this value alone by op `op`; `rule` maps the gradient of `out`
    /// to this value's gradient.
    pub fn record_unary(
        &self,
        op: &'static str,
        out: Tensor,
        rule: impl FnOnce(&Tensor) -> Result<Tensor> + 'static,
    ) -> Var {
        let backward: BackwardFn = Box::new(move |dy, _| Ok(vec![Some(rule(dy)?)]));
        self.tape.record(op, out, &[self], backward)
    }
}

/// Elementwise arithmetic with broadcasting.
impl Var {
    fn binary(&self, other: &Var, op: BinaryOp) -> Result<Var> {
        let name = match op {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max | BinaryOp::Min => {
                return Err(Error::InvalidArgument(
                    "max/min have no gradient on the tape".into(),
                ))
            }
        };
        let out = elementwise::binary(&self.value, &other.value, op)?;
        let (a, b, y) = (self.value.clone(), other.value.clone(), out.clone());
        let backward: BackwardFn = Box::new(move |dy, needed| {
            let da = || -> Result<Tensor> {
                match op {
                    BinaryOp::Mul => elementwise::mul(dy, &b),
                    BinaryOp::Div => elementwise::div(dy, &b),
                    _ => Ok(dy.clone()),
                }
            };
            let db = || -> Result<Tensor> {
                match op {
                    BinaryOp::Sub => elementwise::neg(dy),
                    BinaryOp::Mul => elementwise::mul(dy, &a),
                    // d(a/b)/db = −a/b² = −y/b
                    BinaryOp::Div => elementwise::neg(&elementwise::div(&elementwise::mul(dy, &y)?, &b)?),
                    _ => Ok(dy.clone()),
                }
            };
            Ok(vec![
                needed[0].then(|| sum_to_shape(&da()?, a.shape())).transpose()?,
                needed[1].then(|| sum_to_shape(&db()?, b.shape())).transpose()?,
            ])
        });
        Ok(self.tape.record(name, out, &[self, other], backward))
    }

    pub fn add(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Add)
    }
    pub fn sub(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Sub)
    }
    pub fn mul(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Mul)
    }
    pub fn div(&self, other: &Var) -> Result<Var> {
        self.binary(other, BinaryOp::Div)
    }

    /// Any elementwise unary op; the rule is `unary_backward` from the saved input and output.
    pub fn unary(&self, op: UnaryOp) -> Result<Var> {
        let out = elementwise::unary(&self.value, op)?;
        let (x, y) = (self.value.clone(), out.clone());
        Ok(self.record_unary(op.name(), out, move |dy| {
            elementwise::unary_backward(&x, &y, dy, op)
        }))
    }

    pub fn neg(&self) -> Result<Var> {
        self.unary(UnaryOp::Neg)
    }
    pub fn exp(&self) -> Result<Var> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Var> {
        self.unary(UnaryOp::Log)
    }
    pub fn sigmoid(&self) -> Result<Var> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn relu(&self) -> Result<Var> {
        self.unary(UnaryOp::Relu)
    }
    pub fn relu6(&self) -> Result<Var> {
        self.unary(UnaryOp::Relu6)
    }
    pub fn elu(&self, alpha: f32) -> Result<Var> {
        self.unary(UnaryOp::Elu { alpha })
    }
    pub fn add_scalar(&self, s: f32) -> Result<Var> {
        self.unary(UnaryOp::AddScalar(s))
    }
    pub fn mul_scalar(&self, s: f32) -> Result<Var> {
        self.unary(UnaryOp::MulScalar(s))
    }
}

/// Matrix products.
impl Var {
    /// `op(self) · op(other)`, see [`matmul::matmul`].
    pub fn matmul(&self, other: &Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        let out = matmul::matmul(&self.value, &other.value, trans_a, trans_b)?;
        let (a, b) = (self.value.clone(), other.value.clone());
        let backward: BackwardFn = Box::new(move |dy, needed| {
            // C = A·B: dA = dC·Bᵀ, dB = Aᵀ·dC, with the stored layouts of A and B.
            let da = || -> Result<Tensor> {
                let g = if trans_a {
                    matmul::matmul(&b, dy, trans_b, true)?
                } else {
                    matmul::matmul(dy, &b, false, !trans_b)?
                };
                sum_to_batch(&g, a.shape())
            };
            let db = || -> Result<Tensor> {
                let g = if trans_b {
                    matmul::matmul(dy, &a, true, trans_a)?
                } else {
                    matmul::matmul(&a, dy, !trans_a, false)?
                };
                sum_to_batch(&g, b.shape())
            };
            Ok(vec![
                needed[0].then(da).transpose()?,
                needed[1].then(db).transpose()?,
            ])
        });
        Ok(self.tape.record("matmul", out, &[self, other], backward))
    }
}

/// A matmul gradient has the batch of the output; an operand broadcast over the batch gets
/// the sum over it.
fn sum_to_batch(g: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if g.numel() == shape.iter().product::<usize>() {
        return g.reshape(shape);
    }
    let rows = shape[shape.len() - 2] * shape[shape.len() - 1];
    let batch = g.numel() / rows;
    reduce::reduce_axis(&g.reshape(&[batch, rows])?, 0, Reduction::Sum, false)?.reshape(shape)
}

/// Reductions, softmax and shape changes.
impl Var {
    /// The sum of every element, shape `[1]`.
    pub fn sum(&self) -> Result<Var> {
        self.reduce_all(Reduction::Sum)
    }
    /// The mean of every element, shape `[1]`.
    pub fn mean(&self) -> Result<Var> {
        self.reduce_all(Reduction::Mean)
    }

    fn reduce_all(&self, op: Reduction) -> Result<Var> {
        let out = reduce::reduce_all(&self.value, op)?;
        let shape = self.value.shape().to_vec();
        let scale = if op == Reduction::Mean {
            1.0 / self.value.numel() as f32
        } else {
            1.0
        };
        Ok(self.record_unary(reduction_name(op), out, move |dy| {
            let g = elementwise::broadcast_to(&dy.reshape(&vec![1; shape.len()])?, &shape)?;
            scaled(g, scale)
        }))
    }

    /// Sum or mean over `axis`, keeping it as length 1 when `keep_dim`.
    pub fn reduce_axis(&self, axis: usize, op: Reduction, keep_dim: bool) -> Result<Var> {
        if op == Reduction::Max {
            return Err(Error::InvalidArgument("max has no gradient on the tape".into()));
        }
        let out = reduce::reduce_axis(&self.value, axis, op, keep_dim)?;
        let shape = self.value.shape().to_vec();
        let scale = if op == Reduction::Mean {
            1.0 / shape[axis] as f32
        } else {
            1.0
        };
        Ok(self.record_unary(reduction_name(op), out, move |dy| {
            let mut kept = shape.clone();
            kept[axis] = 1;
            let g = elementwise::broadcast_to(&dy.reshape(&kept)?, &shape)?;
            scaled(g, scale)
        }))
    }

    pub fn log_softmax(&self) -> Result<Var> {
        self.softmax_like(SoftmaxKind::LogSoftmax)
    }
    pub fn softmax(&self) -> Result<Var> {
        self.softmax_like(SoftmaxKind::Softmax)
    }

    fn softmax_like(&self, kind: SoftmaxKind) -> Result<Var> {
        let out = softmax::softmax_like(&self.value, kind)?;
        let y = out.clone();
        let name = match kind {
            SoftmaxKind::Softmax => "softmax",
            SoftmaxKind::LogSoftmax => "log_softmax",
            SoftmaxKind::LogSumExp => "logsumexp",
        };
        Ok(self.record_unary(name, out, move |dy| softmax::softmax_backward(&y, dy, kind)))
    }

    /// Per-row log-odds of the labelled class; `labels` is a u32 tensor with one label per row.
    pub fn log_odds(&self, labels: &Tensor) -> Result<Var> {
        let out = softmax::log_odds(&self.value, labels)?;
        let (x, labels) = (self.value.clone(), labels.clone());
        Ok(self.record_unary("log_odds", out, move |dy| {
            softmax::log_odds_backward(&x, &labels, dy)
        }))
    }

    /// The same values under another shape.
    pub fn reshape(&self, shape: &[usize]) -> Result<Var> {
        let out = self.value.reshape(shape)?;
        let original = self.value.shape().to_vec();
        Ok(self.record_unary("reshape", out, move |dy| dy.reshape(&original)))
    }

    /// Repeat along broadcast axes; the rule sums them back.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Var> {
        let out = elementwise::broadcast_to(&self.value, shape)?;
        let original = self.value.shape().to_vec();
        Ok(self.record_unary("broadcast_to", out, move |dy| sum_to_shape(dy, &original)))
    }
}

fn reduction_name(op: Reduction) -> &'static str {
    match op {
        Reduction::Sum => "sum",
        Reduction::Mean => "mean",
        Reduction::Max => "max",
    }
}

fn scaled(g: Tensor, scale: f32) -> Result<Tensor> {
    if scale == 1.0 {
        Ok(g)
    } else {
        elementwise::mul_scalar(&g, scale)
    }
}

/// Spatial, layout and sampling ops. Each rule calls the family's own backward kernel.
impl Var {
    pub fn max_pool2d(&self, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Var> {
        let out = pool::max_pool2d(&self.value, kernel, stride, padding)?;
        let x = self.value.clone();
        Ok(self.record_unary("max_pool2d", out, move |dy| {
            pool::max_pool2d_backward(&x, dy, kernel, stride, padding)
        }))
    }

    pub fn avg_pool2d(
        &self,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        count_include_pad: bool,
    ) -> Result<Var> {
        let out = pool::avg_pool2d(&self.value, kernel, stride, padding, count_include_pad)?;
        let (h, w) = spatial_size(&self.value);
        Ok(self.record_unary("avg_pool2d", out, move |dy| {
            pool::avg_pool2d_backward(dy, h, w, kernel, stride, padding, count_include_pad)
        }))
    }

    /// `[N, C, H, W] -> [N, C, 1, 1]`
    pub fn global_avg_pool(&self) -> Result<Var> {
        let out = pool::global_avg_pool(&self.value)?;
        let (h, w) = spatial_size(&self.value);
        Ok(self.record_unary("global_avg_pool", out, move |dy| {
            pool::global_avg_pool_backward(dy, h, w)
        }))
    }

    /// Adaptive average pooling to `out_h × out_w` when the input divides evenly.
    pub fn adaptive_avg_pool2d(&self, out_h: usize, out_w: usize) -> Result<Var> {
        let out = pool::adaptive_avg_pool2d(&self.value, out_h, out_w)?;
        let (h, w) = spatial_size(&self.value);
        Ok(self.record_unary("adaptive_avg_pool2d", out, move |dy| {
            pool::adaptive_avg_pool2d_backward(dy, h, w)
        }))
    }

    /// PyTorch's `AdaptiveAvgPool2d((out_h, out_w))` for any input size, uneven and
    /// overlapping windows included.
    pub fn adaptive_avg_pool2d_general(&self, out_h: usize, out_w: usize) -> Result<Var> {
        let out = pool::adaptive_avg_pool2d_general(&self.value, out_h, out_w)?;
        let (h, w) = spatial_size(&self.value);
        Ok(self.record_unary("adaptive_avg_pool2d", out, move |dy| {
            pool::adaptive_avg_pool2d_general_backward(dy, h, w)
        }))
    }

    pub fn resize_bilinear(&self, out_h: usize, out_w: usize, align_corners: bool) -> Result<Var> {
        let out = resize::resize_bilinear(&self.value, out_h, out_w, align_corners)?;
        let (h, w) = spatial_size(&self.value);
        Ok(self.record_unary("resize_bilinear", out, move |dy| {
            resize::resize_bilinear_backward(dy, h, w, align_corners)
        }))
    }

    pub fn resize_nearest(&self, out_h: usize, out_w: usize, mode: NearestMode) -> Result<Var> {
        let out = resize::resize_nearest(&self.value, out_h, out_w, mode)?;
        let (h, w) = spatial_size(&self.value);
        Ok(self.record_unary("resize_nearest", out, move |dy| {
            resize::resize_nearest_backward(dy, h, w, mode)
        }))
    }

    /// Constant padding of the last two axes by `[top, bottom, left, right]`.
    pub fn pad(&self, pads: [usize; 4], value: f32) -> Result<Var> {
        let out = layout::pad(&self.value, pads, value)?;
        Ok(self.record_unary("pad", out, move |dy| layout::pad_backward(dy, pads)))
    }

    /// Elements `start..end` of `axis`.
    pub fn slice(&self, axis: usize, start: usize, end: usize) -> Result<Var> {
        let out = layout::slice(&self.value, axis, start, end)?;
        let shape = self.value.shape().to_vec();
        Ok(self.record_unary("slice", out, move |dy| {
            layout::slice_backward(dy, &shape, axis, start)
        }))
    }

    /// Concatenate along `axis`.
    pub fn concat(parts: &[&Var], axis: usize) -> Result<Var> {
        let first = parts
            .first()
            .ok_or_else(|| Error::InvalidArgument("concat of nothing".into()))?;
        let values: Vec<&Tensor> = parts.iter().map(|p| &p.value).collect();
        let out = layout::concat(&values, axis)?;
        let sizes: Vec<usize> = parts.iter().map(|p| p.value.shape()[axis]).collect();
        let backward: BackwardFn = Box::new(move |dy, needed| {
            let pieces = layout::concat_backward(dy, axis, &sizes)?;
            Ok(pieces
                .into_iter()
                .zip(needed)
                .map(|(p, &n)| n.then_some(p))
                .collect())
        });
        Ok(first.tape.record("concat", out, parts, backward))
    }

    /// Relaxed Bernoulli draws from these logits; see [`random::concrete_sample`].
    pub fn concrete_sample(&self, samples: usize, temperature: f32, seed: u64, stream: u32) -> Result<Var> {
        let out = random::concrete_sample(&self.value, samples, temperature, seed, stream)?;
        let (z, shape) = (out.clone(), self.value.shape().to_vec());
        Ok(self.record_unary("concrete_sample", out, move |dy| {
            random::concrete_backward(&z, dy, temperature, &shape)
        }))
    }
}

fn spatial_size(x: &Tensor) -> (usize, usize) {
    let s = x.shape();
    (s[s.len() - 2], s[s.len() - 1])
}

/// The FIDO mix.
impl Var {
    /// `background + self·(image − background)` with `self` the keep mask `[B, 1, H, W]`;
    /// only the mask is differentiable (the in-filler is not, by the method's definition).
    pub fn mix(&self, image: &Tensor, background: &Tensor) -> Result<Var> {
        let out = mix::mix(&self.value, image, background)?;
        let (keep, image, background) = (self.value.clone(), image.clone(), background.clone());
        Ok(self.record_unary("mix", out, move |dy| {
            mix::mix_backward(dy, &keep, &image, &background)
        }))
    }
}

/// Convolution and batch norm.
impl Var {
    /// `conv2d(act(self), weight) + bias`, NCHW, `act` the options' input activation; see
    /// [`conv::conv2d`].
    pub fn conv2d(&self, weight: &Var, bias: Option<&Var>, opts: &Conv2dOptions) -> Result<Var> {
        let out = conv::conv2d(&self.value, &weight.value, bias.map(|b| &b.value), opts)?;
        let (x, w, opts) = (self.value.clone(), weight.value.clone(), *opts);
        let backward: BackwardFn = Box::new(move |dy, needed| {
            let mut grads = vec![
                needed[0]
                    .then(|| conv::conv2d_backward_input_activated(dy, &w, &opts, &x))
                    .transpose()?,
                needed[1]
                    .then(|| conv::conv2d_backward_weight(&x, dy, &opts, w.shape()))
                    .transpose()?,
            ];
            if needed.len() > 2 {
                grads.push(needed[2].then(|| conv::conv2d_backward_bias(dy)).transpose()?);
            }
            Ok(grads)
        });
        let inputs: Vec<&Var> = [self, weight].into_iter().chain(bias).collect();
        Ok(self.tape.record("conv2d", out, &inputs, backward))
    }

    /// Inference-mode batch norm over axis 1 with frozen statistics and affine parameters:
    /// only the input gets a gradient, `dy·γ/√(σ²+ε)` per channel.
    pub fn batch_norm(
        &self,
        gamma: &Tensor,
        beta: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f32,
    ) -> Result<Var> {
        let out = batchnorm::batch_norm(&self.value, gamma, beta, mean, var, eps)?;
        let (gamma, var) = (gamma.clone(), var.clone());
        Ok(self.record_unary("batch_norm", out, move |dy| {
            batchnorm::batch_norm_backward(dy, &gamma, &var, eps)
        }))
    }
}

/// Ops that ONNX graphs need on the tape: axis permutation and the maximum over an axis.
impl Var {
    /// The axes reordered, output axis `d` being input axis `perm[d]` (ONNX Transpose); the
    /// rule permutes the gradient back by the inverse permutation.
    pub fn permute(&self, perm: &[usize]) -> Result<Var> {
        let out = layout::permute(&self.value, perm)?;
        let inverse = layout::inverse_permutation(perm)?;
        Ok(self.record_unary("permute", out, move |dy| layout::permute(dy, &inverse)))
    }

    /// The maximum over `axis`, keeping it as length 1 when `keep_dim`. The gradient goes to
    /// the elements equal to the maximum, shared equally among ties (PyTorch's `amax`).
    pub fn reduce_max_axis(&self, axis: usize, keep_dim: bool) -> Result<Var> {
        let out = reduce::reduce_axis(&self.value, axis, Reduction::Max, keep_dim)?;
        let x = self.value.clone();
        let mut kept = x.shape().to_vec();
        kept[axis] = 1;
        let max = out.reshape(&kept)?;
        Ok(self.record_unary("reduce_max", out, move |dy| {
            // The maximum is one of the values, so `max − x` is exactly 0 at the maxima and
            // positive elsewhere (infinite maxima give NaN, which the step also reads as
            // "not below"): the mask is 1 − step(max − x).
            let below = elementwise::unary(&elementwise::sub(&max, &x)?, UnaryOp::Step(0.0))?;
            let is_max = elementwise::unary(&below, UnaryOp::RsubScalar(1.0))?;
            let ties = reduce::reduce_axis(&is_max, axis, Reduction::Sum, true)?;
            let share = elementwise::div(&dy.reshape(&kept)?, &ties)?;
            elementwise::mul(&is_max, &share)
        }))
    }
}
