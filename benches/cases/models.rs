//! Whole classifiers: forward latency at batch 1 and 8, and forward plus backward to the
//! input at batch 8. EfficientNet-Lite0 uses the real weights when
//! `weights/efficientnet-lite0.safetensors` exists; ResNet-50 uses synthetic weights (the
//! speed does not depend on the values).

use fido::models::synthetic::SyntheticWeights;
use fido::models::{Classifier, ModelKind};
use fido::ops::Cost;
use fido::weights::WeightFile;
use fido::{Tape, Tensor};

use super::{pseudo_random, repo_file};
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
        let names: Vec<String> = ["b1 fwd", "b8 fwd", "b8 fwd+bwd-input"]
            .iter()
            .map(|s| format!("model {kind} {s}"))
            .collect();
        if !names.iter().any(|n| bench.wants(n)) {
            continue;
        }
        let gpu = bench.gpu.clone();
        let classifier = if kind == ModelKind::EfficientNetLite0 {
            match WeightFile::open(repo_file("weights/efficientnet-lite0.safetensors")) {
                Ok(file) => Classifier::load(&gpu, kind, &file).expect("EfficientNet-Lite0 loads"),
                Err(_) => {
                    eprintln!("model {kind}: skipped, run weights/fetch-efficientnet-lite0.sh first");
                    continue;
                }
            }
        } else {
            Classifier::load_from(&gpu, kind, &SyntheticWeights::new(kind, 1000))
                .expect("synthetic weights load")
        };
        for (name, batch, backward) in [
            (&names[0], 1usize, false),
            (&names[1], 8, false),
            (&names[2], 8, true),
        ] {
            let x = Tensor::from_slice(
                &gpu,
                &[batch, 3, 224, 224],
                &pseudo_random(batch * 3 * 224 * 224, 31),
            )
            .unwrap();
            let labels = Tensor::from_u32(&gpu, &[batch], &vec![1u32; batch]).unwrap();
            let flops = forward_gflop(kind) * 1e9 * batch as f64 * if backward { 2.0 } else { 1.0 };
            let cost = Cost { flops, bytes: 0.0 };
            let classifier = &classifier;
            bench.case(
                name,
                cost,
                |_| {
                    let logits = Tape::new()
                        .no_grad_forward(classifier, &x)
                        .map_err(|e| e.to_string())?;
                    let values = logits.to_vec().map_err(|e| e.to_string())?;
                    if values.iter().all(|v| v.is_finite()) && values.len() == batch * 1000 {
                        Ok(())
                    } else {
                        Err("logits are not finite".into())
                    }
                },
                |_| {
                    let tape = Tape::new();
                    let input = if backward {
                        tape.param(x.clone())
                    } else {
                        tape.constant(x.clone())
                    };
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

/// One FIDO step at B = 8: on EfficientNet-Lite0 with the Blur in-filler and with Local
/// (the CLI's default), and on ResNet-50 with Blur (synthetic weights; the step PyTorch's is
/// compared with, tools/torch_fido_step.py), and where its time goes.
pub fn fido_step(bench: &mut Bench) {
    for (name, infill) in [
        ("fido step lite0 b8 blur", fido::explain::InfillKind::Blur),
        ("fido step lite0 b8 local", fido::explain::InfillKind::Local),
        ("fido step resnet50 b8 blur", fido::explain::InfillKind::Blur),
    ] {
        if bench.wants(name) {
            fido_step_with(bench, name, infill);
        }
    }
}

fn fido_step_with(bench: &mut Bench, name: &str, infill: fido::explain::InfillKind) {
    let gpu = bench.gpu.clone();
    let Some((kind, classifier)) = step_classifier(&gpu, name) else {
        return;
    };
    let x = Tensor::from_slice(&gpu, &[1, 3, 224, 224], &pseudo_random(3 * 224 * 224, 41)).unwrap();
    let config = fido::explain::ExplainConfig {
        infill,
        steps: 1000,
        ..fido::explain::ExplainConfig::paper(fido::explain::Method::Fido)
    };
    let norm = fido::imageio::Normalize::CENTERED_255;
    let mut explainer = fido::explain::Explainer::new(&classifier, &x, Some(1), norm, config, None).unwrap();
    explainer.step().unwrap(); // compiles every pipeline
    let p = explainer.step_profiled().unwrap();
    let total = p.sample_and_mix + p.forward + p.backward + p.adam;
    let own = p.sample_and_mix + p.adam;
    println!(
        "{name}: sampling+mixing {:.1} ms, forward {:.1} ms, backward {:.1} ms, Adam {:.2} ms; \
         FIDO's own share {:.1}% of {:.0} ms; 300 steps ≈ {:.0} s",
        p.sample_and_mix,
        p.forward,
        p.backward,
        p.adam,
        100.0 * own / total,
        total,
        300.0 * total / 1e3
    );
    if std::env::var_os("FIDO_PROFILE").is_some() {
        // Each pipeline's best total over three steps: this machine's timings swing by tens
        // of percent from one run to the next.
        let mut best: Vec<fido::gpu::DispatchProfile> = Vec::new();
        for _ in 0..3 {
            gpu.start_dispatch_profile().unwrap();
            explainer.step().unwrap();
            for row in gpu.finish_dispatch_profile().unwrap() {
                match best.iter_mut().find(|b| b.label == row.label) {
                    Some(b) => b.ms = b.ms.min(row.ms),
                    None => best.push(row),
                }
            }
        }
        best.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        let total: f64 = best.iter().map(|r| r.ms).sum();
        let count: usize = best.iter().map(|r| r.dispatches).sum();
        println!("{name}: {total:.0} ms over {count} dispatches, each timed alone (best of 3 steps):");
        for r in best.iter().take(24) {
            println!(
                "  {:>8.1} ms {:>5.1}% {:>5}×  {}",
                r.ms,
                100.0 * r.ms / total,
                r.dispatches,
                r.label
            );
        }
    }
    // A whole step submits itself, so time it by the wall clock around a blocking wait.
    let start = std::time::Instant::now();
    explainer.step().unwrap();
    gpu.sync().unwrap();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let flops = forward_gflop(kind) * 1e9 * 8.0 * 2.0;
    bench.report(
        name,
        Cost { flops, bytes: 0.0 },
        &crate::Timing {
            median: ms,
            min: ms,
            max: ms,
        },
    );
}

/// The classifier a step case names: EfficientNet-Lite0 with its real weights (None, with a
/// note, when they have not been fetched) or ResNet-50 with synthetic ones.
fn step_classifier(gpu: &fido::Gpu, name: &str) -> Option<(ModelKind, Classifier)> {
    if name.contains("resnet50") {
        let kind = ModelKind::ResNet50;
        let classifier = Classifier::load_from(gpu, kind, &SyntheticWeights::new(kind, 1000))
            .expect("synthetic weights load");
        return Some((kind, classifier));
    }
    let Ok(file) = WeightFile::open(repo_file("weights/efficientnet-lite0.safetensors")) else {
        eprintln!("{name}: skipped, run weights/fetch-efficientnet-lite0.sh first");
        return None;
    };
    let kind = ModelKind::EfficientNetLite0;
    Some((
        kind,
        Classifier::load(gpu, kind, &file).expect("EfficientNet-Lite0 loads"),
    ))
}

/// A whole FIDO explanation of ResNet-50 (synthetic weights, Blur in-filler), timed from
/// the explainer's creation to its finished map: at the paper's settings (B = 8, 300
/// steps), and at B = 1 × 2 steps to rehearse the case on a CPU adapter.
pub fn fido_explain(bench: &mut Bench) {
    for (name, batch, steps) in [
        ("fido explain resnet50 b8 x300 blur", 8, 300),
        ("fido explain resnet50 b1 x2 blur", 1, 2),
    ] {
        if !bench.wants(name) {
            continue;
        }
        let gpu = bench.gpu.clone();
        let (kind, classifier) = step_classifier(&gpu, name).expect("ResNet-50 needs no download");
        let x = Tensor::from_slice(&gpu, &[1, 3, 224, 224], &pseudo_random(3 * 224 * 224, 43)).unwrap();
        let config = fido::explain::ExplainConfig {
            infill: fido::explain::InfillKind::Blur,
            steps,
            batch,
            ..fido::explain::ExplainConfig::paper(fido::explain::Method::Fido)
        };
        let norm = fido::imageio::Normalize::CENTERED_255;
        // Compile every pipeline first, as a second explanation in one process would find them.
        let mut warm =
            fido::explain::Explainer::new(&classifier, &x, Some(1), norm, config.clone(), None).unwrap();
        warm.step().unwrap();
        gpu.sync().unwrap();
        drop(warm);
        let start = std::time::Instant::now();
        let mut explainer =
            fido::explain::Explainer::new(&classifier, &x, Some(1), norm, config, None).unwrap();
        // Progress read back as often as `fido explain` reads it.
        explainer.run((steps / 60).clamp(1, 10), |_| {}).unwrap();
        let explanation = explainer.finish().unwrap();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        assert!(
            explanation.importance.iter().all(|v| v.is_finite()),
            "{name}: the map is finite"
        );
        let flops = forward_gflop(kind) * 1e9 * batch as f64 * 2.0 * steps as f64;
        bench.report(
            name,
            Cost { flops, bytes: 0.0 },
            &crate::Timing {
                median: ms,
                min: ms,
                max: ms,
            },
        );
    }
}

/// The Contextual Attention in-painter at 256², batch 1 and 8, with synthetic weights.
pub fn inpainter(bench: &mut Bench) {
    for batch in [1usize, 8] {
        let name = format!("ca inpaint 256 b{batch}");
        if !bench.wants(&name) {
            continue;
        }
        let gpu = bench.gpu.clone();
        let generator = fido::inpaint::CaGenerator::from_fn(&gpu, |name, shape| {
            Ok(fido::inpaint::synthetic_values(name, shape))
        })
        .expect("synthetic CA weights load");
        let side = 256;
        let image = Tensor::from_slice(
            &gpu,
            &[batch, 3, side, side],
            &pseudo_random(batch * 3 * side * side, 51),
        )
        .unwrap();
        let holes: Vec<f32> = (0..batch * side * side)
            .map(|i| {
                let (y, x) = ((i / side) % side, i % side);
                if (64..160).contains(&y) && (80..200).contains(&x) {
                    1.0
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_slice(&gpu, &[batch, 1, side, side], &holes).unwrap();
        // Multiply-adds of the convolutions (attention excluded), counted from the layer table.
        let flops = ca_conv_flops(side) * batch as f64;
        bench.case(
            &name,
            Cost { flops, bytes: 0.0 },
            |_| {
                let out = generator
                    .forward(&image, &mask)
                    .and_then(|t| t.to_vec())
                    .map_err(|e| e.to_string())?;
                if out.iter().all(|v| (-1.0..=1.0).contains(v)) {
                    Ok(())
                } else {
                    Err("output outside [-1, 1]".into())
                }
            },
            |_| generator.forward(&image, &mask).map(drop),
        );
    }
}

/// Convolution FLOPs of the generator at `side`², following the resolution through the layer
/// table: each branch starts at full size, stride 2 halves it and "up" doubles it.
fn ca_conv_flops(side: usize) -> f64 {
    let mut res = side;
    let mut flops = 0.0;
    for l in fido::inpaint::layer_specs() {
        if matches!(l.name, "conv1" | "xconv1" | "pmconv1") {
            res = side;
        }
        if l.upsample {
            res *= 2;
        }
        res = res.div_ceil(l.stride);
        flops += 2.0 * (l.ksize * l.ksize * l.in_channels * l.out_channels * res * res) as f64;
    }
    flops
}
