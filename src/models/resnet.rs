//! torchvision ResNets, v1.5: a bottleneck block strides on its 3×3 convolution.

use super::layers::{flatten, Conv, ConvSpec, Linear, LinearSpec, Loader, PadMode};
use super::{ModelKind, TensorSpec};
use crate::autodiff::{Tape, Var};
use crate::ops::conv::Activation;
use crate::Result;

const BN_EPS: f32 = 1e-5;

/// The architecture as names and shapes.
pub(crate) struct ResNetSpec {
    stem: ConvSpec,
    blocks: Vec<BlockSpec>,
    fc: LinearSpec,
}

struct BlockSpec {
    /// Two convolutions (basic block) or three (bottleneck), each followed by a batch norm.
    convs: Vec<ConvSpec>,
    downsample: Option<ConvSpec>,
}

/// Blocks per stage and whether the blocks are bottlenecks.
fn layout(kind: ModelKind) -> ([usize; 4], bool) {
    match kind {
        ModelKind::ResNet18 => ([2, 2, 2, 2], false),
        ModelKind::ResNet34 => ([3, 4, 6, 3], false),
        ModelKind::ResNet50 => ([3, 4, 6, 3], true),
        ModelKind::ResNet101 => ([3, 4, 23, 3], true),
        ModelKind::ResNet152 => ([3, 8, 36, 3], true),
        other => unreachable!("{other} is not a ResNet"),
    }
}

pub(crate) fn describe(kind: ModelKind, num_classes: usize) -> ResNetSpec {
    let (depths, bottleneck) = layout(kind);
    let expansion = if bottleneck { 4 } else { 1 };
    let conv_bn = |conv: String, bn: String, shape: [usize; 4], stride: usize, pad: usize| {
        ConvSpec::with_bn(conv, bn, BN_EPS, shape, stride, PadMode::Symmetric(pad))
    };
    let stem = conv_bn("conv1".into(), "bn1".into(), [64, 3, 7, 7], 2, 3);
    let mut blocks = Vec::new();
    let mut in_ch = 64;
    for (stage, &depth) in depths.iter().enumerate() {
        let planes = 64 << stage;
        let out_ch = planes * expansion;
        for index in 0..depth {
            let stride = if stage > 0 && index == 0 { 2 } else { 1 };
            let p = format!("layer{}.{index}", stage + 1);
            let c = |i: usize| (format!("{p}.conv{i}"), format!("{p}.bn{i}"));
            let convs = if bottleneck {
                let ((c1, b1), (c2, b2), (c3, b3)) = (c(1), c(2), c(3));
                vec![
                    conv_bn(c1, b1, [planes, in_ch, 1, 1], 1, 0),
                    conv_bn(c2, b2, [planes, planes, 3, 3], stride, 1),
                    conv_bn(c3, b3, [out_ch, planes, 1, 1], 1, 0),
                ]
            } else {
                let ((c1, b1), (c2, b2)) = (c(1), c(2));
                vec![
                    conv_bn(c1, b1, [planes, in_ch, 3, 3], stride, 1),
                    conv_bn(c2, b2, [planes, planes, 3, 3], 1, 1),
                ]
            };
            let downsample = (stride != 1 || in_ch != out_ch).then(|| {
                conv_bn(
                    format!("{p}.downsample.0"),
                    format!("{p}.downsample.1"),
                    [out_ch, in_ch, 1, 1],
                    stride,
                    0,
                )
            });
            blocks.push(BlockSpec { convs, downsample });
            in_ch = out_ch;
        }
    }
    ResNetSpec {
        stem,
        blocks,
        fc: LinearSpec::new("fc", in_ch, num_classes),
    }
}

impl ResNetSpec {
    pub fn tensors(&self, out: &mut Vec<TensorSpec>) {
        self.stem.tensors(out);
        for b in &self.blocks {
            for c in &b.convs {
                c.tensors(out);
            }
            if let Some(d) = &b.downsample {
                d.tensors(out);
            }
        }
        self.fc.tensors(out);
    }

    pub fn load(&self, l: &Loader) -> Result<ResNet> {
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(Block {
                    convs: b.convs.iter().map(|c| c.load(l)).collect::<Result<_>>()?,
                    downsample: b.downsample.as_ref().map(|d| d.load(l)).transpose()?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(ResNet {
            stem: self.stem.load(l)?,
            blocks,
            fc: self.fc.load(l)?,
        })
    }
}

pub(crate) struct ResNet {
    stem: Conv,
    blocks: Vec<Block>,
    fc: Linear,
}

struct Block {
    convs: Vec<Conv>,
    downsample: Option<Conv>,
}

impl ResNet {
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let mut h = self
            .stem
            .forward(tape, x)?
            .relu()?
            .max_pool2d([3, 3], [2, 2], [1, 1])?;
        for block in &self.blocks {
            let identity = match &block.downsample {
                Some(d) => d.forward(tape, &h)?,
                None => h.clone(),
            };
            // The ReLU between two convolutions of the branch is applied by the second as it
            // reads its input.
            let mut branch = h;
            for (i, conv) in block.convs.iter().enumerate() {
                let act = if i == 0 {
                    Activation::None
                } else {
                    Activation::Relu
                };
                branch = conv.forward_activated(tape, &branch, act)?;
            }
            h = branch.add(&identity)?.relu()?;
        }
        let pooled = flatten(&h.global_avg_pool()?)?;
        self.fc.forward(tape, &pooled)
    }
}
