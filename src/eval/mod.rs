//! Evaluating saliency methods over a labelled, boxed image set (the paper's Section 4).
//!
//! For every image the classifier gets right and every configuration (`fido:local`,
//! `fido-sdr:local`, `bbmp:blur`, …) the driver computes a map (or reuses one written by
//! `fido explain`) and scores it: off-box ratio, pixel-removal curve, Dabkowski & Gal
//! saliency metric and, optionally, seed stability. Per image it can also measure in-filler
//! quality under random masks.
//!
//! Each image's results go to their own JSON file as soon as they are known, so a run can be
//! stopped and restarted (finished work is skipped), a failing image is recorded without
//! stopping the others, and shards of a job list merge by taking the union of their files.
//!
//! [`config`] holds the settings, [`manifest`] the job list, [`image`] the work on one image,
//! [`record`] the per-image files; the driver is here.

pub mod config;
pub mod image;
pub mod manifest;
pub mod metrics;
pub mod plots;
pub mod record;
pub mod report;
pub mod shard;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use crate::explain::Model;
use crate::{Error, Gpu, IoContext, Result};

pub use crate::explain::ExplainOverrides;
pub use config::{
    parse_fractions, parse_infill_list, parse_reuse, removal_grid, ConfigSpec, EvalConfig, EvalOptions,
    Fractions, InfillList, MetricSettings, Reuse,
};
pub use manifest::{parse_boxes, read_manifest, EvalJob};
pub use record::{ConfigEntry, ImageRecord, Status};
pub use shard::Shard;

use image::ImageContext;

/// Per-image record files, under the output folder.
pub const RESULTS_DIR: &str = "results";
/// Maps computed by the evaluation, in `fido explain`'s layout, under the output folder.
pub const MAPS_DIR: &str = "maps";
/// The evaluation's settings, written beside the results so a merge can rebuild reports.
pub const SETTINGS_FILE: &str = "eval.json";

/// A folder-safe form of a configuration name.
pub fn slug(name: &str) -> String {
    name.replace([':', '/', ' '], "_")
}

/// What a run (or a merge) did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvalOutcome {
    /// Images in this shard.
    pub images: usize,
    /// Images scored (correctly classified).
    pub scored: usize,
    /// Images skipped because the classifier got them wrong.
    pub misclassified: usize,
    /// Images or (image, configuration) pairs that failed; their records hold the error.
    pub failures: usize,
    /// (image, configuration) pairs found finished from an earlier run and skipped.
    pub resumed: usize,
    /// Maps taken from `fido explain` folders.
    pub reused: usize,
    pub report: PathBuf,
}

/// Evaluate `options.configs` on this shard's images with `classifier`, writing per-image
/// records as they finish and the reports at the end. Resumes where an earlier run into the
/// same folder stopped. An image that fails is recorded with its error and the run goes on.
pub fn run_eval(gpu: &Gpu, classifier: &dyn Model, options: &EvalOptions) -> Result<EvalOutcome> {
    options.check()?;
    let results = options.out.join(RESULTS_DIR);
    std::fs::create_dir_all(&results).at(&results)?;
    remove_stale_files(&options.out)?;
    let settings = settings_json(options);
    let settings_file = options.out.join(SETTINGS_FILE);
    check_resumable(&settings_file, &settings)?;
    write_json(&settings_file, &settings)?;

    let mut jobs = options.jobs.clone();
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    let jobs = options.shard.slice(&jobs);
    let bar = progress_bar(options, jobs.len() * (options.configs.len() + 1));
    let mut outcome = EvalOutcome {
        images: jobs.len(),
        ..EvalOutcome::default()
    };
    for job in &jobs {
        bar.set_message(job.id.clone());
        let file = results.join(record_file_name(&job.id));
        let mut record = ImageRecord::read(&file).unwrap_or_else(|| ImageRecord::new(job));
        evaluate_image(
            gpu,
            classifier,
            options,
            job,
            &mut record,
            &file,
            &mut outcome,
            &bar,
        )?;
    }
    bar.finish_and_clear();
    outcome.report = report::write_reports(&options.out, &settings)?;
    Ok(outcome)
}

/// Bring one image's record up to date, writing it after each piece of work. Failures of
/// the image or of a configuration are recorded and counted; only failing to write the
/// record is an error. Ticks off one progress unit for the image and one per configuration.
#[allow(clippy::too_many_arguments)]
fn evaluate_image(
    gpu: &Gpu,
    classifier: &dyn Model,
    options: &EvalOptions,
    job: &EvalJob,
    record: &mut ImageRecord,
    file: &Path,
    outcome: &mut EvalOutcome,
    bar: &ProgressBar,
) -> Result<()> {
    let skip_all = || bar.inc(1 + options.configs.len() as u64);
    if record.status == Status::Misclassified {
        outcome.misclassified += 1;
        outcome.resumed += options.configs.len();
        skip_all();
        return Ok(());
    }
    let mut ctx = match ImageContext::new(gpu, classifier, options, job) {
        Ok(ctx) => ctx,
        Err(e) if e.is_device_fault() => return Err(e),
        Err(e) => {
            record.status = Status::Error;
            record.error = Some(e.to_string());
            record.write(file)?;
            outcome.failures += 1;
            skip_all();
            return Ok(());
        }
    };
    record.predicted = Some(ctx.predicted);
    record.prob = Some(ctx.prob);
    record.error = None;
    if options.only_correct && ctx.predicted != job.label {
        record.status = Status::Misclassified;
        record.write(file)?;
        outcome.misclassified += 1;
        skip_all();
        return Ok(());
    }
    record.status = Status::Ok;
    outcome.scored += 1;

    // In-filler quality does not depend on the configuration: once per image.
    if !options.metrics.infill_quality.is_empty() && record.infill_quality.is_none() {
        match ctx.infill_quality(classifier, options) {
            Ok(q) => record.infill_quality = Some(q),
            Err(e) if e.is_device_fault() => return Err(e),
            Err(e) => {
                record.infill_quality_error = Some(e.to_string());
                outcome.failures += 1;
            }
        }
        record.write(file)?;
    }
    bar.inc(1);
    for config in &options.configs {
        if record.is_done(&config.name) {
            outcome.resumed += 1;
            bar.inc(1);
            continue;
        }
        let entry = match ctx.evaluate(gpu, classifier, options, config) {
            Ok((entry, reused)) => {
                outcome.reused += reused as usize;
                entry
            }
            // Not recorded as failed: a rerun on a working device redoes this pair.
            Err(e) if e.is_device_fault() => return Err(e),
            Err(e) => {
                outcome.failures += 1;
                ConfigEntry::failed(e.to_string())
            }
        };
        record.configs.insert(config.name.clone(), entry);
        record.write(file)?;
        bar.inc(1);
    }
    Ok(())
}

fn progress_bar(options: &EvalOptions, units: usize) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(units as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix}{bar:30} {pos}/{len} image×config  elapsed {elapsed}  eta {eta}  {msg}",
        )
        .expect("a valid template"),
    );
    bar.set_prefix(format!("shard {} ", options.shard));
    bar
}

/// Merge the output folders of shards (each run with the same job list and settings) into
/// `out` and write the reports there. The result equals an unsharded run's.
pub fn merge_shards(shards: &[PathBuf], out: &Path) -> Result<EvalOutcome> {
    let Some(first_dir) = shards.first() else {
        return Err(Error::InvalidArgument("no shard folders to merge".into()));
    };
    // Shards differ only in their index and count: compare the rest.
    let mut merged: Option<Map<String, Value>> = None;
    for dir in shards {
        let path = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::InvalidArgument(format!("cannot read `{}`: {e}", path.display())))?;
        let mut settings = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(Error::InvalidArgument(format!(
                    "`{}`: the settings are not a JSON object",
                    path.display()
                )))
            }
            Err(e) => return Err(Error::InvalidArgument(format!("`{}`: {e}", path.display()))),
        };
        settings.insert("shard".into(), json!({"index": 0, "count": 1}));
        match &merged {
            None => merged = Some(settings),
            Some(first) if *first != settings => {
                return Err(Error::InvalidArgument(format!(
                    "`{}` was run with other settings than `{}`",
                    dir.display(),
                    first_dir.display()
                )))
            }
            Some(_) => {}
        }
    }
    let settings = merged.ok_or_else(|| Error::InvalidArgument("no shard folders to merge".into()))?;
    let settings = Value::Object(settings);
    remove_stale_files(out)?;
    shard::union_records(shards, out)?;
    write_json(&out.join(SETTINGS_FILE), &settings)?;
    let records = report::load_records(out)?;
    let report = report::write_reports(out, &settings)?;
    let count = |s: &str| records.iter().filter(|r| r["status"] == s).count();
    Ok(EvalOutcome {
        images: records.len(),
        scored: count("ok"),
        misclassified: count("misclassified"),
        failures: count("error")
            + records
                .iter()
                .flat_map(|r| r["configs"].as_object().into_iter().flat_map(|m| m.values()))
                .filter(|c| c["status"] == "error")
                .count(),
        resumed: 0,
        reused: 0,
        report,
    })
}

/// The record file of an image id.
pub fn record_file_name(id: &str) -> String {
    format!("{}.json", slug(id))
}

/// The stem used for an image's folders (maps), as `fido explain` names them.
pub fn image_stem(job: &EvalJob) -> String {
    job.path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| slug(&job.id))
}

/// The record key of the smallest fraction reaching a normalised drop `level`.
pub fn removal_metric_name(level: f64) -> String {
    format!("removal_f{:02}", (level * 100.0).round() as i64)
}

fn config_json(c: &EvalConfig) -> Value {
    let e = &c.explain;
    let mut v = json!({
        "name": c.name,
        "method": e.method.to_string(),
        "objective": e.objective.to_string(),
        "infill": e.infill.to_string(),
        "steps": e.steps,
        "batch": e.batch,
        "lambda": e.lambda,
        "lr": e.lr,
        "mask_size": e.mask_size,
        "temperature": e.temperature,
        "seed": e.seed,
    });
    // Only when used, so that folders written before TV could be set here still resume.
    if e.tv != 0.0 {
        v["tv"] = json!(e.tv);
    }
    v
}

fn settings_json(options: &EvalOptions) -> Value {
    let m = &options.metrics;
    let mut settings = json!({
        "model": options.model_name,
        "configs": options.configs.iter().map(config_json).collect::<Vec<_>>(),
        "reuse": options.reuse.iter().map(|(k, v)| (k.clone(), json!(v.display().to_string()))).collect::<Map<_, _>>(),
        "only_correct": options.only_correct,
        "off_box": m.off_box,
        "removal_fractions": m.removal_fractions,
        "removal_infill": m.removal_infill.to_string(),
        "removal_levels": m.removal_levels,
        "saliency": m.saliency,
        "stability": m.stability,
        "infill_quality": m.infill_quality.iter().map(|k| k.to_string()).collect::<Vec<_>>(),
        "infill_drop_rates": m.infill_drop_rates,
        "infill_samples": m.infill_samples,
        "examples": options.examples,
        "jobs": options.jobs.len(),
        "shard": {"index": options.shard.index, "count": options.shard.count},
    });
    // Only when used, so that folders written before CA scoring existed still resume.
    if let Some(ca) = &options.ca {
        settings["ca_side"] = json!(ca.side);
    }
    settings
}

/// Resuming into a folder is only sound with the same metric settings and shard, and with
/// unchanged settings for every configuration both runs share. Configurations may be added
/// or dropped, and the example count changed. Settings that cannot be read are replaced.
fn check_resumable(path: &Path, settings: &Value) -> Result<()> {
    let old = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .filter(Value::is_object);
    let Some(old) = old else {
        return Ok(());
    };
    let strip = |s: &Value| {
        let mut s = s.as_object().cloned().unwrap_or_default();
        for key in ["configs", "reuse", "examples"] {
            s.remove(key);
        }
        s
    };
    let by_name = |s: &Value| -> BTreeMap<String, Value> {
        s["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c.clone()))
            .collect()
    };
    let (before, now) = (by_name(&old), by_name(settings));
    let differs = strip(&old) != strip(settings)
        || now
            .iter()
            .any(|(name, c)| before.get(name).is_some_and(|b| b != c));
    if differs {
        return Err(Error::InvalidArgument(format!(
            "`{}` holds an evaluation run with other settings; use another output folder to start afresh",
            path.parent().unwrap_or(Path::new(".")).display()
        )));
    }
    Ok(())
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    write_atomic(
        path,
        &serde_json::to_string_pretty(value).expect("JSON of plain values"),
    )
}

/// Write through a temporary file and a rename, so a killed run never leaves half a record.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    crate::fsio::write_atomic(path, text.as_bytes())
}

/// Remove what a killed run into `out` may have left: the temporaries of its atomic writes
/// (in the folder, `results/`, `plots/` and the map folders `maps/CONFIG/IMAGE/`), and the
/// `results/*.tmp` files of fido versions that named them so.
fn remove_stale_files(out: &Path) -> Result<()> {
    crate::fsio::remove_stale_temporaries(out)?;
    crate::fsio::remove_stale_temporaries(&out.join("plots"))?;
    crate::fsio::remove_stale_temporaries_within(&out.join(MAPS_DIR), 2)?;
    let results = out.join(RESULTS_DIR);
    crate::fsio::remove_stale_temporaries(&results)?;
    if let Ok(entries) = std::fs::read_dir(&results) {
        for path in entries.flatten().map(|e| e.path()) {
            if path.extension().is_some_and(|x| x == "tmp") && path.is_file() {
                std::fs::remove_file(&path).at(&path)?;
            }
        }
    }
    Ok(())
}
