//! ONNX models exported by PyTorch (`tools/onnx_models.py`) against PyTorch's own answers.
//!
//! Classifiers: torchvision architectures at small widths with random weights; the logits
//! and the input gradient of the target's log-odds must match the float64 PyTorch goldens.
//! Ops: one small module per op family; the output and the input gradient of
//! Σ output·cotangent must match.
//!
//! Tolerances. fido computes in f32; the goldens are float64. An f32 dot product of K terms
//! carries a relative error of about √K·2⁻²⁴ of the sum of |terms|, and these networks
//! chain 10–50 such layers, so errors relative to the largest magnitude of a tensor stay
//! well below 1e-4 for the logits. Gradients pass through every layer twice (forward
//! values and backward products), and ReLU and max-pool switch points make a few elements
//! sensitive, so they are held to 1e-3 of the largest gradient magnitude.

mod common;

use std::path::{Path, PathBuf};

use fido::autodiff::Tape;
use fido::models::log_odds;
use fido::models::onnx::OnnxClassifier;
use fido::weights::WeightFile;
use fido::Tensor;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = common::repo_path(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no ONNX fixtures in {}", dir.display());
    files
}

fn golden(model: &Path) -> WeightFile {
    let stem = model.file_stem().unwrap().to_string_lossy();
    WeightFile::open(model.with_file_name(format!("{stem}.golden.safetensors"))).unwrap()
}

/// The largest |a − b| relative to the largest |b|.
fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &v| m.max(v.abs() as f64)).max(1e-30);
    got.iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .fold(0f64, f64::max)
        / scale
}

#[test]
fn torchvision_classifiers_match_pytorch_logits_and_log_odds_gradients() {
    let gpu = common::gpu();
    let mut report = Vec::new();
    for path in fixtures("tests/fixtures/onnx") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let g = golden(&path);
        let model = OnnxClassifier::load(&gpu, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let input_shape = g.shape("input").unwrap();
        let input = g.get_f32("input").unwrap();
        let want_logits = g.get_f32("logits").unwrap();
        let want_grad = g.get_f32("grad").unwrap();
        let targets: Vec<usize> = g.get_f32("target").unwrap().iter().map(|&t| t as usize).collect();

        let tape = Tape::new();
        let x = tape.param(Tensor::from_slice(&gpu, &input_shape, &input).unwrap());
        let logits = model.forward(&tape, &x).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got_logits = logits.value().to_vec().unwrap();
        let loss = log_odds(&logits, &targets).unwrap().sum().unwrap();
        let grads = tape.backward(&loss).unwrap();
        let got_grad = grads.get(&x).unwrap().to_vec().unwrap();

        let (e_logits, e_grad) = (
            relative_error(&got_logits, &want_logits),
            relative_error(&got_grad, &want_grad),
        );
        report.push(format!("{name}: logits {e_logits:.1e}, gradient {e_grad:.1e}"));
        assert!(
            e_logits < 1e-4,
            "{name}: logits differ by {e_logits:.2e} of their scale"
        );
        assert!(
            e_grad < 1e-3,
            "{name}: input gradients differ by {e_grad:.2e} of their scale"
        );
    }
    eprintln!("{}", report.join("\n"));
    assert_eq!(report.len(), 15, "every classifier fixture ran");
}

#[test]
fn every_op_fixture_matches_pytorch_output_and_gradient() {
    let gpu = common::gpu();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for path in fixtures("tests/fixtures/onnx/ops") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let g = golden(&path);
        let model = match OnnxClassifier::load(&gpu, &path) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let input_shape = g.shape("input").unwrap();
        let input = g.get_f32("input").unwrap();
        let want_out = g.get_f32("output").unwrap();
        let want_grad = g.get_f32("grad").unwrap();
        let cotangent = g.get_f32("cotangent").unwrap();

        let tape = Tape::new();
        let x = tape.param(Tensor::from_slice(&gpu, &input_shape, &input).unwrap());
        let out = match model.forward(&tape, &x) {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        if out.shape() != g.shape("output").unwrap().as_slice() {
            failures.push(format!("{name}: output shape {:?}", out.shape()));
            continue;
        }
        let got_out = out.value().to_vec().unwrap();
        let seed = Tensor::from_slice(&gpu, out.shape(), &cotangent).unwrap();
        let grads = tape.backward_from(&out, seed).unwrap();
        let got_grad = grads.get(&x).unwrap().to_vec().unwrap();

        let (e_out, e_grad) = (
            relative_error(&got_out, &want_out),
            relative_error(&got_grad, &want_grad),
        );
        report.push(format!("{name}: output {e_out:.1e}, gradient {e_grad:.1e}"));
        // Single ops: a handful of f32 roundings, or the erf approximation's 1e-7.
        if e_out >= 1e-5 || e_grad >= 1e-4 {
            failures.push(format!(
                "{name}: output {e_out:.2e}, gradient {e_grad:.2e} of their scale"
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "{} op fixtures failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The real-size torchvision models, where `tools/onnx_models.py --full` has exported them
/// (hundreds of MB, so not in the repository): `cargo test --release --test onnx_models --
/// --ignored`. Same golden format, plus PyTorch's own float32 answers (`logits_f32`,
/// `grad_f32`): a deep network with random weights can be ill-conditioned (DenseNet-121's
/// float32 input gradient is 1.5e-2 of its scale away from float64 in PyTorch itself), so
/// fido is held to the fixtures' tolerances or to twice PyTorch's own float32 error,
/// whichever is larger.
#[test]
#[ignore = "needs tools/onnx_models.py --full (weights/onnx/)"]
fn full_size_exports_match_pytorch() {
    let gpu = common::gpu();
    for path in fixtures("weights/onnx") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let g = golden(&path);
        let model = OnnxClassifier::load(&gpu, &path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let tape = Tape::new();
        let shape = g.shape("input").unwrap();
        let x = tape.param(Tensor::from_slice(&gpu, &shape, &g.get_f32("input").unwrap()).unwrap());
        let logits = model.forward(&tape, &x).unwrap_or_else(|e| panic!("{name}: {e}"));
        let targets: Vec<usize> = g.get_f32("target").unwrap().iter().map(|&t| t as usize).collect();
        let got_logits = logits.value().to_vec().unwrap();
        let loss = log_odds(&logits, &targets).unwrap().sum().unwrap();
        let got_grad = tape.backward(&loss).unwrap().get(&x).unwrap().to_vec().unwrap();
        let (want_logits, want_grad) = (g.get_f32("logits").unwrap(), g.get_f32("grad").unwrap());
        let e_logits = relative_error(&got_logits, &want_logits);
        let e_grad = relative_error(&got_grad, &want_grad);
        let torch_logits = relative_error(&g.get_f32("logits_f32").unwrap(), &want_logits);
        let torch_grad = relative_error(&g.get_f32("grad_f32").unwrap(), &want_grad);
        eprintln!(
            "{name}: logits {e_logits:.1e} (PyTorch f32 {torch_logits:.1e}), gradient {e_grad:.1e} (PyTorch f32 {torch_grad:.1e})"
        );
        let (tol_logits, tol_grad) = ((2.0 * torch_logits).max(1e-4), (2.0 * torch_grad).max(1e-3));
        assert!(
            e_logits < tol_logits,
            "{name}: logits differ by {e_logits:.2e} of their scale"
        );
        // At a max-pool window whose two largest candidates are within f32 rounding of each
        // other, f32 and f64 may pick different winners: the gradient then lands a few
        // pixels away in one small patch (ShuffleNetV2: one 7×7 patch of one image). A
        // wrong rule would move far more than 0.1% of the elements.
        let scale = want_grad.iter().fold(0f64, |m, &v| m.max(v.abs() as f64));
        let off = got_grad
            .iter()
            .zip(&want_grad)
            .filter(|(&a, &b)| (a as f64 - b as f64).abs() > tol_grad * scale)
            .count();
        let share = off as f64 / want_grad.len() as f64;
        assert!(
            e_grad < tol_grad || share < 1e-3,
            "{name}: input gradients differ by {e_grad:.2e} of their scale at {off} elements ({share:.1e} of them)"
        );
        if e_grad >= tol_grad {
            eprintln!("{name}: {off} gradient elements ({share:.1e}) beyond {tol_grad:.0e}, a max-pool switch point");
        }
    }
}
