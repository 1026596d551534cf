//! ONNX against native: the same architecture run from an exported ONNX file and from
//! fido's own implementation, forward plus backward to the input at B = 8, 224². The
//! ONNX files come from `tools/onnx_models.py --full` (ResNet-18, random weights) and
//! `--lite0` (EfficientNet-Lite0 with its real weights, whose logits must then agree with
//! the native model's before anything is timed).

use fido::models::onnx::OnnxClassifier;
use fido::models::synthetic::SyntheticWeights;
use fido::models::{Classifier, ModelKind};
use fido::ops::Cost;
use fido::weights::WeightFile;
use fido::{Tape, Tensor};

use super::{pseudo_random, repo_file};
use crate::Bench;

const BATCH: usize = 8;

pub fn run(bench: &mut Bench) {
    let pairs = [
        (ModelKind::ResNet18, "weights/onnx/resnet18.onnx", 2.0 * 1.82),
        (
            ModelKind::EfficientNetLite0,
            "weights/efficientnet_lite0.onnx",
            2.0 * 0.385,
        ),
    ];
    for (kind, file, forward_gflop) in pairs {
        let names = [
            format!("onnx-vs-native {kind} b8 fwd+bwd native"),
            format!("onnx-vs-native {kind} b8 fwd+bwd onnx"),
        ];
        if !names.iter().any(|n| bench.wants(n)) {
            continue;
        }
        let gpu = bench.gpu.clone();
        let onnx = match OnnxClassifier::load(&gpu, &repo_file(file)) {
            Ok(m) => m,
            Err(e) => {
                eprintln!(
                    "onnx-vs-native {kind}: skipped ({e}); run tools/onnx_models.py --full --lite0 first"
                );
                continue;
            }
        };
        // Lite0's ONNX file holds the real weights, so the native model must too, and the
        // two must agree; ResNet-18's speed does not depend on its values.
        let real = WeightFile::open(repo_file("weights/efficientnet-lite0.safetensors"));
        let native = match (kind, real) {
            (ModelKind::EfficientNetLite0, Ok(file)) => Classifier::load(&gpu, kind, &file),
            (ModelKind::EfficientNetLite0, Err(_)) => {
                eprintln!("onnx-vs-native {kind}: skipped, run weights/fetch-efficientnet-lite0.sh first");
                continue;
            }
            _ => Classifier::load_from(&gpu, kind, &SyntheticWeights::new(kind, 1000)),
        }
        .expect("the native model loads");
        let compare = kind == ModelKind::EfficientNetLite0;
        let x = Tensor::from_slice(
            &gpu,
            &[BATCH, 3, 224, 224],
            &pseudo_random(BATCH * 3 * 224 * 224, 7),
        )
        .unwrap();
        let labels = Tensor::from_u32(&gpu, &[BATCH], &vec![1u32; BATCH]).unwrap();
        let cost = Cost {
            flops: forward_gflop * 1e9 * BATCH as f64 * 2.0,
            bytes: 0.0,
        };
        let native_logits = || -> fido::Result<Vec<f32>> {
            let tape = Tape::new();
            let input = tape.constant(x.clone());
            native.forward(&tape, &input)?.value().to_vec()
        };
        let onnx_logits = || -> fido::Result<Vec<f32>> {
            let tape = Tape::new();
            let input = tape.constant(x.clone());
            onnx.forward(&tape, &input)?.value().to_vec()
        };
        let step = |forward: &dyn Fn(&Tape, &fido::Var) -> fido::Result<fido::Var>| -> fido::Result<()> {
            let tape = Tape::new();
            let input = tape.param(x.clone());
            let loss = forward(&tape, &input)?.log_odds(&labels)?.sum()?;
            tape.backward(&loss)?;
            Ok(())
        };
        bench.case(
            &names[0],
            cost,
            |_| {
                let v = native_logits().map_err(|e| e.to_string())?;
                v.iter()
                    .all(|v| v.is_finite())
                    .then_some(())
                    .ok_or("native logits are not finite".into())
            },
            |_| step(&|t, x| native.forward(t, x)),
        );
        bench.case(
            &names[1],
            cost,
            |_| {
                let v = onnx_logits().map_err(|e| e.to_string())?;
                if !v.iter().all(|v| v.is_finite()) || v.len() != BATCH * 1000 {
                    return Err(format!("{} ONNX logits, or not finite", v.len()));
                }
                if compare {
                    let n = native_logits().map_err(|e| e.to_string())?;
                    let diff = v.iter().zip(&n).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                    let scale = n.iter().fold(0f32, |m, v| m.max(v.abs()));
                    // Same weights, same f32 kernels in another order: agreement to 1e-4
                    // of the largest logit, or the two are not the same model.
                    if diff > 1e-4 * scale {
                        return Err(format!(
                            "ONNX and native logits differ by {diff} (largest {scale})"
                        ));
                    }
                }
                Ok(())
            },
            |_| step(&|t, x| onnx.forward(t, x)),
        );
    }
}
