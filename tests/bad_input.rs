//! The rows of the README's bad-input table that no other test covers, each run through the
//! `fido` binary: the answer is one line naming the problem and a non-zero exit, or, where
//! the input is odd but usable (a 1×1 image), a normal result. Uses the small ONNX ResNet-18
//! fixture (64×64 input, 10 classes), which runs in well under a second here.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::fido;

fn scratch(name: &str) -> PathBuf {
    common::scratch("bad-input", name)
}

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx/resnet18.onnx")
        .display()
        .to_string()
}

fn write_png(path: &Path, w: u32, h: u32) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 120]))
        .save(path)
        .unwrap();
}

/// One line on stderr containing `needle`, a failing exit, no panic.
#[track_caller]
fn refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].contains(needle), "expected `{needle}` in: {stderr}");
}

#[test]
fn foreign_and_truncated_model_files_are_named() {
    let dir = scratch("files");
    let png = dir.join("ok.png");
    write_png(&png, 80, 60);
    let foreign = dir.join("photo.safetensors");
    std::fs::copy(&png, &foreign).unwrap();
    let image = png.to_str().unwrap();
    refused(
        &fido(&[
            "classify",
            "--model",
            "resnet18",
            "--weights",
            foreign.to_str().unwrap(),
            "--image",
            image,
        ]),
        "is not a valid safetensors file",
    );
    let bytes = std::fs::read(model()).unwrap();
    let truncated = dir.join("cut.onnx");
    std::fs::write(&truncated, &bytes[..3000]).unwrap();
    refused(
        &fido(&[
            "classify",
            "--model",
            truncated.to_str().unwrap(),
            "--image",
            image,
        ]),
        "not an ONNX model",
    );
}

#[test]
fn a_manifest_with_bad_rows_names_the_file_and_line() {
    let dir = scratch("manifest");
    write_png(&dir.join("ok.png"), 80, 60);
    let m = model();
    let cases = [
        (
            "not_a_number.csv",
            "file,label\nok.png,3\nok.png,banana\n",
            "not_a_number.csv:3: label `banana`",
        ),
        (
            "missing_image.csv",
            "file,label\nok.png,3\ngone.png,2\n",
            "missing_image.csv:3: image `gone.png` not found",
        ),
        ("out_of_range.csv", "file,label\nok.png,30\n", "label 30 of"),
        ("no_label.csv", "file\nok.png\n", "no_label.csv:2"),
    ];
    for (name, text, needle) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        refused(
            &fido(&["classify", "--model", &m, "--manifest", path.to_str().unwrap()]),
            needle,
        );
    }
}

#[test]
fn impossible_explain_options_and_adapters_are_refused() {
    let dir = scratch("options");
    let png = dir.join("ok.png");
    write_png(&png, 80, 60);
    let (m, image) = (model(), png.to_str().unwrap().to_string());
    let out = dir.join("out");
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            "--model",
            &m,
            "--image",
            &image,
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "2",
        ];
        args.extend_from_slice(extra);
        fido(&args)
    };
    refused(
        &explain(&["--mask-size", "300"]),
        "--mask-size 300 exceeds the 64×64 model input",
    );
    refused(
        &explain(&["--label", "10"]),
        "--label 10 is out of range: the model has 10 classes",
    );
    refused(
        &explain(&["--temperature", "0"]),
        "--temperature must be positive",
    );
    refused(&explain(&["--batch", "100000"]), "storage-binding limit");
    refused(
        &explain(&["--adapter", "sponge"]),
        "no adapter matches `--adapter sponge`; available:",
    );
    let missing = dir.join("nothere.png");
    refused(
        &fido(&[
            "explain",
            "--model",
            &m,
            "--image",
            missing.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        "cannot open image",
    );
}

#[test]
fn a_one_pixel_image_is_resized_like_any_other() {
    let dir = scratch("tiny");
    let png = dir.join("dot.png");
    write_png(&png, 1, 1);
    let out = fido(&[
        "classify",
        "--model",
        &model(),
        "--image",
        png.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let logits = v["results"][0]["logits"].as_array().unwrap();
    assert_eq!(logits.len(), 10);
    assert!(logits.iter().all(|l| l.as_f64().unwrap().is_finite()));
}
