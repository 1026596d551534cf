//! Whole classifiers: forward latency at batch 1 and 8, and forward plus backward to the
//! input at batch 8. EfficientNet-Lite0 uses the real weights when
//! `weights/efficientnet-lite0.safetensors` exists; ResNet-50 uses synthetic weights (the
//! speed does not depend on the values).

use fido::models::synthetic::SyntheticWeights;
use fido::models::{Classifier, ModelKind};
use fido::ops::Cost;
use fido::weights::WeightFile;
use fido::{Tape, Tensor};

use super::pseudo_random;
use crate::Bench;

/// Multiply-adds of one forward pass at 224², from the architectures' published counts.
fn forward_gflop(kind: ModelKind) -> f64 {
    match kind {
        ModelKind::EfficientNetLite0 => 2.0 * 0.385,
        ModelKind::ResNet50 => 2.0 * 4.09,
        _ => 0.0,
    }
}

pub fn run(bench: &mut Bench) {
    for kind in [ModelKind::EfficientNetLite0, ModelKind::ResNet50] {
        let names: Vec<String> = ["b1 fwd", "b8 fwd", "b8 fwd+bwd-input"].iter().map(|s| format!("model {kind} {s}")).collect();
        if !names.iter().any(|n| bench.wants(n)) {
            continue;
        }
        let gpu = bench.gpu.clone();
        let classifier = if kind == ModelKind::EfficientNetLite0 {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/weights/efficientnet-lite0.safetensors");
            match WeightFile::open(path) {
                Ok(file) => Classifier::load(&gpu, kind, &file).expect("EfficientNet-Lite0 loads"),
                Err(_) => {
                    eprintln!("model {kind}: skipped, run weights/fetch-efficientnet-lite0.sh first");
                    continue;
                }
            }
        } else {
            Classifier::load_from(&gpu, kind, &SyntheticWeights::new(kind, 1000)).expect("synthetic weights load")
        };
        for (name, batch, backward) in [(&names[0], 1usize, false), (&names[1], 8, false), (&names[2], 8, true)] {
            let x = Tensor::from_slice(&gpu, &[batch, 3, 224, 224], &pseudo_random(batch * 3 * 224 * 224, 31)).unwrap();
            let labels = Tensor::from_u32(&gpu, &[batch], &vec![1u32; batch]).unwrap();
            let flops = forward_gflop(kind) * 1e9 * batch as f64 * if backward { 2.0 } else { 1.0 };
            let cost = Cost { flops, bytes: 0.0 };
            let classifier = &classifier;
            bench.case(
                name,
                cost,
                |_| {
                    let logits = Tape::new().no_grad_forward(classifier, &x).map_err(|e| e.to_string())?;
                    let values = logits.to_vec().map_err(|e| e.to_string())?;
                    if values.iter().all(|v| v.is_finite()) && values.len() == batch * 1000 {
                        Ok(())
                    } else {
                        Err("logits are not finite".into())
                    }
                },
                |_| {
                    let tape = Tape::new();
                    let input = if backward { tape.param(x.clone()) } else { tape.constant(x.clone()) };
                    let logits = fido::explain::Model::forward(classifier, &tape, &input)?;
                    if backward {
                        let loss = logits.log_odds(&labels)?.sum()?;
                        tape.backward(&loss)?;
                    }
                    Ok(())
                },
            );
        }
    }
}
