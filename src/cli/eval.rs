//! `fido eval`: the paper's quantitative evaluations over a labelled, boxed manifest.

use std::path::{Path, PathBuf};

use fido::eval::{self, EvalConfig, EvalOptions, ExplainOverrides, MetricSettings};
use fido::explain::CaSetup;
use fido::explain::InfillKind;
use fido::inpaint::CaGenerator;
use fido::{Error, Gpu, Result};

use super::classify::load_model;

/// Everything `fido eval` takes from the command line.
pub struct EvalArgs {
    pub model: String,
    pub weights: PathBuf,
    pub manifest: PathBuf,
    pub out: PathBuf,
    pub configs: Vec<String>,
    pub overrides: ExplainOverrides,
    pub reuse: Vec<String>,
    pub infill_weights: Option<PathBuf>,
    pub removal_infill: String,
    pub removal_step: f64,
    pub no_removal: bool,
    pub no_off_box: bool,
    pub no_saliency: bool,
    pub stability: bool,
    pub infill_quality: String,
    pub drop_rates: String,
    pub infill_samples: usize,
    pub score_batch: usize,
    pub all_images: bool,
    pub examples: usize,
    pub shard: String,
    pub quiet: bool,
}

pub fn run(gpu: &Gpu, a: &EvalArgs) -> Result<()> {
    let loaded = load_model(gpu, &a.model, &a.weights)?;
    let mut configs = a
        .configs
        .iter()
        .map(|s| EvalConfig::parse(s))
        .collect::<Result<Vec<_>>>()?;
    for c in &mut configs {
        a.overrides.apply(&mut c.explain)?;
    }
    if a.score_batch == 0 {
        return Err(Error::InvalidArgument("--score-batch must be at least 1".into()));
    }
    let mut o = EvalOptions::new(eval::read_manifest(&a.manifest)?, configs, a.out.clone());
    o.model_name = loaded.kind.to_string();
    o.resize = loaded.resize;
    o.norm = loaded.norm;
    o.metrics = MetricSettings {
        removal_fractions: if a.no_removal {
            Vec::new()
        } else {
            eval::removal_grid(a.removal_step)?
        },
        removal_infill: a.removal_infill.parse::<InfillKind>()?,
        infill_quality: eval::parse_infill_list(&a.infill_quality)?,
        infill_drop_rates: eval::parse_fractions(&a.drop_rates)?,
        infill_samples: a.infill_samples,
        stability: a.stability,
        off_box: !a.no_off_box,
        saliency: !a.no_saliency,
        ..Default::default()
    };
    o.reuse = a
        .reuse
        .iter()
        .map(|s| eval::parse_reuse(s))
        .collect::<Result<_>>()?;
    o.ca = match &a.infill_weights {
        Some(path) => Some(CaSetup::new(CaGenerator::load(gpu, path)?)),
        None => None,
    };
    o.shard = a.shard.parse()?;
    o.score_batch = a.score_batch;
    o.only_correct = !a.all_images;
    o.examples = a.examples;
    o.progress = !a.quiet;
    let r = eval::run_eval(gpu, &loaded.classifier, &o)?;
    report(&r);
    Ok(())
}

pub fn merge(shards: &[PathBuf], out: &Path) -> Result<()> {
    let r = eval::merge_shards(shards, out)?;
    report(&r);
    Ok(())
}

fn report(r: &eval::EvalOutcome) {
    println!(
        "{} images: {} scored, {} skipped as misclassified, {} failed, {} resumed, {} maps reused",
        r.images, r.scored, r.misclassified, r.failures, r.resumed, r.reused
    );
    println!("report: {}", r.report.display());
}
