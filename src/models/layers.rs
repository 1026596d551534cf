//! The building blocks the architectures share: convolutions with their batch norm folded
//! in, linear layers split to fit the storage-binding limit, and the loader that reads and
//! checks their tensors.

use super::{TensorSpec, WeightSource};
use crate::autodiff::{Tape, Var};
use crate::gpu::Gpu;
use crate::ops::conv::{Activation, Conv2dOptions, Padding};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// Reads tensors from a source (shapes were checked up front) and uploads them.
pub(crate) struct Loader<'a> {
    pub gpu: &'a Gpu,
    pub source: &'a dyn WeightSource,
}

impl Loader<'_> {
    fn values(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let found = self
            .source
            .tensor_shape(name)
            .ok_or_else(|| Error::Weights(format!("tensor `{name}` is not in {}", self.source.origin())))?;
        if found != shape {
            return Err(Error::Weights(format!(
                "tensor `{name}` in {} has shape {found:?} but the model expects {shape:?}",
                self.source.origin()
            )));
        }
        self.source.tensor_values(name)
    }
}

/// How a convolution pads its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PadMode {
    /// PyTorch's `padding=p` on every side.
    Symmetric(usize),
    /// TensorFlow's 'SAME', which depends on the input size: computed at each call.
    TfSame,
}

/// A convolution as the state_dict describes it, optionally followed by a batch norm.
#[derive(Clone, Debug)]
pub(crate) struct ConvSpec {
    /// Prefix of the convolution's tensors, e.g. `layer1.0.conv1`.
    pub conv: String,
    pub has_bias: bool,
    /// Prefix of the batch norm that follows, e.g. `layer1.0.bn1`.
    pub bn: Option<String>,
    pub bn_eps: f32,
    /// `[out, in / groups, kh, kw]`
    pub shape: [usize; 4],
    pub stride: usize,
    pub padding: PadMode,
    pub groups: usize,
}

impl ConvSpec {
    /// A plain `Conv2d` with bias and no batch norm.
    pub fn with_bias(conv: impl Into<String>, shape: [usize; 4], stride: usize, padding: usize) -> Self {
        ConvSpec {
            conv: conv.into(),
            has_bias: true,
            bn: None,
            bn_eps: 0.0,
            shape,
            stride,
            padding: PadMode::Symmetric(padding),
            groups: 1,
        }
    }

    /// A bias-free `Conv2d` followed by `BatchNorm2d`.
    pub fn with_bn(
        conv: impl Into<String>,
        bn: impl Into<String>,
        eps: f32,
        shape: [usize; 4],
        stride: usize,
        padding: PadMode,
    ) -> Self {
        ConvSpec {
            conv: conv.into(),
            has_bias: false,
            bn: Some(bn.into()),
            bn_eps: eps,
            shape,
            stride,
            padding,
            groups: 1,
        }
    }

    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    pub fn tensors(&self, out: &mut Vec<TensorSpec>) {
        let spec = |name: String, shape: Vec<usize>| TensorSpec { name, shape };
        out.push(spec(format!("{}.weight", self.conv), self.shape.to_vec()));
        if self.has_bias {
            out.push(spec(format!("{}.bias", self.conv), vec![self.shape[0]]));
        }
        if let Some(bn) = &self.bn {
            for part in ["weight", "bias", "running_mean", "running_var"] {
                out.push(spec(format!("{bn}.{part}"), vec![self.shape[0]]));
            }
        }
    }

    /// Read, fold the batch norm into weight and bias, upload.
    pub fn load(&self, l: &Loader) -> Result<Conv> {
        let cout = self.shape[0];
        let weight = l.values(&format!("{}.weight", self.conv), &self.shape)?;
        let bias = if self.has_bias {
            Some(l.values(&format!("{}.bias", self.conv), &[cout])?)
        } else {
            None
        };
        let (weight, bias) = match &self.bn {
            Some(bn) => {
                let get = |part: &str| l.values(&format!("{bn}.{part}"), &[cout]);
                fold_batch_norm(
                    &weight,
                    bias.as_deref(),
                    cout,
                    &get("weight")?,
                    &get("bias")?,
                    &get("running_mean")?,
                    &get("running_var")?,
                    self.bn_eps,
                )?
            }
            None => (weight, bias.unwrap_or_else(|| vec![0.0; cout])),
        };
        Ok(Conv {
            weight: Tensor::from_slice(l.gpu, &self.shape, &weight)?,
            bias: Tensor::from_slice(l.gpu, &[cout], &bias)?,
            kernel: [self.shape[2], self.shape[3]],
            stride: self.stride,
            padding: self.padding,
            groups: self.groups,
        })
    }
}

/// A convolution with its batch norm folded in; the bias is always present.
pub(crate) struct Conv {
    weight: Tensor,
    bias: Tensor,
    kernel: [usize; 2],
    stride: usize,
    padding: PadMode,
    groups: usize,
}

impl Conv {
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        self.forward_activated(tape, x, Activation::None)
    }

    /// `conv(act(x))`: the producer's activation fused into this layer, for an `x` that
    /// nothing else reads after the activation.
    pub fn forward_activated(&self, tape: &Tape, x: &Var, act: Activation) -> Result<Var> {
        let s = x.shape();
        let padding = match self.padding {
            PadMode::Symmetric(p) => Padding::symmetric(p, p),
            PadMode::TfSame => Padding::tf_same(
                s[2],
                s[3],
                self.kernel[0],
                self.kernel[1],
                [self.stride; 2],
                [1, 1],
            ),
        };
        let opts = Conv2dOptions::new()
            .stride(self.stride, self.stride)
            .padding(padding)
            .groups(self.groups)
            .input_activation(act);
        let w = tape.constant(self.weight.clone());
        let b = tape.constant(self.bias.clone());
        x.conv2d(&w, Some(&b), &opts)
    }
}

/// A `Linear(in, out)` layer as the state_dict describes it.
#[derive(Clone, Debug)]
pub(crate) struct LinearSpec {
    pub prefix: String,
    pub inputs: usize,
    pub outputs: usize,
}

impl LinearSpec {
    pub fn new(prefix: impl Into<String>, inputs: usize, outputs: usize) -> Self {
        LinearSpec {
            prefix: prefix.into(),
            inputs,
            outputs,
        }
    }

    pub fn tensors(&self, out: &mut Vec<TensorSpec>) {
        out.push(TensorSpec {
            name: format!("{}.weight", self.prefix),
            shape: vec![self.outputs, self.inputs],
        });
        out.push(TensorSpec {
            name: format!("{}.bias", self.prefix),
            shape: vec![self.outputs],
        });
    }

    /// Upload the weight as row blocks that each fit one storage binding: VGG's first
    /// classifier layer is 25088×4096 f32 (411 MB), over lavapipe's 128 MiB.
    pub fn load(&self, l: &Loader) -> Result<Linear> {
        let weight = l.values(&format!("{}.weight", self.prefix), &[self.outputs, self.inputs])?;
        let bias = l.values(&format!("{}.bias", self.prefix), &[self.outputs])?;
        let row_bytes = (self.inputs * 4) as u64;
        let limit = l.gpu.max_binding_bytes();
        if row_bytes > limit {
            return Err(Error::TooLarge {
                bytes: row_bytes,
                limit,
            });
        }
        // Whole multiples of 4 rows keep the matmul's vec4 path available for every block.
        let fit = (limit / row_bytes) as usize;
        let rows_per_block = if fit >= 4 { fit / 4 * 4 } else { fit };
        let blocks = self.outputs.div_ceil(rows_per_block);
        // Even blocks rather than full ones and a ragged tail.
        let rows_per_block = self
            .outputs
            .div_ceil(blocks)
            .next_multiple_of(4)
            .min(rows_per_block);
        let mut weight_blocks = Vec::new();
        for start in (0..self.outputs).step_by(rows_per_block) {
            let end = (start + rows_per_block).min(self.outputs);
            weight_blocks.push(Tensor::from_slice(
                l.gpu,
                &[end - start, self.inputs],
                &weight[start * self.inputs..end * self.inputs],
            )?);
        }
        Ok(Linear {
            weight_blocks,
            bias: Tensor::from_slice(l.gpu, &[self.outputs], &bias)?,
        })
    }
}

/// `x · Wᵀ + b` with `W` held as row blocks.
pub(crate) struct Linear {
    weight_blocks: Vec<Tensor>,
    bias: Tensor,
}

impl Linear {
    /// `x: [N, in]` → `[N, out]`.
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let parts = self
            .weight_blocks
            .iter()
            .map(|w| x.matmul(&tape.constant(w.clone()), false, true))
            .collect::<Result<Vec<_>>>()?;
        let y = if parts.len() == 1 {
            parts.into_iter().next().unwrap()
        } else {
            Var::concat(&parts.iter().collect::<Vec<_>>(), 1)?
        };
        y.add(&tape.constant(self.bias.clone()))
    }
}

/// `[N, C, H, W]` → `[N, C·H·W]`, PyTorch's `flatten(1)`.
pub(crate) fn flatten(x: &Var) -> Result<Var> {
    let s = x.shape();
    let rest: usize = s[1..].iter().product();
    x.reshape(&[s[0], rest])
}

/// Fold an inference-mode batch norm that follows a convolution into the convolution's
/// weight (`[cout, …]`, flattened) and bias, so `conv(x, w', b') == bn(conv(x, w, b))`.
/// Returns `(w', b')`.
#[allow(clippy::too_many_arguments)]
pub fn fold_batch_norm(
    weight: &[f32],
    bias: Option<&[f32]>,
    cout: usize,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
) -> Result<(Vec<f32>, Vec<f32>)> {
    const OP: &str = "fold_batch_norm";
    let err = |detail: String| Error::Shape { op: OP, detail };
    if cout == 0 || weight.len() % cout != 0 {
        return Err(err(format!(
            "{} weights do not split into {cout} output channels",
            weight.len()
        )));
    }
    for (name, len) in [
        ("gamma", gamma.len()),
        ("beta", beta.len()),
        ("mean", mean.len()),
        ("var", var.len()),
        ("bias", bias.map_or(cout, <[f32]>::len)),
    ] {
        if len != cout {
            return Err(err(format!("{name} has {len} values, expected {cout}")));
        }
    }
    let per_channel = weight.len() / cout;
    let mut folded_w = Vec::with_capacity(weight.len());
    let mut folded_b = Vec::with_capacity(cout);
    for c in 0..cout {
        let scale = gamma[c] as f64 / (var[c] as f64 + eps as f64).sqrt();
        folded_w.extend(
            weight[c * per_channel..(c + 1) * per_channel]
                .iter()
                .map(|&v| (v as f64 * scale) as f32),
        );
        let b = bias.map_or(0.0, |b| b[c] as f64);
        folded_b.push(((b - mean[c] as f64) * scale + beta[c] as f64) as f32);
    }
    Ok((folded_w, folded_b))
}
