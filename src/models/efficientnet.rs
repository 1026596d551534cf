//! EfficientNet-Lite0 in the layout of the PyPI `efficientnet-lite-pytorch` package: ReLU6,
//! no squeeze-excitation, TensorFlow 'SAME' padding, batch-norm epsilon 1e-3, and the stem
//! and head kept at 32 and 1280 channels.

use super::layers::{flatten, Conv, ConvSpec, Linear, LinearSpec, Loader, PadMode};
use super::TensorSpec;
use crate::autodiff::{Tape, Var};
use crate::ops::conv::Activation;
use crate::Result;

const BN_EPS: f32 = 1e-3;
const STEM: usize = 32;
const HEAD: usize = 1280;

/// One stage of the Lite0 block list (`efficientnet_lite_builder.py`), at width and depth 1.0
/// so no rounding changes it.
struct Stage {
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    inputs: usize,
    outputs: usize,
}

const fn stage(
    repeats: usize,
    kernel: usize,
    stride: usize,
    expand: usize,
    inputs: usize,
    outputs: usize,
) -> Stage {
    Stage {
        repeats,
        kernel,
        stride,
        expand,
        inputs,
        outputs,
    }
}

const LITE0: [Stage; 7] = [
    stage(1, 3, 1, 1, 32, 16),
    stage(2, 3, 2, 6, 16, 24),
    stage(2, 5, 2, 6, 24, 40),
    stage(3, 3, 2, 6, 40, 80),
    stage(3, 5, 1, 6, 80, 112),
    stage(4, 5, 2, 6, 112, 192),
    stage(1, 3, 1, 6, 192, 320),
];

pub(crate) struct EfficientNetSpec {
    stem: ConvSpec,
    blocks: Vec<BlockSpec>,
    head: ConvSpec,
    fc: LinearSpec,
}

/// A mobile inverted bottleneck: optional 1×1 expansion, depthwise, 1×1 projection.
struct BlockSpec {
    expand: Option<ConvSpec>,
    depthwise: ConvSpec,
    project: ConvSpec,
    residual: bool,
}

pub(crate) fn describe(num_classes: usize) -> EfficientNetSpec {
    let conv = |conv: String, bn: String, shape: [usize; 4], stride: usize| {
        ConvSpec::with_bn(conv, bn, BN_EPS, shape, stride, PadMode::TfSame)
    };
    let stem = conv("_conv_stem".into(), "_bn0".into(), [STEM, 3, 3, 3], 2);
    let mut blocks = Vec::new();
    for s in &LITE0 {
        for r in 0..s.repeats {
            // Repeats after the first keep the size: stride 1, input = output.
            let (inputs, stride) = if r == 0 {
                (s.inputs, s.stride)
            } else {
                (s.outputs, 1)
            };
            let hidden = inputs * s.expand;
            let p = format!("_blocks.{}", blocks.len());
            let expand = (s.expand != 1).then(|| {
                conv(
                    format!("{p}._expand_conv"),
                    format!("{p}._bn0"),
                    [hidden, inputs, 1, 1],
                    1,
                )
            });
            let depthwise = conv(
                format!("{p}._depthwise_conv"),
                format!("{p}._bn1"),
                [hidden, 1, s.kernel, s.kernel],
                stride,
            )
            .groups(hidden);
            let project = conv(
                format!("{p}._project_conv"),
                format!("{p}._bn2"),
                [s.outputs, hidden, 1, 1],
                1,
            );
            blocks.push(BlockSpec {
                expand,
                depthwise,
                project,
                residual: stride == 1 && inputs == s.outputs,
            });
        }
    }
    let last = LITE0[LITE0.len() - 1].outputs;
    EfficientNetSpec {
        stem,
        blocks,
        head: conv("_conv_head".into(), "_bn1".into(), [HEAD, last, 1, 1], 1),
        fc: LinearSpec::new("_fc", HEAD, num_classes),
    }
}

impl EfficientNetSpec {
    pub fn tensors(&self, out: &mut Vec<TensorSpec>) {
        self.stem.tensors(out);
        for b in &self.blocks {
            if let Some(e) = &b.expand {
                e.tensors(out);
            }
            b.depthwise.tensors(out);
            b.project.tensors(out);
        }
        self.head.tensors(out);
        self.fc.tensors(out);
    }

    pub fn load(&self, l: &Loader) -> Result<EfficientNet> {
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    expand: b.expand.as_ref().map(|e| e.load(l)).transpose()?,
                    depthwise: b.depthwise.load(l)?,
                    project: b.project.load(l)?,
                    residual: b.residual,
                })
            })
            .collect::<Result<_>>()?;
        Ok(EfficientNet {
            stem: self.stem.load(l)?,
            blocks,
            head: self.head.load(l)?,
            fc: self.fc.load(l)?,
        })
    }
}

pub(crate) struct EfficientNet {
    stem: Conv,
    blocks: Vec<Block>,
    head: Conv,
    fc: Linear,
}

struct Block {
    expand: Option<Conv>,
    depthwise: Conv,
    project: Conv,
    residual: bool,
}

impl EfficientNet {
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        // Each ReLU6 that feeds only the next convolution is applied by that convolution as
        // it reads its input; `pending` is the one still owed by `h`.
        let mut h = self.stem.forward(tape, x)?;
        let mut pending = Activation::Relu6;
        for b in &self.blocks {
            if b.residual && pending != Activation::None {
                h = h.relu6()?;
                pending = Activation::None;
            }
            let mut y = h.clone();
            if let Some(e) = &b.expand {
                y = e.forward_activated(tape, &y, pending)?;
                pending = Activation::Relu6;
            }
            y = b.depthwise.forward_activated(tape, &y, pending)?;
            y = b.project.forward_activated(tape, &y, Activation::Relu6)?;
            pending = Activation::None;
            // Drop-connect is the identity in evaluation.
            h = if b.residual { y.add(&h)? } else { y };
        }
        if pending != Activation::None {
            h = h.relu6()?;
        }
        let h = self.head.forward(tape, &h)?.relu6()?;
        let pooled = flatten(&h.global_avg_pool()?)?;
        // Dropout is the identity in evaluation.
        self.fc.forward(tape, &pooled)
    }
}
