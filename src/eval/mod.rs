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

pub mod metrics;
pub mod plots;
pub mod report;
pub mod shard;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use crate::explain::infill::{self, InfillKind};
use crate::explain::report::{self as explain_report, RunInfo};
use crate::explain::CaSetup;
pub use crate::explain::ExplainOverrides;
use crate::explain::{ExplainConfig, Explainer, Method, Model, Objective};
use crate::imageio::{self, Normalize, Resize};
use crate::weights::WeightFile;
use crate::{Error, Gpu, IoContext, Result, Tensor};

pub use shard::Shard;

/// Per-image record files, under the output folder.
pub const RESULTS_DIR: &str = "results";
/// Maps computed by the evaluation, in `fido explain`'s layout, under the output folder.
pub const MAPS_DIR: &str = "maps";
/// The evaluation's settings, written beside the results so a merge can rebuild reports.
pub const SETTINGS_FILE: &str = "eval.json";

/// One image to evaluate: its file, true label and ground-truth boxes in source pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalJob {
    /// Unique name of the image (the manifest's file name); results are keyed by it.
    pub id: String,
    pub path: PathBuf,
    pub label: usize,
    pub boxes: Vec<metrics::SourceBox>,
}

/// A named explanation setting, parsed from `method[-objective]:infill`.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    pub name: String,
    pub explain: ExplainConfig,
}

impl EvalConfig {
    /// Parse `fido:local`, `fido-sdr:blur`, `bbmp:blur`, … starting from the paper's
    /// settings for the method.
    pub fn parse(spec: &str) -> Result<EvalConfig> {
        let bad = |why: String| {
            Error::InvalidArgument(format!(
                "configuration `{spec}`: {why}; expected method[-objective]:infill, e.g. fido:local or fido-sdr:blur"
            ))
        };
        let (head, infill) = spec.split_once(':').ok_or_else(|| bad("no `:`".into()))?;
        let (method, objective) = match head.split_once('-') {
            Some((m, o)) => (m, Some(o)),
            None => (head, None),
        };
        let method: Method = method.trim().parse().map_err(|e: Error| bad(e.to_string()))?;
        let mut explain = ExplainConfig::paper(method);
        if let Some(o) = objective {
            explain.objective = o.trim().parse().map_err(|e: Error| bad(e.to_string()))?;
        }
        explain.infill = infill.trim().parse().map_err(|e: Error| bad(e.to_string()))?;
        explain.validate().map_err(|e| bad(e.to_string()))?;
        let objective = if explain.objective == Objective::Ssr {
            String::new()
        } else {
            format!("-{}", explain.objective)
        };
        Ok(EvalConfig {
            name: format!("{method}{objective}:{}", explain.infill),
            explain,
        })
    }

    /// A folder-safe form of the name.
    pub fn slug(&self) -> String {
        slug(&self.name)
    }
}

/// Parse a comma-separated list of in-fillers, e.g. `mean,blur,random,local`.
pub fn parse_infill_list(text: &str) -> Result<Vec<InfillKind>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse())
        .collect()
}

/// Parse a comma-separated list of numbers in [0, 1], e.g. drop rates `0.25,0.5,0.75`.
pub fn parse_fractions(text: &str) -> Result<Vec<f64>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| match s.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
            _ => Err(Error::InvalidArgument(format!(
                "`{s}` is not a fraction between 0 and 1"
            ))),
        })
        .collect()
}

/// The removal grid `step, 2·step, …, 1`.
pub fn removal_grid(step: f64) -> Result<Vec<f64>> {
    if !(step > 0.0 && step <= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "the removal step must be in (0, 1], got {step}"
        )));
    }
    let n = (1.0 / step).round().max(1.0) as usize;
    Ok((1..=n).map(|i| (i as f64 * step).min(1.0)).collect())
}

/// Parse `CONFIG=DIR` (as in `--reuse fido:local=runs/explain`), normalising the name.
pub fn parse_reuse(text: &str) -> Result<(String, PathBuf)> {
    let (name, dir) = text.split_once('=').ok_or_else(|| {
        Error::InvalidArgument(format!(
            "--reuse `{text}`: expected CONFIG=DIR, e.g. fido:local=runs/a"
        ))
    })?;
    Ok((EvalConfig::parse(name)?.name, PathBuf::from(dir)))
}

/// A folder-safe form of a configuration name.
pub fn slug(name: &str) -> String {
    name.replace([':', '/', ' '], "_")
}

/// Which metrics to compute, and their settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSettings {
    pub off_box: bool,
    /// Pixel-removal fractions (empty: no removal curve).
    pub removal_fractions: Vec<f64>,
    /// The in-filler that replaces removed pixels.
    pub removal_infill: InfillKind,
    /// Normalised drops whose smallest reaching fraction is reported.
    pub removal_levels: Vec<f64>,
    pub saliency: bool,
    /// Run every fresh explanation a second time with `seed + 1` and compare the maps.
    pub stability: bool,
    /// In-fillers scored under random pixel masks (empty: none).
    pub infill_quality: Vec<InfillKind>,
    pub infill_drop_rates: Vec<f64>,
    /// Random masks per drop rate and in-filler.
    pub infill_samples: usize,
}

impl Default for MetricSettings {
    fn default() -> Self {
        MetricSettings {
            off_box: true,
            removal_fractions: (1..=20).map(|i| i as f64 * 0.05).collect(),
            removal_infill: InfillKind::Blur,
            removal_levels: vec![0.5, 0.8],
            saliency: true,
            stability: false,
            infill_quality: Vec::new(),
            infill_drop_rates: vec![0.25, 0.5, 0.75],
            infill_samples: 4,
        }
    }
}

/// Everything an evaluation run needs besides the GPU and the classifier.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub jobs: Vec<EvalJob>,
    pub configs: Vec<EvalConfig>,
    pub out: PathBuf,
    /// The model's name, for the reports.
    pub model_name: String,
    pub resize: Resize,
    pub norm: Normalize,
    pub metrics: MetricSettings,
    /// Maps to reuse instead of computing: configuration name → a `fido explain` output
    /// folder holding `<image stem>/saliency.safetensors`.
    pub reuse: BTreeMap<String, PathBuf>,
    /// The CA generator, for `…:ca` configurations and CA removal or quality scoring.
    pub ca: Option<CaSetup>,
    pub shard: Shard,
    /// Images per classifier forward pass when scoring removal levels and random masks.
    pub score_batch: usize,
    /// Score only images the classifier gets right (the paper's protocol).
    pub only_correct: bool,
    /// Examples per configuration in the HTML report's grid.
    pub examples: usize,
    pub progress: bool,
}

impl EvalOptions {
    pub fn new(jobs: Vec<EvalJob>, configs: Vec<EvalConfig>, out: PathBuf) -> EvalOptions {
        EvalOptions {
            jobs,
            configs,
            out,
            model_name: String::from("model"),
            resize: Resize::ShorterThenCentreCrop {
                shorter: 256,
                crop: 224,
            },
            norm: Normalize::IMAGENET,
            metrics: MetricSettings::default(),
            reuse: BTreeMap::new(),
            ca: None,
            shard: Shard::ALL,
            score_batch: 8,
            only_correct: true,
            examples: 8,
            progress: true,
        }
    }
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

/// Read a manifest CSV `file,label,…,boxes_xyxy` (boxes `x0 y0 x1 y1`, several separated by
/// `;`; a missing or empty last column means no boxes). Images are looked up next to the
/// manifest or in its `images/` folder. Jobs come back sorted by id.
pub fn read_manifest(manifest: &Path) -> Result<Vec<EvalJob>> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| Error::InvalidArgument(format!("cannot read manifest `{}`: {e}", manifest.display())))?;
    let dir = manifest.parent().unwrap_or(Path::new("."));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').map(str::trim).collect();
    let boxes_column = header.iter().position(|h| h.starts_with("boxes"));
    let mut jobs = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", manifest.display(), n + 2);
        let fields: Vec<&str> = line.split(',').collect();
        let file = fields[0].trim();
        let label = fields.get(1).copied().unwrap_or("").trim();
        let label: usize = label
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("{}: label `{label}` is not a class index", at())))?;
        let boxes = match boxes_column.and_then(|c| fields.get(c)) {
            Some(text) => {
                parse_boxes(text).map_err(|why| Error::InvalidArgument(format!("{}: {why}", at())))?
            }
            None => Vec::new(),
        };
        let path = [dir.join(file), dir.join("images").join(file)]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| Error::InvalidArgument(format!("{}: image `{file}` not found", at())))?;
        jobs.push(EvalJob {
            id: file.to_string(),
            path,
            label,
            boxes,
        });
    }
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = jobs.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(Error::InvalidArgument(format!(
            "{}: image `{}` is listed twice",
            manifest.display(),
            w[0].id
        )));
    }
    Ok(jobs)
}

/// Parse `x0 y0 x1 y1;x0 y0 x1 y1`.
pub fn parse_boxes(text: &str) -> std::result::Result<Vec<metrics::SourceBox>, String> {
    text.split(';')
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let v: Vec<f64> = b
                .split_whitespace()
                .map(|t| {
                    t.parse::<f64>()
                        .map_err(|_| format!("box `{b}` is not four numbers"))
                })
                .collect::<std::result::Result<_, _>>()?;
            match v[..] {
                [x0, y0, x1, y1] => Ok([x0, y0, x1, y1]),
                _ => Err(format!("box `{b}` is not four numbers")),
            }
        })
        .collect()
}

/// Evaluate `options.configs` on this shard's images with `classifier`, writing per-image
/// records as they finish and the reports at the end. Resumes where an earlier run into the
/// same folder stopped.
pub fn run_eval(gpu: &Gpu, classifier: &dyn Model, options: &EvalOptions) -> Result<EvalOutcome> {
    if options.configs.is_empty() && options.metrics.infill_quality.is_empty() {
        return Err(Error::InvalidArgument(
            "nothing to evaluate: give at least one configuration or in-filler".into(),
        ));
    }
    for name in options.reuse.keys() {
        if !options.configs.iter().any(|c| &c.name == name) {
            return Err(Error::InvalidArgument(format!(
                "maps are offered for `{name}`, which is not among the configurations"
            )));
        }
    }
    if options.ca.is_none() {
        let m = &options.metrics;
        let mut needs: Vec<String> = options
            .configs
            .iter()
            .filter(|c| c.explain.infill == InfillKind::Ca && !options.reuse.contains_key(&c.name))
            .map(|c| format!("`{}`", c.name))
            .collect();
        if !m.removal_fractions.is_empty() && m.removal_infill == InfillKind::Ca {
            needs.push("--removal-infill ca".into());
        }
        if m.infill_quality.contains(&InfillKind::Ca) {
            needs.push("--infill-quality ca".into());
        }
        if !needs.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} need the CA in-painter: pass --infill-weights CA.safetensors",
                needs.join(", ")
            )));
        }
    }
    let results = options.out.join(RESULTS_DIR);
    std::fs::create_dir_all(&results)
        .map_err(|e| Error::InvalidArgument(format!("cannot create `{}`: {e}", results.display())))?;
    let settings = settings_json(options);
    check_resumable(&options.out.join(SETTINGS_FILE), &settings)?;
    write_atomic(
        &options.out.join(SETTINGS_FILE),
        &serde_json::to_string_pretty(&settings).expect("JSON"),
    )?;

    let mut jobs = options.jobs.clone();
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    let jobs = options.shard.slice(&jobs);
    let units = jobs.len() * (options.configs.len() + 1);
    let bar = if options.progress {
        let bar = ProgressBar::new(units as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix}{bar:30} {pos}/{len} image×config  elapsed {elapsed}  eta {eta}  {msg}",
            )
            .expect("a valid template"),
        );
        bar.set_prefix(format!("shard {} ", options.shard));
        bar
    } else {
        ProgressBar::hidden()
    };

    let mut outcome = EvalOutcome {
        images: jobs.len(),
        ..EvalOutcome::default()
    };
    for job in &jobs {
        bar.set_message(job.id.clone());
        let file = results.join(record_file_name(&job.id));
        let mut record = read_record(&file).unwrap_or_else(|| new_record(job));
        let status = record["status"].as_str().unwrap_or("").to_string();
        if status == "misclassified" {
            outcome.misclassified += 1;
            outcome.resumed += options.configs.len();
            bar.inc(units as u64 / jobs.len() as u64);
            continue;
        }
        let mut ctx = match catch(|| ImageContext::new(gpu, classifier, options, job)) {
            Ok(ctx) => ctx,
            Err(e) => {
                record["status"] = json!("error");
                record["error"] = json!(e.to_string());
                write_record(&file, &record)?;
                outcome.failures += 1;
                bar.inc(units as u64 / jobs.len() as u64);
                continue;
            }
        };
        record["predicted"] = json!(ctx.predicted);
        record["prob"] = json!(ctx.prob);
        record.as_object_mut().expect("an object").remove("error");
        if options.only_correct && ctx.predicted != job.label {
            record["status"] = json!("misclassified");
            write_record(&file, &record)?;
            outcome.misclassified += 1;
            bar.inc(units as u64 / jobs.len() as u64);
            continue;
        }
        record["status"] = json!("ok");
        outcome.scored += 1;

        // In-filler quality does not depend on the configuration: once per image.
        if !options.metrics.infill_quality.is_empty() && record.get("infill_quality").is_none() {
            match catch(|| ctx.infill_quality(classifier, options)) {
                Ok(q) => record["infill_quality"] = q,
                Err(e) => {
                    record["infill_quality_error"] = json!(e.to_string());
                    outcome.failures += 1;
                }
            }
            write_record(&file, &record)?;
        }
        bar.inc(1);

        for config in &options.configs {
            let done = record["configs"][&config.name]["status"].as_str() == Some("ok");
            if done {
                outcome.resumed += 1;
                bar.inc(1);
                continue;
            }
            let result = catch(|| ctx.evaluate(gpu, classifier, options, config));
            let entry = match result {
                Ok((entry, reused)) => {
                    outcome.reused += reused as usize;
                    entry
                }
                Err(e) => {
                    outcome.failures += 1;
                    json!({"status": "error", "error": e.to_string()})
                }
            };
            record["configs"][&config.name] = entry;
            write_record(&file, &record)?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    outcome.report = report::write_reports(&options.out, &settings)?;
    Ok(outcome)
}

/// Merge the output folders of shards (each run with the same job list and settings) into
/// `out` and write the reports there. The result equals an unsharded run's.
pub fn merge_shards(shards: &[PathBuf], out: &Path) -> Result<EvalOutcome> {
    if shards.is_empty() {
        return Err(Error::InvalidArgument("no shard folders to merge".into()));
    }
    let mut settings: Option<Value> = None;
    for dir in shards {
        let path = dir.join(SETTINGS_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::InvalidArgument(format!("cannot read `{}`: {e}", path.display())))?;
        let mut s: Value = serde_json::from_str(&text)
            .map_err(|e| Error::InvalidArgument(format!("`{}`: {e}", path.display())))?;
        let count = s["shard"]["count"].clone();
        s["shard"] = json!({"index": 0, "count": 1});
        match &settings {
            None => {
                settings = Some(s);
                settings.as_mut().expect("set")["merged_from"] = count;
            }
            Some(first) => {
                let mut mine = s.clone();
                mine["merged_from"] = first["merged_from"].clone();
                if &mine != first {
                    return Err(Error::InvalidArgument(format!(
                        "`{}` was run with other settings than `{}`",
                        dir.display(),
                        shards[0].display()
                    )));
                }
            }
        }
    }
    let mut settings = settings.expect("at least one shard");
    settings.as_object_mut().expect("an object").remove("merged_from");
    shard::union_records(shards, out)?;
    write_atomic(
        &out.join(SETTINGS_FILE),
        &serde_json::to_string_pretty(&settings).expect("JSON"),
    )?;
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
        "reuse": options.reuse.iter().map(|(k, v)| (k.clone(), json!(v.display().to_string()))).collect::<serde_json::Map<_, _>>(),
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
/// or dropped, and the example count changed.
fn check_resumable(path: &Path, settings: &Value) -> Result<()> {
    let Some(old) = read_record(path) else {
        return Ok(());
    };
    let strip = |s: &Value| {
        let mut s = s.clone();
        let map = s.as_object_mut().expect("settings are an object");
        for key in ["configs", "reuse", "examples"] {
            map.remove(key);
        }
        s
    };
    let mut differs = strip(&old) != strip(settings);
    let by_name = |s: &Value| -> BTreeMap<String, Value> {
        s["configs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c.clone()))
            .collect()
    };
    let (before, now) = (by_name(&old), by_name(settings));
    differs |= now
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

fn new_record(job: &EvalJob) -> Value {
    json!({
        "id": job.id,
        "source": job.path.display().to_string(),
        "stem": image_stem(job),
        "label": job.label,
        "boxes": job.boxes,
        "status": "pending",
        "configs": {},
    })
}

fn read_record(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_record(path: &Path, record: &Value) -> Result<()> {
    write_atomic(path, &serde_json::to_string_pretty(record).expect("JSON"))
}

/// Write through a temporary file and a rename, so a killed run never leaves half a record.
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).at(&tmp)?;
    std::fs::rename(&tmp, path).at(path)?;
    Ok(())
}

/// Run `f`, turning a panic into an error so one image cannot stop the others.
fn catch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Error::InvalidArgument(format!("internal failure: {why}")))
        }
    }
}

/// One image prepared for the model, with what every configuration shares.
struct ImageContext<'j> {
    job: &'j EvalJob,
    prepared: imageio::Prepared,
    x: Tensor,
    height: usize,
    width: usize,
    classes: usize,
    predicted: usize,
    prob: f64,
    inside_boxes: Vec<bool>,
}

impl<'j> ImageContext<'j> {
    fn new(gpu: &Gpu, model: &dyn Model, options: &EvalOptions, job: &'j EvalJob) -> Result<Self> {
        let picture = imageio::load_rgb(&job.path)?;
        let prepared = imageio::prepare(&picture, options.resize, &options.norm);
        let size = prepared.size as usize;
        let x = Tensor::from_slice(gpu, &[1, 3, size, size], &prepared.chw)?;
        let logits = metrics::logits_rows(model, &x, 1)?.remove(0);
        if job.label >= logits.len() {
            return Err(Error::InvalidArgument(format!(
                "label {} is out of range: the model has {} classes",
                job.label,
                logits.len()
            )));
        }
        let inside_boxes = metrics::box_union_mask(&job.boxes, &prepared.source_to_model, size, size);
        Ok(ImageContext {
            job,
            height: size,
            width: size,
            classes: logits.len(),
            predicted: metrics::argmax(&logits),
            prob: metrics::probability(&logits, job.label),
            prepared,
            x,
            inside_boxes,
        })
    }

    fn infill_quality(&self, model: &dyn Model, options: &EvalOptions) -> Result<Value> {
        let m = &options.metrics;
        let mut out = serde_json::Map::new();
        for &kind in &m.infill_quality {
            let probs = metrics::infill_quality(
                model,
                &self.x,
                options.norm,
                metrics::Infill {
                    kind,
                    ca: options.ca.as_ref(),
                },
                self.job.label,
                &m.infill_drop_rates,
                m.infill_samples.max(1),
                seed_of(&self.job.id),
                options.score_batch,
            )?;
            out.insert(kind.to_string(), json!(probs));
        }
        Ok(Value::Object(out))
    }

    /// Compute (or reuse) the map of `config` and score it. Returns the record entry and
    /// whether the map was reused.
    fn evaluate(
        &mut self,
        gpu: &Gpu,
        model: &dyn Model,
        options: &EvalOptions,
        config: &EvalConfig,
    ) -> Result<(Value, bool)> {
        let started = Instant::now();
        let target = self.job.label;
        let mut entry = json!({"status": "ok"});
        let (importance, reused) = match options.reuse.get(&config.name) {
            Some(dir) => (self.load_map(dir)?, true),
            None => {
                let explanation = self.explain(model, options, config.explain.clone())?;
                let folder = options
                    .out
                    .join(MAPS_DIR)
                    .join(config.slug())
                    .join(image_stem(self.job));
                let info = RunInfo {
                    model: &options.model_name,
                    adapter: &gpu.adapter_name(),
                    source: &self.job.path.display().to_string(),
                    target_name: &crate::classes::name(target, self.classes),
                    source_to_model: self.prepared.source_to_model,
                };
                explain_report::write(&folder, &explanation, &self.prepared.picture, &info)?;
                entry["prob_with_map"] = json!(explanation.prob_with_map);
                if options.metrics.stability {
                    let mut second = config.explain.clone();
                    second.seed = second.seed.wrapping_add(1);
                    let other = self.explain(model, options, second)?;
                    entry["stability_pearson"] =
                        json!(metrics::pearson(&explanation.importance, &other.importance));
                    entry["stability_iou"] =
                        json!(metrics::map_iou(&explanation.importance, &other.importance));
                }
                (explanation.importance, false)
            }
        };
        let m = &options.metrics;
        entry["map_fraction"] = json!(metrics::map_fraction(&importance));
        if m.off_box {
            entry["off_box_ratio"] = json!(metrics::off_box_ratio(&importance, &self.inside_boxes));
        }
        if !m.removal_fractions.is_empty() {
            let curve = metrics::removal_curve(
                model,
                &self.x,
                options.norm,
                metrics::Infill {
                    kind: m.removal_infill,
                    ca: options.ca.as_ref(),
                },
                &importance,
                target,
                &m.removal_fractions,
                seed_of(&self.job.id),
                options.score_batch,
            )?;
            for &level in &m.removal_levels {
                entry[removal_metric_name(level)] = json!(curve.fraction_reaching(level));
            }
            entry["removal_scores"] = json!(curve.scores);
            entry["removal_score_full"] = json!(curve.score_full);
            entry["removal_score_all_removed"] = json!(curve.score_all_removed);
            entry["removal_drops"] = json!(curve.drops);
        }
        if m.saliency {
            match metrics::saliency_of_map(model, &self.x, &self.prepared.chw, &importance, target)? {
                Some((value, p)) => {
                    entry["saliency_metric"] = json!(value);
                    entry["crop_prob"] = json!(p);
                }
                None => entry["saliency_metric"] = Value::Null,
            }
        }
        entry["reused"] = json!(reused);
        entry["seconds"] = json!(started.elapsed().as_secs_f64());
        Ok((entry, reused))
    }

    fn explain(
        &self,
        model: &dyn Model,
        options: &EvalOptions,
        config: ExplainConfig,
    ) -> Result<crate::explain::Explanation> {
        let infiller = infill::build(config.infill, &self.x, options.norm, options.ca.as_ref())?;
        let mut explainer = Explainer::new(
            model,
            &self.x,
            Some(self.job.label),
            options.norm,
            config,
            Some(infiller),
        )?;
        explainer.run(0, |_| {})?;
        explainer.finish()
    }

    /// The importance map of this image from a `fido explain` output folder.
    fn load_map(&self, dir: &Path) -> Result<Vec<f32>> {
        let candidates = [
            dir.join(image_stem(self.job)).join("saliency.safetensors"),
            dir.join(slug(&self.job.id)).join("saliency.safetensors"),
        ];
        let path = candidates.iter().find(|p| p.exists()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no saved map for `{}` in `{}`",
                self.job.id,
                dir.display()
            ))
        })?;
        let file = WeightFile::open(path)?;
        let shape = file.shape("importance")?;
        if shape != [self.height, self.width] {
            return Err(Error::Shape {
                op: "eval",
                detail: format!(
                    "`{}` holds a {shape:?} map; the model input is [{}, {}]",
                    path.display(),
                    self.height,
                    self.width
                ),
            });
        }
        file.get_f32("importance")
    }
}

/// The record key of the smallest fraction reaching a normalised drop `level`.
pub fn removal_metric_name(level: f64) -> String {
    format!("removal_f{:02}", (level * 100.0).round() as i64)
}

/// A per-image seed derived from its id (FNV-1a), so shards and reruns agree.
fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}
