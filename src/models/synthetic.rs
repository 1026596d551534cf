//! Deterministic random weights for every architecture, so tests and benchmarks need no
//! downloaded checkpoint and the goldens need no committed weights.
//!
//! `tools/golden_models.py` implements the same generator in NumPy; both must give the same
//! bits. Element `i` of tensor `name` is drawn from
//! `x = splitmix64(fnv1a64(name) ^ i)` as `u = ((x >> 11) · 2⁻⁵³)·2 − 1 ∈ [−1, 1)`, and scaled
//! in f64 by a rule chosen from the name and shape (then rounded once to f32):
//!
//! | tensor | value |
//! |---|---|
//! | conv / linear `.weight` (rank ≥ 2) | `u·√(6 / fan_in)`, fan_in = elements / rows (He-uniform: ReLU nets keep unit scale) |
//! | batch-norm `.weight` (rank 1) | `(1 + 0.2u)·g`, g = [`RESIDUAL_GAIN`] for the last batch norm of a ResNet residual branch, else 1 |
//! | `.bias` | `0.1u` |
//! | `.running_mean` | `0.1u` |
//! | `.running_var` | `1 + 0.5·|u|` |
//!
//! The residual gain keeps ResNet-152's fifty residual additions from compounding: each
//! adds a branch about `RESIDUAL_GAIN` times the trunk's scale.

use std::collections::HashMap;
use std::path::Path;

use super::{ModelKind, TensorSpec, WeightSource};
use crate::{Error, Result};

/// Scale of the last batch norm in each ResNet residual branch.
pub const RESIDUAL_GAIN: f64 = 0.2;

pub use crate::weights::synthetic::{fnv1a64, splitmix64, unit};

/// The values of tensor `name` with `shape` in a `kind` state_dict.
pub fn tensor_values(kind: ModelKind, name: &str, shape: &[usize]) -> Vec<f32> {
    let n: usize = shape.iter().product();
    let hash = fnv1a64(name);
    let u = |i: usize| unit(hash, i as u64);
    let map = |f: &dyn Fn(f64) -> f64| -> Vec<f32> { (0..n).map(|i| f(u(i)) as f32).collect() };
    if name.ends_with(".running_var") {
        map(&|u| 1.0 + 0.5 * u.abs())
    } else if name.ends_with(".running_mean") || name.ends_with(".bias") {
        map(&|u| 0.1 * u)
    } else if shape.len() == 1 {
        let gain = if is_residual_last_bn(kind, name) {
            RESIDUAL_GAIN
        } else {
            1.0
        };
        map(&|u| (1.0 + 0.2 * u) * gain)
    } else {
        let fan_in = (n / shape[0].max(1)).max(1) as f64;
        let scale = (6.0 / fan_in).sqrt();
        map(&|u| u * scale)
    }
}

/// `layer{s}.{b}.bn{L}.weight` with L the last convolution of the block (2 basic, 3 bottleneck).
fn is_residual_last_bn(kind: ModelKind, name: &str) -> bool {
    let last = match kind {
        ModelKind::ResNet18 | ModelKind::ResNet34 => 2,
        ModelKind::ResNet50 | ModelKind::ResNet101 | ModelKind::ResNet152 => 3,
        _ => return false,
    };
    name.starts_with("layer") && name.ends_with(&format!(".bn{last}.weight"))
}

/// A complete synthetic state_dict for one architecture, generated on demand.
#[derive(Clone, Debug)]
pub struct SyntheticWeights {
    kind: ModelKind,
    tensors: Vec<TensorSpec>,
}

impl SyntheticWeights {
    pub fn new(kind: ModelKind, num_classes: usize) -> Self {
        SyntheticWeights {
            kind,
            tensors: kind.expected_tensors(num_classes),
        }
    }

    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// Number of parameters.
    pub fn parameter_count(&self) -> usize {
        self.tensors
            .iter()
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }

    /// Write the state_dict as a safetensors file (f32, original names), e.g. for the
    /// command line.
    pub fn write_safetensors(&self, path: &Path) -> Result<()> {
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|t| {
                let values = tensor_values(self.kind, &t.name, &t.shape);
                (
                    t.name.clone(),
                    t.shape.clone(),
                    bytemuck::cast_slice(&values).to_vec(),
                )
            })
            .collect();
        let views = data
            .iter()
            .map(|(name, shape, bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| Error::Weights(format!("tensor `{name}`: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let metadata = HashMap::from([
            ("model".to_string(), self.kind.to_string()),
            ("generator".to_string(), "fido synthetic weights".to_string()),
        ]);
        let bytes = safetensors::serialize(views, Some(metadata))
            .map_err(|e| Error::Weights(format!("cannot write `{}`: {e}", path.display())))?;
        crate::fsio::write_atomic(path, &bytes)
    }
}

impl WeightSource for SyntheticWeights {
    fn origin(&self) -> String {
        format!("synthetic {} weights", self.kind)
    }
    fn tensor_names(&self) -> Vec<String> {
        self.tensors.iter().map(|t| t.name.clone()).collect()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.shape.clone())
    }
    fn tensor_values(&self, name: &str) -> Result<Vec<f32>> {
        let t = self
            .tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::Weights(format!("tensor `{name}` is not in {}", self.origin())))?;
        Ok(tensor_values(self.kind, name, &t.shape))
    }
}
