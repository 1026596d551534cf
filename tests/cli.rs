//! The `fido` binary end to end: bad input gets a one-line error and a non-zero exit, never a
//! panic; the happy paths write what CONTRACTS.md promises. Uses small synthetic weights.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::tensor::{Dtype, TensorView};

fn fido(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fido"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fido-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fido"));
        cmd.args(["info", "--json"])
            .env("XDG_RUNTIME_DIR", std::env::temp_dir());
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
