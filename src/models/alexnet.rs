//! torchvision AlexNet (the one-GPU variant of "One weird trick").

use super::layers::{flatten, Conv, ConvSpec, Linear, LinearSpec, Loader};
use super::TensorSpec;
use crate::autodiff::{Tape, Var};
use crate::Result;

pub(crate) struct AlexNetSpec {
    convs: [ConvSpec; 5],
    classifier: [LinearSpec; 3],
}

pub(crate) fn describe(num_classes: usize) -> AlexNetSpec {
    AlexNetSpec {
        convs: [
            ConvSpec::with_bias("features.0", [64, 3, 11, 11], 4, 2),
            ConvSpec::with_bias("features.3", [192, 64, 5, 5], 1, 2),
            ConvSpec::with_bias("features.6", [384, 192, 3, 3], 1, 1),
            ConvSpec::with_bias("features.8", [256, 384, 3, 3], 1, 1),
            ConvSpec::with_bias("features.10", [256, 256, 3, 3], 1, 1),
        ],
        classifier: [
            LinearSpec::new("classifier.1", 256 * 6 * 6, 4096),
            LinearSpec::new("classifier.4", 4096, 4096),
            LinearSpec::new("classifier.6", 4096, num_classes),
        ],
    }
}

impl AlexNetSpec {
    pub fn tensors(&self, out: &mut Vec<TensorSpec>) {
        for conv in &self.convs {
            conv.tensors(out);
        }
        for linear in &self.classifier {
            linear.tensors(out);
        }
    }

    pub fn load(&self, l: &Loader) -> Result<AlexNet> {
        let convs = self.convs.iter().map(|c| c.load(l)).collect::<Result<Vec<_>>>()?;
        let [a, b, c] = &self.classifier;
        Ok(AlexNet {
            convs,
            classifier: [a.load(l)?, b.load(l)?, c.load(l)?],
        })
    }
}

pub(crate) struct AlexNet {
    convs: Vec<Conv>,
    classifier: [Linear; 3],
}

impl AlexNet {
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let pool = |h: Var| h.max_pool2d([3, 3], [2, 2], [0, 0]);
        let c = &self.convs;
        let h = pool(c[0].forward(tape, x)?.relu()?)?;
        let h = pool(c[1].forward(tape, &h)?.relu()?)?;
        let h = c[2].forward(tape, &h)?.relu()?;
        let h = c[3].forward(tape, &h)?.relu()?;
        let h = pool(c[4].forward(tape, &h)?.relu()?)?;
        let h = flatten(&h.adaptive_avg_pool2d_general(6, 6)?)?;
        // Dropout is the identity in evaluation.
        let [fc1, fc2, fc3] = &self.classifier;
        let h = fc1.forward(tape, &h)?.relu()?;
        let h = fc2.forward(tape, &h)?.relu()?;
        fc3.forward(tape, &h)
    }
}
