//! torchvision VGG-11/13/16/19 without batch norm.

use super::layers::{flatten, Conv, ConvSpec, Linear, LinearSpec, Loader};
use super::{ModelKind, TensorSpec};
use crate::autodiff::{Tape, Var};
use crate::Result;

/// A 3×3 convolution to this many channels, or a 2×2 max pool.
#[derive(Clone, Copy)]
enum Item {
    Conv(usize),
    Pool,
}

fn config(kind: ModelKind) -> Vec<Item> {
    use Item::{Conv as C, Pool as M};
    let stages: &[&[usize]] = match kind {
        ModelKind::Vgg11 => &[&[64], &[128], &[256, 256], &[512, 512], &[512, 512]],
        ModelKind::Vgg13 => &[&[64, 64], &[128, 128], &[256, 256], &[512, 512], &[512, 512]],
        ModelKind::Vgg16 => &[
            &[64, 64],
            &[128, 128],
            &[256, 256, 256],
            &[512, 512, 512],
            &[512, 512, 512],
        ],
        ModelKind::Vgg19 => &[
            &[64, 64],
            &[128, 128],
            &[256, 256, 256, 256],
            &[512, 512, 512, 512],
            &[512, 512, 512, 512],
        ],
        other => unreachable!("{other} is not a VGG"),
    };
    stages
        .iter()
        .flat_map(|s| s.iter().map(|&c| C(c)).chain(std::iter::once(M)))
        .collect()
}

pub(crate) struct VggSpec {
    features: Vec<Option<ConvSpec>>,
    classifier: [LinearSpec; 3],
}

pub(crate) fn describe(kind: ModelKind, num_classes: usize) -> VggSpec {
    // `features` numbers its modules: a conv and its ReLU take two indices, a pool one.
    let mut index = 0;
    let mut in_ch = 3;
    let mut features = Vec::new();
    for item in config(kind) {
        match item {
            Item::Conv(out) => {
                features.push(Some(ConvSpec::with_bias(
                    format!("features.{index}"),
                    [out, in_ch, 3, 3],
                    1,
                    1,
                )));
                in_ch = out;
                index += 2;
            }
            Item::Pool => {
                features.push(None);
                index += 1;
            }
        }
    }
    VggSpec {
        features,
        classifier: [
            LinearSpec::new("classifier.0", 512 * 7 * 7, 4096),
            LinearSpec::new("classifier.3", 4096, 4096),
            LinearSpec::new("classifier.6", 4096, num_classes),
        ],
    }
}

impl VggSpec {
    pub fn tensors(&self, out: &mut Vec<TensorSpec>) {
        for conv in self.features.iter().flatten() {
            conv.tensors(out);
        }
        for linear in &self.classifier {
            linear.tensors(out);
        }
    }

    pub fn load(&self, l: &Loader) -> Result<Vgg> {
        let features = self
            .features
            .iter()
            .map(|f| f.as_ref().map(|c| c.load(l)).transpose())
            .collect::<Result<_>>()?;
        let [a, b, c] = &self.classifier;
        Ok(Vgg {
            features,
            classifier: [a.load(l)?, b.load(l)?, c.load(l)?],
        })
    }
}

pub(crate) struct Vgg {
    /// `None` is a 2×2 max pool.
    features: Vec<Option<Conv>>,
    classifier: [Linear; 3],
}

impl Vgg {
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let mut h = x.clone();
        for layer in &self.features {
            h = match layer {
                Some(conv) => conv.forward(tape, &h)?.relu()?,
                None => h.max_pool2d([2, 2], [2, 2], [0, 0])?,
            };
        }
        let h = flatten(&h.adaptive_avg_pool2d_general(7, 7)?)?;
        // Dropout is the identity in evaluation.
        let [fc1, fc2, fc3] = &self.classifier;
        let h = fc1.forward(tape, &h)?.relu()?;
        let h = fc2.forward(tape, &h)?.relu()?;
        fc3.forward(tape, &h)
    }
}
