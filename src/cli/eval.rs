//! `fido eval`: the paper's quantitative evaluations over a labelled, boxed manifest.

use std::path::{Path, PathBuf};

use clap::Args;

use fido::eval::{
    self, ConfigSpec, EvalOptions, ExplainOverrides, Fractions, InfillList, MetricSettings, Reuse, Shard,
};
use fido::explain::{CaSetup, InfillKind};
use fido::inpaint::CaGenerator;
use fido::models::ModelSpec;
use fido::{Error, Result};

use super::{parsed, AdapterArgs, PreprocessArgs};

/// `fido eval` options.
#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    pub adapter: AdapterArgs,
    /// The classifier, a built-in name or an ONNX file (see `fido classify --help`); not
    /// needed with --merge.
    #[arg(long, required_unless_present = "merge", value_parser = parsed::<ModelSpec>)]
    pub model: Option<ModelSpec>,
    /// The built-in classifier's weights (safetensors); not used with an ONNX model.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[command(flatten)]
    pub preprocess: PreprocessArgs,
    /// CSV with file, label, ..., boxes_xyxy columns (like imagenet-val/manifest.csv).
    #[arg(long, required_unless_present = "merge")]
    pub manifest: Option<PathBuf>,
    /// Output folder; rerunning with the same settings resumes where a run stopped.
    #[arg(long)]
    pub out: PathBuf,
    /// Configurations to compare, `method[-objective]:infill`, e.g. fido:local fido-sdr:local bbmp:blur
    /// (fido:ca needs --infill-weights); the gradient baselines are gradient:- and ig:-
    /// (integrated gradients, --steps path points [default: 32]).
    #[arg(
        long = "config",
        num_args = 1..,
        default_values = ["fido:local", "fido-sdr:local", "bbmp:blur"],
        value_parser = parsed::<ConfigSpec>,
    )]
    pub configs: Vec<ConfigSpec>,
    #[command(flatten)]
    pub settings: ExplainOverrides,
    /// Reuse `fido explain` output folders: CONFIG=DIR (DIR/<image stem>/saliency.safetensors).
    #[arg(long, value_parser = parsed::<Reuse>)]
    pub reuse: Vec<Reuse>,
    /// Weights of the CA in-painter, for `...:ca` configurations, --removal-infill ca and
    /// --infill-quality ca.
    #[arg(long)]
    pub infill_weights: Option<PathBuf>,
    /// The in-filler that replaces removed pixels in the pixel-removal curve (mean, blur,
    /// random, local, or ca with --infill-weights).
    #[arg(long, default_value = "blur", value_parser = parsed::<InfillKind>)]
    pub removal_infill: InfillKind,
    /// Step of the removed-fraction grid.
    #[arg(long, default_value_t = 0.05)]
    pub removal_step: f64,
    /// Skip the pixel-removal curve.
    #[arg(long)]
    pub no_removal: bool,
    /// Skip the off-box ratio.
    #[arg(long)]
    pub no_off_box: bool,
    /// Skip the Dabkowski & Gal saliency metric.
    #[arg(long)]
    pub no_saliency: bool,
    /// Explain each image a second time with seed+1 and compare the MAP masks.
    #[arg(long)]
    pub stability: bool,
    /// In-fillers to score under random pixel masks, e.g. mean,blur,random,local,ca (empty: skip).
    #[arg(long, default_value = "", value_parser = parsed::<InfillList>)]
    pub infill_quality: InfillList,
    /// Fractions of pixels dropped at random for --infill-quality.
    #[arg(long, default_value = "0.25,0.5,0.75", value_parser = parsed::<Fractions>)]
    pub drop_rates: Fractions,
    /// Random masks per drop rate and in-filler.
    #[arg(long, default_value_t = 4)]
    pub infill_samples: usize,
    /// Images per classifier pass when scoring.
    #[arg(long, default_value_t = 8)]
    pub score_batch: usize,
    /// Score images the classifier gets wrong too.
    #[arg(long)]
    pub all_images: bool,
    /// Example maps per configuration in the HTML report.
    #[arg(long, default_value_t = 8)]
    pub examples: usize,
    /// Process only shard K of N (0-based), e.g. 3/8; merge the shards with --merge.
    #[arg(long, default_value = "0/1", value_parser = parsed::<Shard>)]
    pub shard: Shard,
    /// Merge these shard output folders into --out instead of evaluating.
    #[arg(long, num_args = 1..)]
    pub merge: Vec<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    if !args.merge.is_empty() {
        return merge(&args.merge, &args.out);
    }
    let missing = |what: &str| Error::InvalidArgument(format!("fido eval needs --{what}"));
    let model = args.model.as_ref().ok_or_else(|| missing("model"))?;
    let manifest = args.manifest.as_deref().ok_or_else(|| missing("manifest"))?;
    let configs = args
        .configs
        .iter()
        .map(|c| c.build(&args.settings))
        .collect::<Result<Vec<_>>>()?;
    let metrics = MetricSettings {
        removal_fractions: if args.no_removal {
            Vec::new()
        } else {
            eval::removal_grid(args.removal_step)?
        },
        removal_infill: args.removal_infill,
        infill_quality: args.infill_quality.0,
        infill_drop_rates: args.drop_rates.0,
        infill_samples: args.infill_samples,
        stability: args.stability,
        off_box: !args.no_off_box,
        saliency: !args.no_saliency,
        ..MetricSettings::default()
    };
    let gpu = args.adapter.gpu()?;
    let loaded = super::load_model(&gpu, model, args.weights.as_deref(), &args.preprocess)?;
    let ca = match &args.infill_weights {
        Some(path) => Some(CaSetup::new(CaGenerator::load(&gpu, path)?)),
        None => None,
    };
    let options = EvalOptions {
        model_name: loaded.name.clone(),
        resize: loaded.resize,
        norm: loaded.norm,
        metrics,
        reuse: args
            .reuse
            .into_iter()
            .map(|r| (r.config.to_string(), r.dir))
            .collect(),
        ca,
        shard: args.shard,
        score_batch: args.score_batch,
        only_correct: !args.all_images,
        examples: args.examples,
        progress: !args.quiet,
        ..EvalOptions::new(eval::read_manifest(manifest)?, configs, args.out)
    };
    let outcome = eval::run_eval(&gpu, &loaded.classifier, &options)?;
    report(&outcome);
    Ok(())
}

fn merge(shards: &[PathBuf], out: &Path) -> Result<()> {
    let outcome = eval::merge_shards(shards, out)?;
    report(&outcome);
    Ok(())
}

fn report(r: &eval::EvalOutcome) {
    println!(
        "{} images: {} scored, {} skipped as misclassified, {} failed, {} resumed, {} maps reused",
        r.images, r.scored, r.misclassified, r.failures, r.resumed, r.reused
    );
    println!("report: {}", r.report.display());
}
