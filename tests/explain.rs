//! FIDO and BBMP on a planted classifier whose answer is known: it scores only the mean of a
//! rectangle of the image, so a good saliency map must concentrate there.

mod common;

use common::gpu;
use fido::explain::infill::{self, InfillKind};
use fido::explain::{ExplainConfig, Explainer, Method, Model, Objective};
use fido::imageio::Normalize;
use fido::ops::resize::reference::resize_bilinear as bilinear_ref;
use fido::{Gpu, Result, Tape, Tensor, Var};

const SIDE: usize = 32;
/// The planted region: rows 8..20, columns 12..26.
const REGION: (usize, usize, usize, usize) = (8, 20, 12, 26);

fn in_region(y: usize, x: usize) -> bool {
    (REGION.0..REGION.1).contains(&y) && (REGION.2..REGION.3).contains(&x)
}

/// Two classes: logit 0 is 4 × the mean of all channels over the region, logit 1 is 0.
struct Planted {
    weights: Tensor,
}

impl Planted {
    fn new(gpu: &Gpu) -> Planted {
        let area = ((REGION.1 - REGION.0) * (REGION.3 - REGION.2) * 3) as f32;
        let mut w = vec![0.0f32; 3 * SIDE * SIDE * 2];
        for c in 0..3 {
            for y in 0..SIDE {
                for x in 0..SIDE {
                    if in_region(y, x) {
                        w[((c * SIDE + y) * SIDE + x) * 2] = 4.0 / area;
                    }
                }
            }
        }
        Planted {
            weights: Tensor::from_slice(gpu, &[3 * SIDE * SIDE, 2], &w).unwrap(),
        }
    }
    fn host_weights(&self) -> Vec<f32> {
        self.weights.to_vec().unwrap()
    }
}

impl Model for Planted {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let n = x.shape()[0];
        x.reshape(&[n, 3 * SIDE * SIDE])?
            .matmul(&tape.constant(self.weights.clone()), false, false)
    }
}

/// Bright in the region (evidence for class 0), mildly textured elsewhere.
fn image(gpu: &Gpu) -> (Tensor, Vec<f32>) {
    let mut v = vec![0.0f32; 3 * SIDE * SIDE];
    for c in 0..3 {
        for y in 0..SIDE {
            for x in 0..SIDE {
                v[(c * SIDE + y) * SIDE + x] = if in_region(y, x) {
                    1.5
                } else {
                    0.3 * (((x * 7 + y * 3 + c) % 5) as f32 - 2.0)
                };
            }
        }
    }
    (Tensor::from_slice(gpu, &[1, 3, SIDE, SIDE], &v).unwrap(), v)
}

fn config(method: Method, objective: Objective, infill: InfillKind) -> ExplainConfig {
    ExplainConfig {
        objective,
        infill,
        steps: 80,
        batch: 4,
        mask_size: 8,
        lambda: if method == Method::Fido { 6e-3 } else { 4e-3 },
        ..ExplainConfig::paper(method)
    }
}

fn region_share(importance: &[f32]) -> (f64, f64) {
    let (mut inside, mut total) = (0.0f64, 0.0f64);
    for (i, &v) in importance.iter().enumerate() {
        total += v as f64;
        if in_region(i / SIDE, i % SIDE) {
            inside += v as f64;
        }
    }
    let area = ((REGION.1 - REGION.0) * (REGION.3 - REGION.2)) as f64 / (SIDE * SIDE) as f64;
    (inside / total, area)
}

#[test]
fn ssr_and_sdr_maps_concentrate_on_the_planted_region() {
    let gpu = gpu();
    let model = Planted::new(&gpu);
    let (x, _) = image(&gpu);
    for (method, objective, infill) in [
        (Method::Fido, Objective::Ssr, InfillKind::Mean),
        (Method::Fido, Objective::Ssr, InfillKind::Local),
        (Method::Fido, Objective::Sdr, InfillKind::Mean),
        (Method::Bbmp, Objective::Ssr, InfillKind::Blur),
    ] {
        let cfg = ExplainConfig {
            steps: 100,
            ..config(method, objective, infill)
        };
        let mut e = Explainer::new(&model, &x, Some(0), Normalize::IMAGENET, cfg, None).unwrap();
        e.run(20, |_| {}).unwrap();
        let result = e.finish().unwrap();
        let (share, area) = region_share(&result.importance);
        // The region is 16% of the image. A map that ignored the classifier would put about
        // that share of its mass there; demand well over twice that.
        assert!(
            share > 2.5 * area,
            "{method} {objective} {infill}: {:.0}% of importance in a region of {:.0}%",
            100.0 * share,
            100.0 * area
        );
        assert!(result.importance.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn the_loss_falls_and_the_objectives_have_opposite_signs() {
    let gpu = gpu();
    let model = Planted::new(&gpu);
    let (x, _) = image(&gpu);
    let mut scores = vec![];
    for objective in [Objective::Ssr, Objective::Sdr] {
        let cfg = ExplainConfig {
            lambda: 0.0,
            ..config(Method::Fido, objective, InfillKind::Mean)
        };
        let mut e = Explainer::new(&model, &x, Some(0), Normalize::IMAGENET, cfg, None).unwrap();
        e.run(10, |_| {}).unwrap();
        let r = e.finish().unwrap();
        let first = &r.history[0];
        let last = r.history.last().unwrap();
        assert!(
            last.loss < first.loss,
            "{objective}: loss {} -> {}",
            first.loss,
            last.loss
        );
        scores.push((first.score, last.score));
    }
    // Without the area term, SSR keeps everything (the score rises) and SDR drops the
    // evidence (the score falls).
    assert!(scores[0].1 > scores[0].0, "SSR score {:?}", scores[0]);
    assert!(scores[1].1 < scores[1].0, "SDR score {:?}", scores[1]);
}

#[test]
fn the_same_seed_gives_the_same_map() {
    let gpu = gpu();
    let model = Planted::new(&gpu);
    let (x, _) = image(&gpu);
    let run = |seed: u64| {
        let cfg = ExplainConfig {
            steps: 15,
            seed,
            ..config(Method::Fido, Objective::Ssr, InfillKind::Random)
        };
        let mut e = Explainer::new(&model, &x, None, Normalize::IMAGENET, cfg, None).unwrap();
        e.run(0, |_| {}).unwrap();
        e.finish().unwrap().importance
    };
    let a = run(3);
    assert_eq!(a, run(3));
    assert_ne!(a, run(4));
}

/// The whole FIDO loss in f64 on the CPU, with the same random numbers as the GPU's first
/// step, for the planted model and the Mean in-filler (background 0).
fn reference_loss(theta: &[f64], image: &[f32], weights: &[f32], cfg: &ExplainConfig) -> f64 {
    let (m, b) = (cfg.mask_size, cfg.batch);
    let p: Vec<f64> = theta.iter().map(|t| 1.0 / (1.0 + (-t).exp())).collect();
    let p_up: Vec<f64> = bilinear_ref(&p, 1, [m, m], [SIDE, SIDE], true)
        .into_iter()
        .map(|v| v.clamp(1e-6, 1.0 - 1e-6))
        .collect();
    let logit_up: Vec<f64> = p_up.iter().map(|v| v.ln() - (1.0 - v).ln()).collect();
    let z = fido::ops::random::reference::concrete_sample(&logit_up, b, cfg.temperature as f64, cfg.seed, 0);
    let plane = SIDE * SIDE;
    let mut score = 0.0;
    for s in 0..b {
        let mut logit0 = 0.0;
        for c in 0..3 {
            for i in 0..plane {
                let keep = 1.0 - z[s * plane + i];
                logit0 += keep * image[c * plane + i] as f64 * weights[(c * plane + i) * 2] as f64;
            }
        }
        score += logit0; // log-odds of class 0 against a zero logit
    }
    score /= b as f64;
    let sign = if cfg.objective == Objective::Ssr {
        -1.0
    } else {
        1.0
    };
    // At step 0 the regulariser ramp is 0, so the loss is the score term alone.
    sign * score
}

#[test]
fn the_loss_gradient_matches_finite_differences_with_fixed_random_numbers() {
    let gpu = gpu();
    let model = Planted::new(&gpu);
    let weights = model.host_weights();
    let (x, host) = image(&gpu);
    for objective in [Objective::Ssr, Objective::Sdr] {
        let cfg = ExplainConfig {
            temperature: 0.5,
            ..config(Method::Fido, objective, InfillKind::Mean)
        };
        let m = cfg.mask_size;
        let theta: Vec<f32> = (0..m * m).map(|i| ((i * 37) % 11) as f32 * 0.2 - 1.0).collect();
        let mut e = Explainer::new(&model, &x, Some(0), Normalize::IMAGENET, cfg.clone(), None).unwrap();
        e.set_mask(&theta).unwrap();
        let (loss, grad) = e.loss_and_gradient().unwrap();
        let grad = grad.to_vec().unwrap();
        let theta64: Vec<f64> = theta.iter().map(|&v| v as f64).collect();
        let want_loss = reference_loss(&theta64, &host, &weights, &cfg);
        assert!(
            (loss as f64 - want_loss).abs() < 1e-4 * (1.0 + want_loss.abs()),
            "{objective}: loss {loss} vs {want_loss}"
        );
        let want = common::fd_gradient(
            |t| vec![reference_loss(t, &host, &weights, &cfg)],
            &theta,
            &[1.0],
            1e-6,
        );
        let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        for (i, (&g, &w)) in grad.iter().zip(&want).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 1e-3 * scale + 1e-3 * w.abs(),
                "{objective} θ[{i}]: gpu {g} vs finite differences {w}"
            );
        }
    }
}

#[test]
fn bad_settings_are_clear_errors() {
    let gpu = gpu();
    let model = Planted::new(&gpu);
    let (x, _) = image(&gpu);
    let base = config(Method::Fido, Objective::Ssr, InfillKind::Mean);
    let cases = [
        (
            ExplainConfig {
                lambda: -1.0,
                ..base.clone()
            },
            "--lambda",
        ),
        (
            ExplainConfig {
                steps: 0,
                ..base.clone()
            },
            "--steps",
        ),
        (
            ExplainConfig {
                batch: 0,
                ..base.clone()
            },
            "--batch",
        ),
        (
            ExplainConfig {
                temperature: 0.0,
                ..base.clone()
            },
            "--temperature",
        ),
        (
            ExplainConfig {
                mask_size: 64,
                ..base.clone()
            },
            "--mask-size",
        ),
        (
            ExplainConfig {
                infill: InfillKind::Ca,
                ..base.clone()
            },
            "--infill-weights",
        ),
        (
            ExplainConfig {
                infill: InfillKind::Local,
                ..ExplainConfig::paper(Method::Bbmp)
            },
            "BBMP",
        ),
    ];
    for (cfg, needle) in cases {
        let err = Explainer::new(&model, &x, Some(0), Normalize::IMAGENET, cfg, None)
            .err()
            .expect("an error")
            .to_string();
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    }
    let err = Explainer::new(&model, &x, Some(2), Normalize::IMAGENET, base, None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--label 2 is out of range"), "{err}");
}

/// The builder starts from the paper's settings, applies what is set, and checks the result
/// once, with the same one-line errors as the command line.
#[test]
fn the_config_builder_applies_choices_and_overrides_and_checks_them() {
    use fido::explain::ExplainOverrides;
    let fido = ExplainConfig::builder(Method::Fido).build().unwrap();
    assert_eq!(fido, ExplainConfig::paper(Method::Fido));
    assert_eq!(fido.infill, InfillKind::Local);
    let bbmp = ExplainConfig::builder(Method::Bbmp)
        .objective(Objective::Sdr)
        .infill(None)
        .overrides(&ExplainOverrides {
            steps: Some(7),
            batch: Some(4),
            seed: Some(3),
            ..Default::default()
        })
        .build()
        .unwrap();
    assert_eq!(
        (
            bbmp.objective,
            bbmp.infill,
            bbmp.steps,
            bbmp.batch,
            bbmp.seed,
            bbmp.lambda
        ),
        (Objective::Sdr, InfillKind::Blur, 7, 1, 3, 5e-3),
        "BBMP keeps its one image"
    );
    let refused = |builder: fido::explain::ExplainConfigBuilder, needle: &str| {
        let err = builder.build().unwrap_err().to_string();
        assert!(
            err.contains(needle) && !err.contains('\n'),
            "expected `{needle}` in: {err}"
        );
    };
    refused(
        ExplainConfig::builder(Method::Fido)
            .infill(InfillKind::Ca)
            .ca_weights(false),
        "--infill ca needs --infill-weights CA.safetensors",
    );
    refused(
        ExplainConfig::builder(Method::Bbmp).overrides(&ExplainOverrides {
            batch: Some(0),
            ..Default::default()
        }),
        "--batch must be at least 1",
    );
    refused(
        ExplainConfig::builder(Method::Fido).overrides(&ExplainOverrides {
            lambda: Some(-1.0),
            ..Default::default()
        }),
        "--lambda",
    );
    refused(
        ExplainConfig::builder(Method::Bbmp).infill(InfillKind::Local),
        "BBMP uses a fixed reference",
    );
    assert!(ExplainConfig::builder(Method::Fido)
        .infill(InfillKind::Ca)
        .ca_weights(true)
        .build()
        .is_ok());
}

#[test]
fn infillers_match_their_definitions() {
    let gpu = gpu();
    let (x, host) = image(&gpu);
    let plane = SIDE * SIDE;
    // Keep a stripe of columns and a 3×3 patch; the rest is dropped. Row 31 keeps nothing
    // within reach of the far corner, exercising the "no pixel kept" case.
    let keep: Vec<f32> = (0..plane)
        .map(|i| {
            if i % SIDE < 4 || (i / SIDE < 3 && (10..13).contains(&(i % SIDE))) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let hard = Tensor::from_slice(&gpu, &[1, 1, SIDE, SIDE], &keep).unwrap();
    let mut local = infill::heuristic(InfillKind::Local, &x, Normalize::IMAGENET).unwrap();
    let got = local.fill(&hard, 0).unwrap().to_vec().unwrap();
    for c in 0..3 {
        for y in 0..SIDE {
            for xx in 0..SIDE {
                let (mut sum, mut count) = (0.0f64, 0.0f64);
                for dy in -7i64..=7 {
                    for dx in -7i64..=7 {
                        let (yy, xc) = (y as i64 + dy, xx as i64 + dx);
                        if (0..SIDE as i64).contains(&yy) && (0..SIDE as i64).contains(&xc) {
                            let i = yy as usize * SIDE + xc as usize;
                            sum += keep[i] as f64 * host[c * plane + i] as f64;
                            count += keep[i] as f64;
                        }
                    }
                }
                let want = if count > 0.0 { sum / count } else { 0.0 };
                let g = got[c * plane + y * SIDE + xx] as f64;
                assert!((g - want).abs() < 1e-5, "local c{c} ({y},{xx}): {g} vs {want}");
            }
        }
    }
    let mut mean = infill::heuristic(InfillKind::Mean, &x, Normalize::IMAGENET).unwrap();
    assert!(
        mean.fill(&hard, 0)
            .unwrap()
            .to_vec()
            .unwrap()
            .iter()
            .all(|v| v.abs() < 1e-6),
        "mean colour is 0 after normalisation"
    );
    let mut blur = infill::heuristic(InfillKind::Blur, &x, Normalize::IMAGENET).unwrap();
    let blurred = blur.fill(&hard, 0).unwrap().to_vec().unwrap();
    let want = fido::ops::filter::reference::gaussian_blur(
        &host.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        3,
        SIDE,
        SIDE,
        10.0,
    );
    for (g, w) in blurred.iter().zip(&want) {
        assert!((*g as f64 - w).abs() < 1e-5, "blur {g} vs {w}");
    }
}

#[test]
fn random_infill_has_the_stated_colour_and_noise_statistics() {
    let gpu = gpu();
    let side = 64;
    let x = Tensor::zeros(&gpu, &[1, 3, side, side]).unwrap();
    let ones = Tensor::full(&gpu, &[64, 1, side, side], 1.0).unwrap();
    let norm = Normalize::IMAGENET;
    let mut random = infill::heuristic(InfillKind::Random, &x, norm).unwrap();
    let out = random.fill(&ones, 9).unwrap().to_vec().unwrap();
    let plane = side * side;
    let (mut colour_means, mut within_var) = (vec![], 0.0f64);
    for s in 0..64 {
        for c in 0..3 {
            let pixels: Vec<f64> = out[(s * 3 + c) * plane..(s * 3 + c + 1) * plane]
                .iter()
                .map(|&v| norm.invert(c, v) as f64)
                .collect();
            assert!(
                pixels.iter().all(|v| (-1e-5..=1.0 + 1e-5).contains(v)),
                "clamped to [0,1]"
            );
            let mean = pixels.iter().sum::<f64>() / plane as f64;
            colour_means.push(mean);
            // Away from the clamp the noise is N(0, 0.2): use samples whose colour is mid-range.
            if (0.35..0.65).contains(&mean) {
                within_var =
                    within_var.max(pixels.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / plane as f64);
            }
        }
    }
    // Colours are uniform on [0,1]: mean 0.5, sd 0.289 over 192 draws → standard error 0.021.
    let overall = colour_means.iter().sum::<f64>() / colour_means.len() as f64;
    assert!((overall - 0.5).abs() < 0.1, "colour mean {overall}");
    let spread = colour_means.iter().map(|m| (m - overall).powi(2)).sum::<f64>() / colour_means.len() as f64;
    assert!(
        (spread.sqrt() - 0.289).abs() < 0.08,
        "colour sd {}",
        spread.sqrt()
    );
    assert!(within_var > 0.0, "some mid-range sample exists");
    assert!(
        (within_var.sqrt() - 0.2).abs() < 0.03,
        "noise sd {}",
        within_var.sqrt()
    );
    // Resampled every step.
    let again = random.fill(&ones, 10).unwrap().to_vec().unwrap();
    assert_ne!(out, again);
}

#[test]
fn a_profiled_step_reports_each_phase_and_matches_a_plain_step() {
    let gpu = gpu();
    let model = Planted::new(&gpu);
    let (x, _) = image(&gpu);
    let cfg = config(Method::Fido, Objective::Ssr, InfillKind::Blur);
    let mut plain = Explainer::new(&model, &x, Some(0), Normalize::IMAGENET, cfg.clone(), None).unwrap();
    let mut profiled = Explainer::new(&model, &x, Some(0), Normalize::IMAGENET, cfg, None).unwrap();
    for _ in 0..3 {
        plain.step().unwrap();
        let p = profiled.step_profiled().unwrap();
        for ms in [p.sample_and_mix, p.forward, p.backward, p.adam] {
            assert!(ms.is_finite() && ms >= 0.0, "{p:?}");
        }
    }
    assert_eq!(plain.mask().to_vec().unwrap(), profiled.mask().to_vec().unwrap());
}

/// The planted classifier squared: logits `[z0², 0]`, so the log-odds are `s = z0²` with
/// `z0 = Σ w·x`. Along the path α·x, `d s/dα = 2α·z0(x)²` is linear in α, so the midpoint
/// rule integrates it exactly for any number of points: integrated gradients must sum to
/// `s(x) − s(0) = z0(x)²` up to f32 rounding, and every path point must be counted.
#[test]
fn gradient_baselines_are_exact_on_a_quadratic_classifier() {
    use fido::explain::ExplainOverrides;
    let gpu = gpu();
    let planted = Planted::new(&gpu);
    let squared = |tape: &Tape, x: &Var| -> Result<Var> {
        let z = planted.forward(tape, x)?;
        z.mul(&z)
    };
    let (x, xv) = image(&gpu);
    let w = planted.host_weights();
    let z0: f64 = (0..xv.len()).map(|i| xv[i] as f64 * w[2 * i] as f64).sum();
    assert!((z0 - 6.0).abs() < 1e-4, "{z0}");

    // 5 points in chunks of 2: three forward passes, one of them short.
    let ig = ExplainConfig::builder(Method::IntegratedGradients)
        .overrides(&ExplainOverrides {
            steps: Some(5),
            batch: Some(2),
            ..Default::default()
        })
        .build()
        .unwrap();
    assert_eq!((ig.steps, ig.batch, ig.infill), (5, 2, InfillKind::Blur));
    let mut explainer = Explainer::new(&squared, &x, Some(0), Normalize::IMAGENET, ig, None).unwrap();
    let mut seen = Vec::new();
    explainer.run(1, |p| seen.push(p.step)).unwrap();
    assert_eq!(seen, [2, 4, 5]);
    let e = explainer.finish().unwrap();
    let attribution = e.gradient.clone().unwrap();
    assert!(e.mask_logits.is_empty());
    let total: f64 = attribution.iter().map(|&a| a as f64).sum();
    // f32 sums of ~500 terms of size ~0.1: rounding well below 1e-3 of 36.
    assert!(
        (total - z0 * z0).abs() < 1e-3 * z0 * z0,
        "Σ {total} vs {}",
        z0 * z0
    );
    // Per element, x·mean(2α·z0·w) = x·w·z0.
    for i in 0..xv.len() {
        let want = xv[i] as f64 * w[2 * i] as f64 * z0;
        assert!((attribution[i] as f64 - want).abs() < 1e-4, "element {i}");
    }

    // Vanilla gradients: ∂s/∂x = 2·z0·w, so the map is 1 on the region and 0 elsewhere.
    let vanilla = ExplainConfig::builder(Method::Gradient)
        .overrides(&ExplainOverrides {
            steps: Some(50),
            ..Default::default()
        })
        .build()
        .unwrap();
    assert_eq!((vanilla.steps, vanilla.batch), (1, 1));
    let mut explainer = Explainer::new(&squared, &x, Some(0), Normalize::IMAGENET, vanilla, None).unwrap();
    explainer.run(0, |_| {}).unwrap();
    let e = explainer.finish().unwrap();
    let gradient = e.gradient.unwrap();
    for i in 0..xv.len() {
        let want = 2.0 * z0 * w[2 * i] as f64;
        assert!(
            (gradient[i] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()),
            "element {i}"
        );
    }
    for (p, &v) in e.importance.iter().enumerate() {
        let want = if in_region(p / SIDE, p % SIDE) { 1.0 } else { 0.0 };
        assert!((v - want).abs() < 1e-5, "pixel {p}: {v}");
    }
    assert_eq!("ig".parse::<Method>().unwrap(), Method::IntegratedGradients);
    assert_eq!(Method::IntegratedGradients.to_string(), "integrated-gradients");
}

mod tiny_onnx;

/// Explain a fixed input with the tiny ONNX classifier (a convolution, tanh and a dense
/// layer, so the convolution, matmul, reduction and RNG kernels of the profile all take
/// part) on `gpu`, and return the importance and the mask logits.
fn tiny_explanation(gpu: &Gpu, model_path: &std::path::Path, seed: u64) -> (Vec<f32>, Vec<f32>) {
    use fido::models::{LoadedModel, ModelSpec, PreprocessOptions};
    let spec: ModelSpec = model_path.to_str().unwrap().parse().unwrap();
    let loaded = LoadedModel::open(gpu, &spec, None, &PreprocessOptions::default()).unwrap();
    let side = tiny_onnx::SIDE;
    let values: Vec<f32> = (0..3 * side * side)
        .map(|i| ((i * 37 % 23) as f32 / 11.0) - 1.0)
        .collect();
    let x = Tensor::from_slice(gpu, &[1, 3, side, side], &values).unwrap();
    let cfg = ExplainConfig {
        steps: 12,
        batch: 4,
        mask_size: 3,
        seed,
        infill: InfillKind::Random,
        ..ExplainConfig::paper(Method::Fido)
    };
    let mut e = Explainer::new(&loaded.classifier, &x, None, loaded.norm, cfg, None).unwrap();
    e.run(0, |_| {}).unwrap();
    let r = e.finish().unwrap();
    (r.importance, r.mask_logits)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Same seed, same adapter, same kernel profile: the same map to the last bit, on a
/// device that has run other work since and on a fresh device. Under both profiles.
#[test]
fn the_same_seed_adapter_and_profile_give_bit_identical_maps() {
    let dir = std::env::temp_dir().join(format!("fido-explain-bits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let model = tiny_onnx::write(&dir, "tiny.onnx", tiny_onnx::Shape::default());
    common::for_each_profile(|gpu| {
        let (importance, logits) = tiny_explanation(gpu, &model, 5);
        assert!(!logits.is_empty() && importance.iter().all(|v| v.is_finite()));
        let (again, again_logits) = tiny_explanation(gpu, &model, 5);
        assert_eq!(bits(&importance), bits(&again), "importance, same device");
        assert_eq!(bits(&logits), bits(&again_logits), "mask logits, same device");
        let fresh = common::gpu();
        fresh.set_kernel_profile(gpu.kernel_profile());
        let (third, third_logits) = tiny_explanation(&fresh, &model, 5);
        assert_eq!(bits(&importance), bits(&third), "importance, fresh device");
        assert_eq!(bits(&logits), bits(&third_logits), "mask logits, fresh device");
        // The seed does matter, so the comparison above is not vacuous.
        assert_ne!(bits(&logits), bits(&tiny_explanation(gpu, &model, 6).1));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// A device lost in the middle of an explanation ends it with `DeviceLost`, in one line
/// that says what to do, and no panic: what `fido explain` prints as its error.
#[test]
fn a_device_lost_mid_explanation_is_a_one_line_error() {
    let gpu = gpu();
    let model = Planted::new(&gpu);
    let (x, _) = image(&gpu);
    let cfg = config(Method::Fido, Objective::Ssr, InfillKind::Mean);
    let mut e = Explainer::new(&model, &x, Some(0), Normalize::IMAGENET, cfg, None).unwrap();
    e.step().unwrap();
    gpu.device().destroy();
    let _ = gpu.device().poll(wgpu::PollType::wait_indefinitely());
    let err = e
        .run(5, |_| {})
        .and_then(|()| e.finish().map(|_| ()))
        .unwrap_err();
    assert!(matches!(err, fido::Error::DeviceLost { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("device was lost") && !text.contains('\n'), "{text}");
}
