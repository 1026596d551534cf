//! The `fido` command line: one typed argument struct per subcommand, each in its own file
//! with the function that runs it. Values are parsed once, by clap, into the library's types.

pub mod check;
pub mod classify;
pub mod convert;
pub mod eval;
pub mod explain;
pub mod infill;
pub mod info;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use fido::models::{LoadedModel, ModelKind};
use fido::{AdapterChoice, AdapterSelector, BackendSelector, Error, Gpu, Result};

#[derive(Parser)]
#[command(
    name = "fido",
    version,
    about = "Explain image classifiers with FIDO saliency maps, on any GPU or on the CPU"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List the adapters, the one fido would choose, its limits and its features.
    Info(info::InfoArgs),
    /// Classify images (or a prepared input tensor) and print the top classes.
    Classify(classify::ClassifyArgs),
    /// Explain a classifier's decision with a FIDO (or BBMP) saliency map.
    Explain(explain::ExplainArgs),
    /// Measure saliency maps on a labelled, boxed manifest: off-box ratio, pixel removal,
    /// saliency metric, seed stability and in-filler quality, with plots and an HTML report.
    Eval(eval::EvalArgs),
    /// Fill the white pixels of a mask with the Contextual Attention in-painter (DeepFill v1).
    Infill(infill::InfillArgs),
    /// Convert a checkpoint to safetensors, keeping tensor names: PyTorch .pth (zip or legacy
    /// format), or a TensorFlow checkpoint (its prefix or its .index file).
    Convert(convert::ConvertArgs),
    /// Run a matrix multiply on the chosen adapter, check it against the CPU and report its speed.
    Check(check::CheckArgs),
}

impl Cli {
    /// Parse the command line. Help and usage errors go out as clap writes them; a value
    /// that does not parse is reported in one line.
    pub fn parse_args() -> Cli {
        Cli::try_parse().unwrap_or_else(|e| {
            if e.kind() == clap::error::ErrorKind::ValueValidation {
                let text = e.to_string();
                eprintln!("{}", text.lines().next().unwrap_or(&text));
                std::process::exit(e.exit_code());
            }
            e.exit()
        })
    }
}

/// The adapter choice every subcommand that uses the GPU takes.
#[derive(Args, Clone, Debug)]
pub struct AdapterArgs {
    /// auto (best hardware GPU, else software), gpu, cpu, or part of an adapter's name.
    #[arg(long, default_value = "auto", value_parser = parsed::<AdapterSelector>)]
    pub adapter: AdapterSelector,
    /// auto, vulkan, metal, dx12 or gl.
    #[arg(long, default_value = "auto", value_parser = parsed::<BackendSelector>)]
    pub backend: BackendSelector,
}

impl AdapterArgs {
    pub fn choice(&self) -> AdapterChoice {
        AdapterChoice {
            adapter: self.adapter.clone(),
            backend: self.backend,
        }
    }

    pub fn gpu(&self) -> Result<Gpu> {
        Gpu::new(&self.choice())
    }
}

/// The classifier and its weights, as `classify` and `explain` take them.
#[derive(Args)]
pub struct ModelArgs {
    /// The classifier: resnet18 resnet34 resnet50 resnet101 resnet152 vgg11 vgg13 vgg16 vgg19 alexnet
    /// efficientnet-lite0.
    #[arg(long, value_parser = parsed::<ModelKind>)]
    pub model: ModelKind,
    /// The model's weights (.safetensors with the original state_dict names).
    #[arg(long)]
    pub weights: PathBuf,
}

impl ModelArgs {
    pub fn load(&self, gpu: &Gpu) -> Result<LoadedModel> {
        LoadedModel::load(gpu, self.model, &self.weights)
    }
}

/// A value parser for any of the library's `FromStr` types, reporting the library's message
/// without the "invalid argument" prefix (clap adds its own).
/// When the process started, for the start-up time the summaries report.
pub static LAUNCHED: OnceLock<Instant> = OnceLock::new();

pub fn parsed<T: FromStr<Err = Error>>(text: &str) -> std::result::Result<T, String> {
    text.parse::<T>().map_err(|e| match e {
        Error::InvalidArgument(message) => message,
        other => other.to_string(),
    })
}
