//! The `fido` command line: one typed argument struct per subcommand, each in its own file
//! with the function that runs it. Values are parsed once, by clap, into the library's types.

pub mod check;
pub mod classify;
pub mod convert;
pub mod eval;
pub mod explain;
pub mod infill;
pub mod info;
pub mod view;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use fido::explain::{CaSetup, ExplainConfig, ExplainOverrides, InfillKind, Method, Objective};
use fido::inpaint::CaGenerator;
use fido::models::{LoadedModel, ModelSpec, PreprocessOptions, PreprocessPreset};
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
    /// Explain a classifier's decision with a FIDO saliency map, or with BBMP, vanilla or
    /// integrated gradients to compare.
    Explain(explain::ExplainArgs),
    /// Measure saliency maps on a labelled, boxed manifest: off-box ratio, pixel removal,
    /// saliency metric, seed stability and in-filler quality, with plots and an HTML report.
    Eval(eval::EvalArgs),
    /// Watch an explanation form in a window: the image, the importance map over it, what the
    /// classifier sees and the score, live; pause, step, switch among the top-5 classes, save.
    View(view::ViewArgs),
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
    /// The most GPU memory fido may hold, such as 512M or 2G (binary units; a plain number is
    /// bytes). Past it, work stops with the same error as a GPU that ran out. Default: no
    /// limit but the device's.
    #[arg(long, value_name = "SIZE", value_parser = parse_byte_size)]
    pub gpu_memory: Option<u64>,
}

impl AdapterArgs {
    pub fn choice(&self) -> AdapterChoice {
        AdapterChoice {
            adapter: self.adapter.clone(),
            backend: self.backend,
        }
    }

    pub fn gpu(&self) -> Result<Gpu> {
        let gpu = Gpu::new(&self.choice())?;
        gpu.set_memory_budget(self.gpu_memory);
        Ok(gpu)
    }
}

/// How to explain, as `explain` and `view` take it; defaults are the paper's.
#[derive(Args)]
pub struct MethodArgs {
    /// fido, bbmp, gradient (vanilla gradients of the target's log-odds) or integrated-gradients
    /// (ig: zero baseline, midpoint rule, --steps points [default: 32]).
    #[arg(long, default_value = "fido", value_parser = parsed::<Method>)]
    pub method: Method,
    /// ssr (smallest sufficient region) or sdr (smallest destroying region).
    #[arg(long, default_value = "ssr", value_parser = parsed::<Objective>)]
    pub objective: Objective,
    /// mean, blur, random, local or ca [default: local for FIDO, blur for BBMP and the gradient
    /// methods, where it only scores the MAP mask].
    #[arg(long, value_parser = parsed::<InfillKind>)]
    pub infill: Option<InfillKind>,
    /// Weights of the CA in-painter, for --infill ca.
    #[arg(long)]
    pub infill_weights: Option<PathBuf>,
    #[command(flatten)]
    pub settings: ExplainOverrides,
}

impl MethodArgs {
    /// The configuration these flags ask for, checked.
    pub fn config(&self) -> Result<ExplainConfig> {
        ExplainConfig::builder(self.method)
            .objective(self.objective)
            .infill(self.infill)
            .overrides(&self.settings)
            .ca_weights(self.infill_weights.is_some())
            .build()
    }

    /// The CA in-painter, when the configuration uses it.
    pub fn ca(&self, gpu: &Gpu, config: &ExplainConfig) -> Result<Option<CaSetup>> {
        match (config.infill, &self.infill_weights) {
            (InfillKind::Ca, Some(path)) => Ok(Some(CaSetup::new(CaGenerator::load(gpu, path)?))),
            _ => Ok(None),
        }
    }
}

/// The classifier and its weights, as `classify` and `explain` take them.
#[derive(Args)]
pub struct ModelArgs {
    /// The classifier: resnet18 resnet34 resnet50 resnet101 resnet152 vgg11 vgg13 vgg16 vgg19 alexnet
    /// efficientnet-lite0, or an ONNX file (a path ending in .onnx, or any existing file), which
    /// holds its own weights.
    #[arg(long, value_parser = parsed::<ModelSpec>)]
    pub model: ModelSpec,
    /// The built-in model's weights (.safetensors with the original state_dict names); not
    /// used with an ONNX model.
    #[arg(long)]
    pub weights: Option<PathBuf>,
    #[command(flatten)]
    pub preprocess: PreprocessArgs,
}

impl ModelArgs {
    pub fn load(&self, gpu: &Gpu) -> Result<LoadedModel> {
        load_model(gpu, &self.model, self.weights.as_deref(), &self.preprocess)
    }
}

/// How images become the model's input, on top of the model's own preprocessing.
#[derive(Args, Clone, Debug, Default)]
pub struct PreprocessArgs {
    /// imagenet (shorter side to 256·N/224, centre crop N, pixel/255, ImageNet mean and std),
    /// lite0 (stretch to N×N, (pixel − 127)/128 on 0..255, as the native efficientnet-lite0) or
    /// none (pixel/255 only, stretch to N×N) [default: a built-in model's own; imagenet for ONNX]
    #[arg(long, value_parser = parsed::<PreprocessPreset>)]
    pub preprocess: Option<PreprocessPreset>,
    /// Per-channel mean R,G,B replacing the preprocessing's, in its pixel units (0..1 for
    /// imagenet and none, 0..255 for lite0).
    #[arg(long, value_parser = channels, allow_hyphen_values = true)]
    pub mean: Option<[f32; 3]>,
    /// Per-channel standard deviation R,G,B replacing the preprocessing's (positive, same units).
    #[arg(long, value_parser = channels)]
    pub std: Option<[f32; 3]>,
    /// Input side N [default: an ONNX graph's declared input, else 224; a built-in model's own].
    #[arg(long)]
    pub size: Option<usize>,
}

impl PreprocessArgs {
    pub fn options(&self) -> PreprocessOptions {
        PreprocessOptions {
            preset: self.preprocess,
            mean: self.mean,
            std: self.std,
            size: self.size,
        }
    }
}

fn channels(text: &str) -> std::result::Result<[f32; 3], String> {
    fido::models::parse_channels(text).map_err(|e| match e {
        Error::InvalidArgument(message) => message,
        other => other.to_string(),
    })
}

/// Load the model `--model` names, and say once when its samples run one at a time.
pub fn load_model(
    gpu: &Gpu,
    spec: &ModelSpec,
    weights: Option<&std::path::Path>,
    preprocess: &PreprocessArgs,
) -> Result<LoadedModel> {
    let loaded = LoadedModel::open(gpu, spec, weights, &preprocess.options())?;
    if loaded.classifier.runs_one_at_a_time() {
        eprintln!(
            "note: {} was exported with batch 1; fido runs the samples of a batch one after another",
            loaded.name
        );
    }
    Ok(loaded)
}

/// A value parser for any of the library's `FromStr` types, reporting the library's message
/// without the "invalid argument" prefix (clap adds its own).
/// When the process started, for the start-up time the summaries report.
pub static LAUNCHED: OnceLock<Instant> = OnceLock::new();

/// `512M`, `2G`, `64K` (binary units) or a plain number of bytes.
pub fn parse_byte_size(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let scale: u64 = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => {
            return Err(format!(
                "`{text}` is not a size; write it as 512M, 2G or a number of bytes"
            ))
        }
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write it as 512M, 2G or a number of bytes"))?;
    match value.checked_mul(scale) {
        Some(0) => Err("the GPU memory limit must be more than 0 bytes".into()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("`{text}` is larger than any GPU")),
    }
}

pub fn parsed<T: FromStr<Err = Error>>(text: &str) -> std::result::Result<T, String> {
    text.parse::<T>().map_err(|e| match e {
        Error::InvalidArgument(message) => message,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_byte_size;

    #[test]
    fn byte_sizes_take_binary_units_and_refuse_nonsense() {
        assert_eq!(parse_byte_size("4096"), Ok(4096));
        assert_eq!(parse_byte_size("64K"), Ok(64 << 10));
        assert_eq!(parse_byte_size("512m"), Ok(512 << 20));
        assert_eq!(parse_byte_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("3GB"), Ok(3 << 30));
        for bad in ["", "G", "1.5G", "12X", "-1M", "0", "99999999999999G"] {
            let err = parse_byte_size(bad).unwrap_err();
            assert!(!err.contains('\n') && !err.is_empty(), "{bad}: {err}");
        }
    }
}
