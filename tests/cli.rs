//! The `fido` binary end to end: bad input gets a one-line error and a non-zero exit, never a
//! panic; the happy paths write what CONTRACTS.md promises. Uses small synthetic weights.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::tensor::{Dtype, TensorView};

mod common;

use common::fido;

fn scratch(name: &str) -> PathBuf {
    common::scratch("cli", name)
}

#[track_caller]
fn fails_with(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains(needle), "expected `{needle}` in stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
}

fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, s, v)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), bytemuck::cast_slice(v)).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn write_png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
        .save(path)
        .unwrap();
}

/// ResNet-18 with synthetic weights, written once per test that needs it.
fn resnet18_weights(dir: &Path) -> PathBuf {
    let path = dir.join("resnet18.safetensors");
    fido::models::synthetic::SyntheticWeights::new(fido::models::ModelKind::ResNet18, 1000)
        .write_safetensors(&path)
        .unwrap();
    path
}

#[test]
fn help_describes_every_subcommand() {
    for sub in [
        "info", "classify", "explain", "eval", "infill", "convert", "check",
    ] {
        let out = fido(&[sub, "--help"]);
        assert!(out.status.success(), "{sub} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{sub}");
    }
}

#[test]
fn classify_rejects_bad_input_clearly() {
    let dir = scratch("classify");
    let weights = resnet18_weights(&dir);
    let image = dir.join("ok.png");
    write_png(&image, 40, 30, |x, y| [(x * 6) as u8, (y * 8) as u8, 90]);
    let w = weights.to_str().unwrap();
    fails_with(
        &fido(&[
            "classify",
            "--model",
            "resnet19",
            "--weights",
            w,
            "--image",
            image.to_str().unwrap(),
        ]),
        "resnet19",
    );
    let junk = dir.join("junk.jpg");
    std::fs::write(&junk, b"definitely not a jpeg").unwrap();
    fails_with(
        &fido(&[
            "classify",
            "--model",
            "resnet18",
            "--weights",
            w,
            "--image",
            junk.to_str().unwrap(),
        ]),
        "cannot decode image",
    );
    let bytes = std::fs::read(&weights).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(
        &fido(&[
            "classify",
            "--model",
            "resnet18",
            "--weights",
            truncated.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
        ]),
        "truncated",
    );
    fails_with(
        &fido(&[
            "classify",
            "--model",
            "resnet34",
            "--weights",
            w,
            "--image",
            image.to_str().unwrap(),
        ]),
        "layer",
    );
    let missing = dir.join("nope.safetensors");
    fails_with(
        &fido(&[
            "classify",
            "--model",
            "resnet18",
            "--weights",
            missing.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
        ]),
        "nope.safetensors",
    );
}

#[test]
fn classify_json_has_the_contracted_fields() {
    let dir = scratch("classify-json");
    let weights = resnet18_weights(&dir);
    let (a, b) = (dir.join("a.png"), dir.join("b.png"));
    write_png(&a, 64, 48, |x, _| [x as u8 * 3, 20, 200]);
    write_png(&b, 30, 50, |_, y| [10, y as u8 * 5, 10]);
    let out = fido(&[
        "classify",
        "--model",
        "resnet18",
        "--weights",
        weights.to_str().unwrap(),
        "--image",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--top",
        "3",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["model"], "resnet18");
    assert!(v["adapter"].as_str().unwrap().len() > 3);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "one result per image");
    for r in results {
        assert_eq!(r["logits"].as_array().unwrap().len(), 1000);
        let top = r["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(top[0]["prob"].as_f64().unwrap() >= top[1]["prob"].as_f64().unwrap());
        assert!(
            top[0]["label"].as_str().is_some()
                && top[0]["index"].as_u64().is_some()
                && top[0]["logit"].as_f64().is_some()
        );
    }
}

#[test]
fn explain_rejects_impossible_options() {
    let dir = scratch("explain-bad");
    let weights = resnet18_weights(&dir);
    let image = dir.join("ok.png");
    write_png(&image, 32, 32, |x, y| [x as u8 * 8, y as u8 * 8, 128]);
    let base = [
        "explain",
        "--model",
        "resnet18",
        "--weights",
        weights.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ];
    let with = |extra: &[&str]| fido(&[&base[..], extra].concat());
    fails_with(&with(&["--lambda=-1"]), "--lambda");
    fails_with(&with(&["--steps", "0"]), "--steps");
    fails_with(&with(&["--batch", "0"]), "--batch");
    fails_with(&with(&["--label", "1000"]), "out of range");
    fails_with(&with(&["--infill", "ca"]), "--infill-weights");
    fails_with(&with(&["--infill", "sponge"]), "unknown in-filler");
    fails_with(&with(&["--method", "gradcam"]), "unknown method");
}

#[test]
fn eval_rejects_impossible_options() {
    let dir = scratch("eval-bad");
    let weights = resnet18_weights(&dir);
    write_png(&dir.join("ok.png"), 32, 32, |x, y| {
        [x as u8 * 8, y as u8 * 8, 128]
    });
    let manifest = dir.join("manifest.csv");
    std::fs::write(
        &manifest,
        "file,label,wnid,class_name,width,height,boxes_xyxy\nok.png,1,n0,x,32,32,0 0 16 16\n",
    )
    .unwrap();
    let out = dir.join("out");
    let base = [
        "eval",
        "--model",
        "resnet18",
        "--weights",
        weights.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    let with = |extra: &[&str]| fido(&[&base[..], extra].concat());
    fails_with(&with(&["--config", "fido:ca"]), "--infill-weights");
    fails_with(&with(&["--removal-infill", "ca"]), "--infill-weights");
    fails_with(
        &with(&["--config", "gradcam:local"]),
        "configuration `gradcam:local`",
    );
    fails_with(&with(&["--config", "bbmp:local"]), "BBMP uses a fixed reference");
    fails_with(&with(&["--shard", "2/2"]), "shard");
    fails_with(&with(&["--score-batch", "0"]), "--score-batch");
    fails_with(&with(&["--drop-rates", "1.5"]), "1.5");
    fails_with(&with(&["--infill-quality", "sponge"]), "unknown in-filler");
    fails_with(
        &with(&[
            "--infill-weights",
            dir.join("missing.safetensors").to_str().unwrap(),
        ]),
        "missing.safetensors",
    );
    fails_with(
        &fido(&[
            "eval",
            "--merge",
            dir.join("nowhere").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        "nowhere",
    );
}

/// Values are parsed into their types once, by the argument parser; one that does not parse,
/// or settings that do not fit together, are refused in one line naming the cause.
#[test]
fn bad_values_are_refused_in_one_line() {
    let explain = [
        "explain",
        "--model",
        "resnet18",
        "--weights",
        "w",
        "--image",
        "i",
        "--out",
        "o",
    ];
    let eval = [
        "eval",
        "--model",
        "resnet18",
        "--weights",
        "w",
        "--manifest",
        "m",
        "--out",
        "o",
    ];
    let cases: [(&[&str], &[&str], &str); 10] = [
        (&["info"], &["--backend", "sponge"], "unknown backend `sponge`"),
        (
            &explain[..2],
            &["resnet19", "--weights", "w", "--out", "o"],
            "unknown model `resnet19`",
        ),
        (&explain, &["--objective", "most"], "unknown objective `most`"),
        (
            &explain,
            &["--method", "bbmp", "--infill", "local"],
            "BBMP uses a fixed reference",
        ),
        (&eval, &["--reuse", "nonsense"], "expected CONFIG=DIR"),
        (
            &eval,
            &["--reuse", "gradcam:local=dir"],
            "configuration `gradcam:local`",
        ),
        (&eval, &["--shard", "x/2"], "expected K/N"),
        (&eval, &["--drop-rates", "0.5,2"], "`2` is not a fraction"),
        (&eval, &["--config", "fido"], "configuration `fido`: no `:`"),
        (&eval, &["--steps", "0"], "--steps must be at least 1"),
    ];
    for (base, extra, needle) in cases {
        let out = fido(&[base, extra].concat());
        fails_with(&out, needle);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
            "one line expected: {stderr}"
        );
    }
}

#[test]
fn explain_writes_the_contracted_files() {
    let dir = scratch("explain-ok");
    let weights = resnet18_weights(&dir);
    let image = dir.join("photo.png");
    write_png(&image, 80, 60, |x, y| {
        [(x * 3) as u8, (y * 4) as u8, ((x + y) * 2) as u8]
    });
    let out_dir = dir.join("out");
    // A tiny run: the point is the files, not the map.
    let out = fido(&[
        "explain",
        "--model",
        "resnet18",
        "--weights",
        weights.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
        "--steps",
        "2",
        "--batch",
        "2",
        "--mask-size",
        "28",
        "--infill",
        "blur",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in [
        "saliency.safetensors",
        "heatmap.png",
        "overlay.png",
        "summary.json",
    ] {
        assert!(out_dir.join(f).exists(), "{f}");
    }
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    for key in [
        "model",
        "adapter",
        "method",
        "objective",
        "infill",
        "steps",
        "batch",
        "lambda",
        "seed",
        "target",
        "target_prob_before",
        "target_prob_with_map_mask",
        "wall_seconds",
        "source_to_model",
    ] {
        assert!(!s[key].is_null(), "summary.json lacks {key}");
    }
    // 80×60 → shorter side 256 (scale 256/60), then a centre crop of 224.
    let map = &s["source_to_model"];
    assert!((map["scale_y"].as_f64().unwrap() - 256.0 / 60.0).abs() < 1e-9);
    let saliency = std::fs::read(out_dir.join("saliency.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&saliency).unwrap();
    assert_eq!(st.tensor("importance").unwrap().shape(), &[224, 224]);
    assert_eq!(st.tensor("logits").unwrap().shape(), &[28, 28]);
    let heat = image::open(out_dir.join("heatmap.png")).unwrap();
    assert_eq!((heat.width(), heat.height()), (224, 224));
}

fn ca_weights(dir: &Path) -> PathBuf {
    let path = dir.join("ca.safetensors");
    let tensors: Vec<_> = fido::inpaint::tensor_specs()
        .into_iter()
        .map(|(name, shape)| {
            let values = fido::inpaint::synthetic_values(&name, &shape);
            (name, shape, values)
        })
        .collect();
    write_safetensors(&path, &tensors);
    path
}

#[test]
fn infill_fills_the_mask_and_rejects_bad_masks() {
    let dir = scratch("infill");
    let weights = ca_weights(&dir);
    let (image, mask, out) = (dir.join("img.png"), dir.join("mask.png"), dir.join("filled.png"));
    write_png(&image, 60, 44, |x, y| [(x * 4) as u8, (y * 5) as u8, 100]);
    image::GrayImage::from_fn(60, 44, |x, y| {
        image::Luma([if (20..40).contains(&x) && (10..30).contains(&y) {
            255
        } else {
            0
        }])
    })
    .save(&mask)
    .unwrap();
    let infill = |weights: &Path, mask: &Path| {
        fido(&[
            "infill",
            "--weights",
            weights.to_str().unwrap(),
            "--image",
            image.to_str().unwrap(),
            "--mask",
            mask.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let run = infill(&weights, &mask);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("padding 60×44 to 64×48"),
        "says it pads"
    );
    let filled = image::open(&out).unwrap().to_rgb8();
    assert_eq!(filled.dimensions(), (60, 44));
    let original = image::open(&image).unwrap().to_rgb8();
    assert_eq!(
        filled.get_pixel(2, 2),
        original.get_pixel(2, 2),
        "pixels outside the mask are kept"
    );

    let small_mask = dir.join("small.png");
    image::GrayImage::new(30, 30).save(&small_mask).unwrap();
    fails_with(&infill(&weights, &small_mask), "must match");
    let empty_mask = dir.join("empty.png");
    image::GrayImage::new(60, 44).save(&empty_mask).unwrap();
    fails_with(&infill(&weights, &empty_mask), "mask");
    let other = resnet18_weights(&dir);
    fails_with(&infill(&other, &mask), "missing");
}

/// `fido info --json` names the kernel profile: the adapter's default, or FIDO_KERNELS's; a
/// bad FIDO_KERNELS is a one-line error.
#[test]
fn info_reports_the_kernel_profile_and_fido_kernels_forces_it() {
    let info = |profile: Option<&str>| {
        let mut cmd = common::fido_command();
        cmd.args(["info", "--json"]);
        match profile {
            Some(p) => cmd.env("FIDO_KERNELS", p),
            None => cmd.env_remove("FIDO_KERNELS"),
        };
        cmd.output().unwrap()
    };
    let default = info(None);
    assert!(
        default.status.success(),
        "{}",
        String::from_utf8_lossy(&default.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&default.stdout).unwrap();
    let software = json["chosen"].to_string().to_lowercase().contains("cpu");
    assert_eq!(
        json["kernel_profile"],
        if software { "cpu" } else { "gpu" },
        "{json}"
    );
    for forced in ["cpu", "gpu"] {
        let out = info(Some(forced));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["kernel_profile"], forced);
    }
    fails_with(
        &info(Some("tpu")),
        "FIDO_KERNELS is `tpu`; it must be `cpu` or `gpu`",
    );
}

/// The device check's argument and bundle errors, without a bundle or a GPU (the dry run
/// itself takes minutes and is run by hand: README, "Running on a GPU").
#[test]
fn device_check_refuses_bad_arguments_and_a_missing_bundle() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/device-check.sh");
    let run = |args: &[&str], bundle: &Path| {
        Command::new("bash")
            .arg(&script)
            .args(args)
            .env("FIDO_BUNDLE", bundle)
            .output()
            .unwrap()
    };
    let dir = scratch("device-check");
    let usage = run(&[], &dir);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage: tools/device-check.sh [--dry-run] OUT"));
    let missing = run(
        &["--dry-run", dir.join("out").to_str().unwrap()],
        &dir.join("no-bundle"),
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("run tools/device-bundle.sh first"));
    assert!(
        !dir.join("out").exists(),
        "nothing is written before the bundle is found"
    );
}

mod tiny_onnx;

/// Deterministic values in [−1, 1) for an input tensor.
fn input_values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(seed.wrapping_mul(40503))
                >> 8;
            (h % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn write_input(path: &Path, shape: &[usize], values: &[f32]) {
    write_safetensors(path, &[("input".into(), shape.to_vec(), values.to_vec())]);
}

fn json_stdout(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "fido failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each result's logits from `classify --json`.
fn json_logits(v: &serde_json::Value) -> Vec<Vec<f64>> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|z| z.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn read_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    (
        t.shape().to_vec(),
        bytemuck::pod_collect_to_vec::<u8, f32>(t.data()),
    )
}

#[track_caller]
fn fails_in_one_line(out: &Output, needle: &str) {
    fails_with(out, needle);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
        "one line expected: {stderr}"
    );
}

/// `classify --model x.onnx` gives the graph's own logits, whether the graph takes a dynamic
/// batch, was exported with batch 1 (run in turn, said once on stderr) or declares neither
/// its input size (`--size`) nor its output (one forward pass finds the class count).
#[test]
fn onnx_models_classify_as_their_graph_computes() {
    use tiny_onnx::{Shape, CLASSES, SIDE};
    let dir = scratch("onnx-classify");
    let dynamic = tiny_onnx::write(&dir, "tiny.onnx", Shape::default());
    let one = tiny_onnx::write(
        &dir,
        "one.onnx",
        Shape {
            batch_one: true,
            declare_output: false,
            ..Shape::default()
        },
    );
    let open = tiny_onnx::write(
        &dir,
        "open.onnx",
        Shape {
            declare_size: false,
            ..Shape::default()
        },
    );
    let shape = [2, 3, SIDE, SIDE];
    let values = input_values(2 * 3 * SIDE * SIDE, 1);
    let input = dir.join("input.safetensors");
    write_input(&input, &shape, &values);
    let args = |model: &Path| {
        let mut a = vec!["classify", "--model", model.to_str().unwrap()];
        a.extend(["--input", input.to_str().unwrap(), "--json"]);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |a: Vec<String>| fido(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let got = json_stdout(&run(args(&dynamic)));
    assert_eq!(got["model"], "tiny");
    let logits = json_logits(&got);
    assert_eq!((logits.len(), logits[0].len()), (2, CLASSES));

    // The graph's forward pass in this process, on the same adapter choice.
    std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    let gpu = fido::Gpu::new(&fido::AdapterChoice::default()).unwrap();
    let graph = fido::models::onnx::OnnxClassifier::load(&gpu, &dynamic).unwrap();
    let tape = fido::Tape::new();
    let x = tape.constant(fido::Tensor::from_slice(&gpu, &shape, &values).unwrap());
    let want = graph.forward(&tape, &x).unwrap().value().to_vec().unwrap();
    for (i, row) in logits.iter().enumerate() {
        for (k, &z) in row.iter().enumerate() {
            // JSON holds the f32 logits exactly: the same kernels give the same values.
            assert!(
                (z - want[i * CLASSES + k] as f64).abs() < 1e-6,
                "[{i}, {k}]: {z} vs {}",
                want[i * CLASSES + k]
            );
        }
    }

    let out = run(args(&one));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stderr.matches("exported with batch 1").count(), 1, "{stderr}");
    let one_logits = json_logits(&json_stdout(&out));
    let mut open_args = args(&open);
    open_args.extend(["--size".to_string(), SIDE.to_string()]);
    let open_logits = json_logits(&json_stdout(&run(open_args)));
    for other in [&one_logits, &open_logits] {
        for (a, b) in other.iter().flatten().zip(logits.iter().flatten()) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    // Images go through the default `imagenet` preset; 3 classes are named `class i`.
    let image = dir.join("photo.png");
    write_png(&image, 10, 8, |x, y| [(x * 20) as u8, (y * 30) as u8, 77]);
    let out = fido(&[
        "classify",
        "--model",
        dynamic.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--json",
    ]);
    let v = json_stdout(&out);
    let top = &v["results"][0]["top"][0];
    assert!(top["label"].as_str().unwrap().starts_with("class "), "{v}");
}

/// `explain --model x.onnx --input T`: the files of the contract at the graph's input size;
/// `--method gradient` is the derivative of the log-odds (checked against central finite
/// differences through `classify`), integrated gradients are complete, and FIDO runs on a
/// graph exported with batch 1.
#[test]
fn onnx_explanations_and_the_gradient_baselines() {
    use tiny_onnx::{Shape, SIDE};
    let dir = scratch("onnx-explain");
    let model = tiny_onnx::write(&dir, "tiny.onnx", Shape::default());
    let m = model.to_str().unwrap();
    let n = 3 * SIDE * SIDE;
    let x = input_values(n, 7);
    let input = dir.join("x.safetensors");
    write_input(&input, &[1, 3, SIDE, SIDE], &x);
    let i = input.to_str().unwrap();

    let out_dir = dir.join("gradient");
    let out = fido(&[
        "explain",
        "--model",
        m,
        "--input",
        i,
        "--method",
        "gradient",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let saliency = out_dir.join("saliency.safetensors");
    let (gshape, gradient) = read_tensor(&saliency, "gradient");
    assert_eq!(gshape, [3, SIDE, SIDE]);
    let (ishape, importance) = read_tensor(&saliency, "importance");
    assert_eq!(ishape, [SIDE, SIDE]);
    let top = importance.iter().copied().fold(0.0f32, f32::max);
    assert!((top - 1.0).abs() < 1e-6 && importance.iter().all(|&v| (0.0..=1.0).contains(&v)));
    for png in ["heatmap.png", "overlay.png"] {
        let img = image::open(out_dir.join(png)).unwrap();
        assert_eq!((img.width(), img.height()), (SIDE as u32, SIDE as u32), "{png}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["method"], "gradient");
    assert_eq!(summary["model"], "tiny");
    let map = &summary["source_to_model"];
    assert_eq!(
        [
            &map["scale_x"],
            &map["scale_y"],
            &map["offset_x"],
            &map["offset_y"]
        ]
        .map(|v| v.as_f64().unwrap()),
        [1.0, 1.0, 0.0, 0.0]
    );
    let target = summary["target"]["label"].as_u64().unwrap() as usize;

    // Central differences of the log-odds at a few elements, all in one classify batch.
    let eps = 1e-2f32;
    let picks = [0usize, 41, 77, n - 1];
    let mut batch = x.clone();
    for &p in &picks {
        for sign in [1.0, -1.0] {
            let mut v = x.clone();
            v[p] += sign * eps;
            batch.extend(v);
        }
    }
    let perturbed = dir.join("perturbed.safetensors");
    write_input(&perturbed, &[1 + 2 * picks.len(), 3, SIDE, SIDE], &batch);
    let rows = json_logits(&json_stdout(&fido(&[
        "classify",
        "--model",
        m,
        "--input",
        perturbed.to_str().unwrap(),
        "--json",
    ])));
    for (k, &p) in picks.iter().enumerate() {
        let plus = tiny_onnx::log_odds(&rows[1 + 2 * k], target);
        let minus = tiny_onnx::log_odds(&rows[2 + 2 * k], target);
        let fd = (plus - minus) / (2.0 * eps as f64);
        // f32 logits of size ~1 carry ~1e-7 rounding, 1e-5 after dividing by 2ε; the
        // ε² term of the smooth tanh net is ~1e-4. 2e-3 + 2% leaves a wide margin.
        let g = gradient[p] as f64;
        assert!(
            (fd - g).abs() < 2e-3 + 0.02 * g.abs(),
            "element {p}: fd {fd}, gradient {g}"
        );
    }
    assert!(gradient.iter().any(|&g| g.abs() > 1e-3));

    // Integrated gradients: Σ attributions ≈ s(x) − s(0).
    let ig_dir = dir.join("ig");
    let out = fido(&[
        "explain",
        "--model",
        m,
        "--input",
        i,
        "--method",
        "integrated-gradients",
        "--out",
        ig_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, attribution) = read_tensor(&ig_dir.join("saliency.safetensors"), "gradient");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ig_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["method"], "integrated-gradients");
    assert_eq!(summary["steps"], 32);
    let ends = dir.join("ends.safetensors");
    let mut both = x.clone();
    both.extend(vec![0.0; n]);
    write_input(&ends, &[2, 3, SIDE, SIDE], &both);
    let rows = json_logits(&json_stdout(&fido(&[
        "classify",
        "--model",
        m,
        "--input",
        ends.to_str().unwrap(),
        "--json",
    ])));
    let delta = tiny_onnx::log_odds(&rows[0], target) - tiny_onnx::log_odds(&rows[1], target);
    let total: f64 = attribution.iter().map(|&a| a as f64).sum();
    // The midpoint rule's error is ≤ max|f''|/(24·S²) for f(α) = d s(α·x)/dα; with S = 32
    // and |f''| of a few units for this net that is ~1e-4, and f32 sums of 108 terms add
    // ~1e-5. 5e-3 (relative to max(1, |Δs|)) is far below what a wrong rule gives.
    assert!(
        (total - delta).abs() < 5e-3 * delta.abs().max(1.0),
        "Σ attributions {total}, s(x) − s(0) {delta}"
    );

    // FIDO on a graph exported with batch 1: its B samples run one after another.
    let one = tiny_onnx::write(
        &dir,
        "one.onnx",
        Shape {
            batch_one: true,
            ..Shape::default()
        },
    );
    let fido_dir = dir.join("fido");
    let out = fido(&[
        "explain",
        "--model",
        one.to_str().unwrap(),
        "--input",
        i,
        "--steps",
        "2",
        "--batch",
        "2",
        "--mask-size",
        "3",
        "--out",
        fido_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .matches("exported with batch 1")
            .count(),
        1
    );
    let saliency = fido_dir.join("saliency.safetensors");
    assert_eq!(read_tensor(&saliency, "importance").0, [SIDE, SIDE]);
    assert_eq!(read_tensor(&saliency, "logits").0, [3, 3]);
}

/// ONNX models, preprocessing flags and `explain --input`: every mistake is one line.
#[test]
fn onnx_and_preprocessing_mistakes_are_refused_in_one_line() {
    use tiny_onnx::{Shape, SIDE};
    let dir = scratch("onnx-errors");
    let model = tiny_onnx::write(&dir, "tiny.onnx", Shape::default());
    let m = model.to_str().unwrap();
    let good = dir.join("good.safetensors");
    write_input(&good, &[1, 3, SIDE, SIDE], &input_values(3 * SIDE * SIDE, 2));
    let two = dir.join("two.safetensors");
    write_input(&two, &[2, 3, SIDE, SIDE], &input_values(2 * 3 * SIDE * SIDE, 3));
    let small = dir.join("small.safetensors");
    write_input(&small, &[1, 3, 5, 5], &input_values(3 * 25, 4));
    let missing = dir.join("missing.onnx");
    let (g, t, s) = (
        good.to_str().unwrap(),
        two.to_str().unwrap(),
        small.to_str().unwrap(),
    );
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["classify", "--model", m, "--input", g, "--preprocess", "fancy"],
            "unknown preprocessing `fancy`",
        ),
        (
            vec!["classify", "--model", m, "--input", g, "--mean", "0.5,0.5"],
            "has 2 values",
        ),
        (
            vec!["classify", "--model", m, "--input", g, "--mean", "a,b,c"],
            "not a list of three numbers",
        ),
        (
            vec!["classify", "--model", m, "--input", g, "--std", "0.2,0,0.2"],
            "--std must be three positive values",
        ),
        (
            vec!["classify", "--model", m, "--weights", g, "--input", g],
            "--weights is not used with an ONNX model",
        ),
        (
            vec!["classify", "--model", missing.to_str().unwrap(), "--input", g],
            "does not exist",
        ),
        (
            vec!["classify", "--model", m, "--input", g, "--size", "8"],
            "--size 8 disagrees",
        ),
        (
            vec!["classify", "--model", "resnet18", "--input", g],
            "--model resnet18 needs --weights",
        ),
        (
            vec!["explain", "--model", m, "--input", t, "--out", o],
            "explain takes one image",
        ),
        (
            vec!["explain", "--model", m, "--input", s, "--out", o],
            "takes [N, 3, 6, 6] inputs",
        ),
        (
            vec![
                "explain", "--model", m, "--input", g, "--method", "saliency", "--out", o,
            ],
            "unknown method `saliency`",
        ),
        (
            vec!["eval", "--model", m, "--weights", g, "--manifest", g, "--out", o],
            "--weights is not used with an ONNX model",
        ),
    ];
    for (args, needle) in cases {
        fails_in_one_line(&fido(&args), needle);
    }
}

/// `fido eval --model x.onnx` with the gradient baselines: their maps go through the same
/// metrics and report as FIDO's.
#[test]
fn eval_scores_the_gradient_baselines_on_an_onnx_model() {
    use tiny_onnx::{Shape, SIDE};
    let dir = scratch("onnx-eval");
    let model = tiny_onnx::write(&dir, "tiny.onnx", Shape::default());
    write_png(&dir.join("a.png"), 12, 12, |x, y| {
        [(x * 20) as u8, (y * 20) as u8, 128]
    });
    let manifest = dir.join("manifest.csv");
    std::fs::write(
        &manifest,
        "file,label,wnid,class_name,width,height,boxes_xyxy\na.png,1,n1,one,12,12,2 2 8 8\n",
    )
    .unwrap();
    let out = dir.join("eval");
    let run = fido(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--config",
        "gradient:-",
        "ig:-",
        "--steps",
        "4",
        "--all-images",
        "--removal-step",
        "0.25",
        "--quiet",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("results").join("a.png.json")).unwrap_or_else(|_| {
            let file = std::fs::read_dir(out.join("results"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            std::fs::read_to_string(file).unwrap()
        }),
    )
    .unwrap();
    for name in ["gradient:-", "ig:-"] {
        let entry = &record["configs"][name];
        assert_eq!(entry["status"], "ok", "{name}: {record}");
        assert!(entry["off_box_ratio"].as_f64().is_some(), "{name}: {entry}");
        assert!(
            entry["removal_drops"].as_array().is_some_and(|d| d.len() == 4),
            "{name}: {entry}"
        );
        let maps = out.join("maps").join(name.replace(':', "_")).join("a");
        assert_eq!(
            read_tensor(&maps.join("saliency.safetensors"), "gradient").0,
            [3, SIDE, SIDE]
        );
    }
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("eval.json")).unwrap()).unwrap();
    assert_eq!(settings["model"], "tiny");
    assert_eq!(settings["configs"][1]["steps"], 4);
    let report = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.path().extension().is_some_and(|x| x == "html"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .expect("an HTML report");
    assert!(report.contains("ig:-") && report.contains("gradient:-"));
}
