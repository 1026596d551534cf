//! Evaluation metrics on cases with known answers, and the driver (resume, failures,
//! shards and their merge, reused maps) on a planted classifier: it scores only the mean of
//! a rectangle of the image, so removing that rectangle's pixels is all that matters.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::gpu;
use fido::eval::metrics::{self, SourceBox};
use fido::eval::{self, EvalConfig, EvalJob, EvalOptions, MetricSettings, Shard};
use fido::explain::infill::InfillKind;
use fido::explain::Model;
use fido::imageio::{Normalize, Resize, SourceToModel};
use fido::{Gpu, Result, Tape, Tensor, Var};
use serde_json::Value;

const SIDE: usize = 32;
/// The planted region in model pixels: rows 8..20, columns 12..26.
const REGION: (usize, usize, usize, usize) = (8, 20, 12, 26);
/// Source images are twice the model's side, so boxes must be mapped.
const SOURCE_SCALE: usize = 2;

fn in_region(y: usize, x: usize) -> bool {
    (REGION.0..REGION.1).contains(&y) && (REGION.2..REGION.3).contains(&x)
}

fn region_pixels() -> usize {
    (REGION.1 - REGION.0) * (REGION.3 - REGION.2)
}

/// The region as a box in source pixels.
fn region_box() -> SourceBox {
    let s = SOURCE_SCALE as f64;
    [
        REGION.2 as f64 * s,
        REGION.0 as f64 * s,
        REGION.3 as f64 * s,
        REGION.1 as f64 * s,
    ]
}

/// Two classes: logit 0 is 4 × the mean of all channels over the region, logit 1 is 0.
struct Planted {
    weights: Tensor,
}

impl Planted {
    fn new(gpu: &Gpu) -> Planted {
        let area = (region_pixels() * 3) as f32;
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
}

impl Model for Planted {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let n = x.shape()[0];
        x.reshape(&[n, 3 * SIDE * SIDE])?
            .matmul(&tape.constant(self.weights.clone()), false, false)
    }
}

fn region_map() -> Vec<f32> {
    (0..SIDE * SIDE)
        .map(|i| if in_region(i / SIDE, i % SIDE) { 1.0 } else { 0.0 })
        .collect()
}

fn identity_map() -> SourceToModel {
    SourceToModel {
        scale_x: 1.0,
        scale_y: 1.0,
        offset_x: 0.0,
        offset_y: 0.0,
    }
}

#[test]
fn a_map_equal_to_the_box_has_no_off_box_pixels_and_uniform_maps_give_their_share() {
    let half = SourceToModel {
        scale_x: 0.5,
        scale_y: 0.5,
        offset_x: 0.0,
        offset_y: 0.0,
    };
    let inside = metrics::box_union_mask(&[region_box()], &half, SIDE, SIDE);
    assert_eq!(inside.iter().filter(|&&b| b).count(), region_pixels());
    assert_eq!(metrics::off_box_ratio(&region_map(), &inside), Some(0.0));
    // Everything important: every outside pixel is marked. Nothing important: none is.
    assert_eq!(
        metrics::off_box_ratio(&vec![0.7; SIDE * SIDE], &inside),
        Some(1.0)
    );
    assert_eq!(
        metrics::off_box_ratio(&vec![0.3; SIDE * SIDE], &inside),
        Some(0.0)
    );
    // Alternate columns important: the ratio is the share of outside pixels in those columns.
    let stripes: Vec<f32> = (0..SIDE * SIDE)
        .map(|i| if (i % SIDE) % 2 == 0 { 0.9 } else { 0.1 })
        .collect();
    let outside_even = (0..SIDE * SIDE)
        .filter(|&i| !inside[i] && (i % SIDE) % 2 == 0)
        .count();
    let outside = inside.iter().filter(|&&b| !b).count();
    let expected = outside_even as f64 / outside as f64;
    assert_eq!(metrics::off_box_ratio(&stripes, &inside), Some(expected));
    // Boxes covering everything leave nothing outside to judge.
    let all = metrics::box_union_mask(&[[-10.0, -10.0, 500.0, 500.0]], &half, SIDE, SIDE);
    assert!(all.iter().all(|&b| b));
    assert_eq!(metrics::off_box_ratio(&region_map(), &all), None);
}

#[test]
fn boxes_are_mapped_clipped_and_united() {
    let map = SourceToModel {
        scale_x: 0.5,
        scale_y: 0.25,
        offset_x: -2.0,
        offset_y: 1.0,
    };
    let boxes = [[0.0, 0.0, 8.0, 8.0], [4.0, 0.0, 40.0, 4.0]];
    let inside = metrics::box_union_mask(&boxes, &map, 6, 10);
    for y in 0..6 {
        for x in 0..10 {
            let (cx, cy) = (x as f64 + 0.5, y as f64 + 0.5);
            // Model-space boxes: x in [−2, 2) × y in [1, 3), and x in [0, 18) × y in [1, 2).
            let expected = ((-2.0..2.0).contains(&cx) && (1.0..3.0).contains(&cy))
                || ((0.0..18.0).contains(&cx) && (1.0..2.0).contains(&cy));
            assert_eq!(inside[y * 10 + x], expected, "pixel ({y}, {x})");
        }
    }
    let none = metrics::box_union_mask(&[], &identity_map(), 4, 4);
    assert!(none.iter().all(|&b| !b));
}

#[test]
fn identical_maps_are_perfectly_stable_and_different_ones_are_not() {
    let a: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 / 10.0).collect();
    assert!((metrics::pearson(&a, &a).unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(metrics::map_iou(&a, &a), 1.0);
    let inverted: Vec<f32> = a.iter().map(|v| 1.0 - v).collect();
    assert!((metrics::pearson(&a, &inverted).unwrap() + 1.0).abs() < 1e-12);
    assert_eq!(metrics::map_iou(&a, &inverted), 0.0);
    assert_eq!(metrics::pearson(&a, &vec![0.5; 100]), None);
    // Two empty MAP masks agree.
    assert_eq!(metrics::map_iou(&[0.1; 10], &[0.2; 10]), 1.0);
}

#[test]
fn removal_ranking_masks_and_saliency_formula() {
    let importance = [0.2, 0.9, 0.5, 0.9, 0.1];
    assert_eq!(metrics::removal_order(&importance), vec![1, 3, 2, 0, 4]);
    let masks = metrics::removal_keep_masks(&importance, &[0.0, 0.4, 1.0]);
    assert_eq!(
        masks,
        vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
    let drops = metrics::normalised_drops(3.0, &[2.0, 0.5, -1.0], -1.0).unwrap();
    assert_eq!(drops, vec![0.25, 0.625, 1.0]);
    assert_eq!(
        metrics::smallest_fraction_reaching(&[0.1, 0.2, 0.3], &drops, 0.5),
        Some(0.2)
    );
    assert_eq!(metrics::normalised_drops(1.0, &[1.0], 1.0), None);
    // Small crops are floored at 5% of the image.
    let p: f64 = 0.8;
    assert!((metrics::saliency_metric(0.01, p) - (0.05f64.ln() - p.ln())).abs() < 1e-12);
    assert!((metrics::saliency_metric(0.5, p) - (0.5f64.ln() - p.ln())).abs() < 1e-12);
    assert_eq!(metrics::map_bounding_box(&region_map(), SIDE, SIDE), Some(REGION));
    assert_eq!(metrics::map_bounding_box(&[0.0; 16], 4, 4), None);
}

/// Bright in the region (evidence for class 0), textured elsewhere, as CHW values.
fn planted_input() -> Vec<f32> {
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
    v
}

#[test]
fn the_removal_curve_of_the_planted_classifier_is_monotone_and_exact() {
    let gpu = gpu();
    let model = Planted::new(&gpu);
    let x = Tensor::from_slice(&gpu, &[1, 3, SIDE, SIDE], &planted_input()).unwrap();
    let fractions: Vec<f64> = (1..=12).map(|i| i as f64 * 0.02).collect();
    // The Mean in-filler puts 0 in normalised space, so each removed region pixel lowers the
    // log-odds (logit 0 − logit 1) by the same amount: the normalised drop is the share of
    // the region removed, reaching 1 once the whole region is gone.
    let curve = metrics::removal_curve(
        &model,
        &x,
        Normalize::IMAGENET,
        InfillKind::Mean.into(),
        &region_map(),
        0,
        &fractions,
        7,
        5,
    )
    .unwrap();
    assert!(
        (curve.score_full - 4.0 * 1.5).abs() < 1e-4,
        "{}",
        curve.score_full
    );
    assert!(curve.score_all_removed.abs() < 1e-4);
    let drops = curve.drops.clone().unwrap();
    let n = SIDE * SIDE;
    for (k, (&f, &d)) in fractions.iter().zip(&drops).enumerate() {
        let expected = metrics::removed_count(f, n).min(region_pixels()) as f64 / region_pixels() as f64;
        // f32 sums of a few hundred terms of size ~1: errors far below 1e-4.
        assert!(
            (d - expected).abs() < 1e-4,
            "f {f}: drop {d}, expected {expected}"
        );
        if k > 0 {
            assert!(d >= drops[k - 1] - 1e-6, "not monotone at f {f}");
        }
    }
    let half = fractions
        .iter()
        .copied()
        .find(|&f| metrics::removed_count(f, n) * 2 >= region_pixels());
    assert_eq!(curve.fraction_reaching(0.5), half);
    // A map that ranks the region last needs far more removal to reach the same drop.
    let inverted: Vec<f32> = region_map().iter().map(|v| 1.0 - v).collect();
    let worse = metrics::removal_curve(
        &model,
        &x,
        Normalize::IMAGENET,
        InfillKind::Mean.into(),
        &inverted,
        0,
        &fractions,
        7,
        5,
    )
    .unwrap();
    assert!(worse.drops.unwrap().iter().all(|&d| d.abs() < 1e-4));

    // In-filler quality: Mean destroys the evidence in proportion to the drop rate, so the
    // true-class probability falls as more pixels are dropped.
    let q = metrics::infill_quality(
        &model,
        &x,
        Normalize::IMAGENET,
        InfillKind::Mean.into(),
        0,
        &[0.2, 0.8],
        4,
        3,
        4,
    )
    .unwrap();
    assert!(q[0] > q[1] && q[1] > 0.5, "{q:?}");
    // The tight crop of the region keeps the class: crop prob > ½ and area 16%.
    let (value, p) = metrics::saliency_of_map(&model, &x, &planted_input(), &region_map(), 0)
        .unwrap()
        .unwrap();
    let area = region_pixels() as f64 / n as f64;
    assert!(p > 0.5);
    assert!((value - metrics::saliency_metric(area, p)).abs() < 1e-12);
}

/// Write the planted pictures at twice the model size plus a manifest; returns the jobs.
/// Image `b` is labelled 1, which the planted classifier never predicts; `c` is not an
/// image at all.
fn write_dataset(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let side = (SIDE * SOURCE_SCALE) as u32;
    for (name, brightness) in [("a.png", 255u8), ("b.png", 230), ("d.png", 200)] {
        let img = image::RgbImage::from_fn(side, side, |x, y| {
            let (mx, my) = (x as usize / SOURCE_SCALE, y as usize / SOURCE_SCALE);
            if in_region(my, mx) {
                image::Rgb([brightness; 3])
            } else {
                let t = ((mx * 7 + my * 3) % 5) as u8 * 30;
                image::Rgb([t, 100, 200 - t])
            }
        });
        img.save(dir.join("images").join(name)).unwrap();
    }
    std::fs::write(dir.join("images").join("c.png"), b"not an image").unwrap();
    let b = region_box();
    let boxes = format!("{} {} {} {}", b[0], b[1], b[2], b[3]);
    let manifest = dir.join("manifest.csv");
    std::fs::write(
        &manifest,
        format!(
            "file,label,wnid,class_name,width,height,boxes_xyxy\n\
             d.png,0,n0,planted,64,64,{boxes}\n\
             a.png,0,n0,planted,64,64,{boxes};0 0 4 4\n\
             b.png,1,n1,other,64,64,{boxes}\n\
             c.png,0,n0,planted,64,64,\n"
        ),
    )
    .unwrap();
    manifest
}

fn options(jobs: Vec<EvalJob>, out: PathBuf) -> EvalOptions {
    let configs = ["fido:mean", "fido-sdr:local"]
        .iter()
        .map(|s| {
            let mut c = EvalConfig::parse(s).unwrap();
            c.explain.steps = 8;
            c.explain.batch = 2;
            c.explain.mask_size = 8;
            c
        })
        .collect();
    EvalOptions {
        model_name: "planted".into(),
        resize: Resize::Stretch { size: SIDE as u32 },
        norm: Normalize::IMAGENET,
        metrics: MetricSettings {
            removal_fractions: vec![0.1, 0.2, 0.4, 0.7, 1.0],
            removal_infill: InfillKind::Mean,
            infill_quality: vec![InfillKind::Mean, InfillKind::Local],
            infill_drop_rates: vec![0.5],
            infill_samples: 2,
            ..MetricSettings::default()
        },
        progress: false,
        ..EvalOptions::new(jobs, configs, out)
    }
}

/// Records with the wall-clock fields removed, for comparing runs.
fn comparable_records(out: &Path) -> Vec<Value> {
    let mut records = fido::eval::report::load_records(out).unwrap();
    for r in &mut records {
        if let Some(configs) = r["configs"].as_object_mut() {
            for entry in configs.values_mut() {
                entry.as_object_mut().unwrap().remove("seconds");
            }
        }
    }
    records
}

#[test]
fn configurations_parse_and_shards_partition_the_jobs() {
    let c = EvalConfig::parse("fido-sdr:local").unwrap();
    assert_eq!(c.name, "fido-sdr:local");
    assert_eq!(c.explain.objective, fido::explain::Objective::Sdr);
    assert_eq!(EvalConfig::parse("bbmp:blur").unwrap().explain.lambda, 5e-3);
    assert_eq!(EvalConfig::parse("fido-ssr:blur").unwrap().name, "fido:blur");
    for bad in ["fido", "fido:bogus", "nope:local", "bbmp:local", "fido-xyz:mean"] {
        assert!(EvalConfig::parse(bad).is_err(), "{bad} should not parse");
    }
    assert_eq!(
        eval::parse_infill_list("mean, local").unwrap(),
        vec![InfillKind::Mean, InfillKind::Local]
    );
    assert_eq!(eval::parse_infill_list("ca").unwrap(), vec![InfillKind::Ca]);
    assert!(eval::parse_infill_list("mean,bogus").is_err());
    assert_eq!(
        EvalConfig::parse("fido:ca").unwrap().explain.infill,
        InfillKind::Ca
    );
    assert_eq!(eval::parse_fractions("0.25,0.5").unwrap(), vec![0.25, 0.5]);
    assert!(eval::parse_fractions("1.5").is_err());
    let grid = eval::removal_grid(0.25).unwrap();
    assert_eq!(grid, vec![0.25, 0.5, 0.75, 1.0]);
    let (name, dir) = eval::parse_reuse("fido-ssr:local=runs/a").unwrap();
    assert_eq!((name.as_str(), dir), ("fido:local", PathBuf::from("runs/a")));
    let bbmp: eval::ConfigSpec = "bbmp:blur".parse().unwrap();
    let overrides = eval::ExplainOverrides {
        steps: Some(5),
        ..Default::default()
    };
    let overridden = bbmp.build(&overrides).unwrap();
    assert_eq!(overridden.explain.steps, 5);
    assert!(bbmp
        .build(&eval::ExplainOverrides {
            batch: Some(0),
            ..Default::default()
        })
        .is_err());
    let items: Vec<usize> = (0..11).collect();
    let mut seen = vec![];
    for k in 0..3 {
        let shard: Shard = format!("{k}/3").parse().unwrap();
        seen.extend(shard.slice(&items));
    }
    seen.sort();
    assert_eq!(seen, items);
    assert!("3/3".parse::<Shard>().is_err());
    assert!("1/0".parse::<Shard>().is_err());
}

#[test]
fn the_driver_resumes_isolates_failures_and_its_shards_merge_into_the_unsharded_run() {
    let gpu = gpu();
    let model = Planted::new(&gpu);
    let root = std::env::temp_dir().join(format!("fido-eval-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let manifest = write_dataset(&root.join("data"));
    let jobs = eval::read_manifest(&manifest).unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["a.png", "b.png", "c.png", "d.png"]
    );
    assert_eq!(jobs[0].boxes.len(), 2);
    assert!(jobs[2].boxes.is_empty());

    let whole = root.join("whole");
    let outcome = eval::run_eval(&gpu, &model, &options(jobs.clone(), whole.clone())).unwrap();
    assert_eq!(outcome.images, 4);
    assert_eq!(outcome.scored, 2, "{outcome:?}");
    assert_eq!(outcome.misclassified, 1);
    assert_eq!(outcome.failures, 1, "the undecodable image fails alone");
    assert_eq!(outcome.resumed, 0);
    let records = comparable_records(&whole);
    let failed = records.iter().find(|r| r["id"] == "c.png").unwrap();
    assert_eq!(failed["status"], "error");
    assert!(failed["error"].as_str().unwrap().contains("c.png"));
    for r in records.iter().filter(|r| r["status"] == "ok") {
        for config in ["fido:mean", "fido-sdr:local"] {
            let e = &r["configs"][config];
            assert_eq!(e["status"], "ok", "{config}: {e}");
            let off_box = e["off_box_ratio"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&off_box));
            assert_eq!(e["removal_drops"].as_array().unwrap().len(), 5);
        }
        assert_eq!(r["infill_quality"]["local"].as_array().unwrap().len(), 1);
    }
    for file in [
        "summary.md",
        "summary.json",
        "per_image.csv",
        "per_image.json",
        "report.html",
    ] {
        assert!(whole.join(file).exists(), "{file}");
    }
    assert!(whole.join("plots/removal_curves.png").exists());
    assert!(whole.join("plots/box_off_box_ratio.png").exists());
    assert!(whole.join("plots/examples.png").exists());
    assert!(whole.join("plots/infill_quality.png").exists());
    // Every plot decodes as a PNG of its size with text and lines on it, not a blank page.
    for entry in std::fs::read_dir(whole.join("plots")).unwrap() {
        let path = entry.unwrap().path();
        let plot = image::open(&path).unwrap().to_rgb8();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name != "examples.png" {
            assert_eq!(plot.dimensions(), (760, 460), "{name}");
        }
        let dark = plot.pixels().filter(|p| p.0.iter().all(|&v| v < 80)).count();
        assert!(dark > 100, "{name}: {dark} dark pixels");
    }
    assert!(whole.join("maps/fido_mean/a/saliency.safetensors").exists());
    let summary = std::fs::read_to_string(whole.join("summary.md")).unwrap();
    assert!(summary.contains("| fido:mean | off_box_ratio | 2 |"), "{summary}");

    // A second run finds everything finished and changes no result; the failed image is
    // retried (and fails again).
    let before = std::fs::read_to_string(whole.join("results/a.png.json")).unwrap();
    let again = eval::run_eval(&gpu, &model, &options(jobs.clone(), whole.clone())).unwrap();
    assert_eq!(again.resumed, 2 * 2 + 2, "{again:?}");
    assert_eq!(again.failures, 1);
    let after = std::fs::read_to_string(whole.join("results/a.png.json")).unwrap();
    assert_eq!(before, after);
    // Resuming with other settings for a configuration would mix results: refused.
    let mut changed = options(jobs.clone(), whole.clone());
    changed.configs[0].explain.steps += 1;
    let refused = eval::run_eval(&gpu, &model, &changed).unwrap_err();
    assert!(refused.to_string().contains("other settings"), "{refused}");

    // Two shards, merged, equal the unsharded run.
    let shard_dirs: Vec<PathBuf> = (0..2).map(|k| root.join(format!("shard-{k}"))).collect();
    for (k, dir) in shard_dirs.iter().enumerate() {
        let mut o = options(jobs.clone(), dir.clone());
        o.shard = Shard::new(k, 2).unwrap();
        let part = eval::run_eval(&gpu, &model, &o).unwrap();
        assert_eq!(part.images, 2);
    }
    let merged = root.join("merged");
    let m = eval::merge_shards(&shard_dirs, &merged).unwrap();
    assert_eq!((m.images, m.scored, m.misclassified), (4, 2, 1));
    assert_eq!(comparable_records(&merged), records);
    let read = |dir: &Path, f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(read(&merged, "summary.json"), read(&whole, "summary.json"));
    assert_eq!(read(&merged, "summary.md"), read(&whole, "summary.md"));

    // Maps saved by the evaluation are `fido explain` folders, and reusing them gives the
    // same scores without optimising again.
    let reuse = root.join("reuse");
    let mut o = options(jobs, reuse.clone());
    o.reuse = BTreeMap::from([("fido:mean".to_string(), whole.join("maps/fido_mean"))]);
    let r = eval::run_eval(&gpu, &model, &o).unwrap();
    assert_eq!(r.reused, 2);
    let reused = comparable_records(&reuse);
    for (a, b) in reused.iter().zip(&records).filter(|(a, _)| a["status"] == "ok") {
        let (a, b) = (&a["configs"]["fido:mean"], &b["configs"]["fido:mean"]);
        assert_eq!(a["reused"], true);
        assert_eq!(a["off_box_ratio"], b["off_box_ratio"]);
        assert_eq!(a["removal_drops"], b["removal_drops"]);
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// CA configurations, CA removal and CA quality scoring run when a generator is given (here
/// with deterministic random weights at a small side), and are refused, naming what needs
/// it, when none is.
#[test]
fn ca_scoring_runs_with_a_generator_and_is_refused_without_one() {
    use fido::explain::CaSetup;
    use fido::inpaint::{synthetic_values, CaGenerator};
    let gpu = gpu();
    let model = Planted::new(&gpu);
    let root = std::env::temp_dir().join(format!("fido-eval-ca-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let manifest = write_dataset(&root.join("data"));
    let jobs: Vec<EvalJob> = eval::read_manifest(&manifest)
        .unwrap()
        .into_iter()
        .filter(|j| j.id == "a.png")
        .collect();
    let mut config = EvalConfig::parse("fido:ca").unwrap();
    config.explain.steps = 2;
    config.explain.batch = 2;
    config.explain.mask_size = 8;
    let mut options = EvalOptions {
        model_name: "planted".into(),
        resize: Resize::Stretch { size: SIDE as u32 },
        metrics: MetricSettings {
            removal_fractions: vec![0.5, 1.0],
            removal_infill: InfillKind::Ca,
            infill_quality: vec![InfillKind::Ca, InfillKind::Mean],
            infill_drop_rates: vec![0.5],
            infill_samples: 2,
            ..MetricSettings::default()
        },
        progress: false,
        ..EvalOptions::new(jobs, vec![config], root.join("out"))
    };
    let refused = eval::run_eval(&gpu, &model, &options).unwrap_err().to_string();
    for needle in [
        "`fido:ca`",
        "--removal-infill ca",
        "--infill-quality ca",
        "--infill-weights",
    ] {
        assert!(refused.contains(needle), "{needle} missing from: {refused}");
    }

    let generator = CaGenerator::from_fn(&gpu, |name, shape| Ok(synthetic_values(name, shape))).unwrap();
    options.ca = Some(CaSetup {
        generator,
        side: SIDE,
    });
    let outcome = eval::run_eval(&gpu, &model, &options).unwrap();
    assert_eq!((outcome.scored, outcome.failures), (1, 0), "{outcome:?}");
    let records = comparable_records(&root.join("out"));
    let entry = &records[0]["configs"]["fido:ca"];
    assert_eq!(entry["status"], "ok", "{entry}");
    let importance = entry["map_fraction"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&importance));
    // Removing every pixel leaves only the in-painting of an empty keep mask: score that
    // directly through the generator and the classifier.
    let picture = fido::imageio::load_rgb(&root.join("data/images/a.png")).unwrap();
    let prepared = fido::imageio::prepare(&picture, options.resize, &options.norm);
    let x = Tensor::from_slice(&gpu, &[1, 3, SIDE, SIDE], &prepared.chw).unwrap();
    let mut infiller = options.ca.as_ref().unwrap().infiller(&x, options.norm).unwrap();
    use fido::explain::Infiller;
    let nothing_kept = Tensor::from_slice(&gpu, &[1, 1, SIDE, SIDE], &vec![0.0; SIDE * SIDE]).unwrap();
    let filled = infiller.fill(&nothing_kept, 0).unwrap();
    let logits = metrics::logits_rows(&model, &filled, 1).unwrap().remove(0);
    let expected = metrics::log_odds(&logits, 0);
    let got = entry["removal_score_all_removed"].as_f64().unwrap();
    assert!(
        (got - expected).abs() < 1e-4 * (1.0 + expected.abs()),
        "{got} vs {expected}"
    );
    assert!((got - entry["removal_score_full"].as_f64().unwrap()).abs() > 1e-3);
    for filler in ["ca", "mean"] {
        let p = records[0]["infill_quality"][filler][0].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{filler}: {p}");
    }
    // The CA in-filler changes the removed pixels differently from Mean.
    assert_ne!(
        records[0]["infill_quality"]["ca"],
        records[0]["infill_quality"]["mean"]
    );
}

/// Records are written as plain JSON objects with their keys in name order, so files from
/// earlier versions compare equal; damaged records and settings left by a killed or edited
/// run are redone rather than stopping the evaluation, and a merge names the bad file.
#[test]
fn records_keep_their_format_and_damaged_files_are_redone() {
    let root = std::env::temp_dir().join(format!("fido-eval-damage-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut jobs = eval::read_manifest(&write_dataset(&root.join("data"))).unwrap();
    jobs.retain(|j| ["a.png", "c.png"].contains(&j.id.as_str()));
    let (gpu, out) = (gpu(), root.join("out"));
    let model = Planted::new(&gpu);
    let mut o = options(jobs, out.clone());
    o.configs.truncate(1);
    let first = eval::run_eval(&gpu, &model, &o).unwrap();
    assert_eq!((first.scored, first.failures), (1, 1), "{first:?}");
    for id in ["a.png", "c.png"] {
        // As a JSON value the keys sort by name, as records were always written.
        let record = eval::ImageRecord::read(&out.join("results").join(format!("{id}.json"))).unwrap();
        let value = serde_json::to_value(&record).unwrap();
        assert_eq!(
            serde_json::to_string_pretty(&record).unwrap(),
            serde_json::to_string_pretty(&value).unwrap(),
            "{id}"
        );
    }
    let record = out.join("results/a.png.json");
    for damaged in ["[]", "{\"id\": \"a.png\", \"configs\": []}", "{\"trunc"] {
        std::fs::write(&record, damaged).unwrap();
        std::fs::write(out.join("eval.json"), "[1]").unwrap();
        let again = eval::run_eval(&gpu, &model, &o).unwrap();
        assert_eq!(
            (again.scored, again.resumed, again.failures),
            (1, 0, 1),
            "{damaged}: {again:?}"
        );
        let redone: Value = serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
        assert_eq!(redone["configs"]["fido:mean"]["status"], "ok", "{damaged}");
    }
    let bad_shard = root.join("bad-shard");
    std::fs::create_dir_all(bad_shard.join("results")).unwrap();
    std::fs::write(bad_shard.join("eval.json"), "[]").unwrap();
    let err = eval::merge_shards(&[out, bad_shard], &root.join("merged"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad-shard") && err.contains("not a JSON object"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

/// The gradient baselines are configurations like the others: `gradient:-` and `ig:-` (or
/// `integrated-gradients:-`), scored by the same metrics. On the planted (linear)
/// classifier the gradient is the region's weights, so its map is the region exactly: no
/// pixel off the box.
#[test]
fn gradient_baselines_are_evaluated_like_fido() {
    for (spec, name) in [
        ("gradient:-", "gradient:-"),
        ("ig:-", "ig:-"),
        ("integrated-gradients:-", "ig:-"),
        ("ig:blur", "ig:-"),
        ("ig:mean", "ig:mean"),
        ("ig-sdr:-", "ig-sdr:-"),
    ] {
        let c = EvalConfig::parse(spec).unwrap();
        assert_eq!(c.name, name, "{spec}");
        assert!(c.explain.method.is_gradient());
    }
    assert_eq!(EvalConfig::parse("ig:-").unwrap().explain.steps, 32);
    let err = EvalConfig::parse("fido:-").unwrap_err().to_string();
    assert!(err.contains("fido needs an in-filler"), "{err}");

    let gpu = gpu();
    let model = Planted::new(&gpu);
    let dir = std::env::temp_dir().join(format!("fido-eval-{}-gradients", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let jobs = eval::read_manifest(&write_dataset(&dir)).unwrap();
    let configs: Vec<EvalConfig> = ["gradient:-", "ig:-"]
        .iter()
        .map(|s| {
            let mut c = EvalConfig::parse(s).unwrap();
            if c.explain.steps > 1 {
                c.explain.steps = 4;
            }
            c
        })
        .collect();
    let out = dir.join("out");
    let o = EvalOptions {
        configs,
        metrics: MetricSettings {
            infill_quality: Vec::new(),
            ..options(Vec::new(), out.clone()).metrics
        },
        ..options(jobs, out.clone())
    };
    let outcome = eval::run_eval(&gpu, &model, &o).unwrap();
    assert_eq!(outcome.scored, 2, "{outcome:?}");
    let records = fido::eval::report::load_records(&out).unwrap();
    let scored: Vec<&Value> = records.iter().filter(|r| r["status"] == "ok").collect();
    assert_eq!(scored.len(), 2);
    for r in scored {
        for name in ["gradient:-", "ig:-"] {
            let entry = &r["configs"][name];
            assert_eq!(entry["status"], "ok", "{name}: {entry}");
            assert!(entry["removal_drops"].is_array(), "{name}: {entry}");
        }
        // The map is the region: the off-box ratio is 0 and the MAP mask covers the region.
        let gradient = &r["configs"]["gradient:-"];
        assert_eq!(gradient["off_box_ratio"].as_f64(), Some(0.0), "{gradient}");
        let share = region_pixels() as f64 / (SIDE * SIDE) as f64;
        assert!((gradient["map_fraction"].as_f64().unwrap() - share).abs() < 1e-9);
    }
    let report = std::fs::read_to_string(outcome.report).unwrap();
    assert!(report.contains("ig:-") && report.contains("gradient:-"));
}
