//! The `fido` command line.

use std::process::ExitCode;
use std::time::Instant;

mod cli;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use fido::gpu::{describe, list_adapters};
use fido::ops::matmul::{self, MatmulShape};
use fido::{AdapterChoice, AdapterSelector, BackendSelector, Gpu, Tensor};

#[derive(Parser)]
#[command(
    name = "fido",
    version,
    about = "Explain image classifiers with FIDO saliency maps, on any GPU or on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the adapters, the one fido would choose, its limits and its features.
    Info {
        #[command(flatten)]
        adapter: AdapterArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Classify images (or a prepared input tensor) and print the top classes.
    Classify {
        #[command(flatten)]
        adapter: AdapterArgs,
        /// resnet18 resnet34 resnet50 resnet101 resnet152 vgg11 vgg13 vgg16 vgg19 alexnet efficientnet-lite0
        #[arg(long)]
        model: String,
        /// The model's weights (.safetensors with the original state_dict names).
        #[arg(long)]
        weights: PathBuf,
        /// One or more images; they are classified as one batch.
        #[arg(long, num_args = 1.., conflicts_with = "input")]
        image: Vec<PathBuf>,
        /// A .safetensors file whose tensor `input` (N×3×H×W, already normalised) is classified as is.
        #[arg(long)]
        input: Option<PathBuf>,
        /// A CSV of labelled images (`file,label,...`): report top-1 and top-5 accuracy instead.
        #[arg(long)]
        manifest: Option<PathBuf>,
        /// How many classes to list per image.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Print one JSON object with the full logits.
        #[arg(long)]
        json: bool,
    },
    /// Explain a classifier's decision with a FIDO (or BBMP) saliency map.
    Explain(ExplainArgs),
    /// Measure saliency maps on a labelled, boxed manifest: off-box ratio, pixel removal,
    /// saliency metric, seed stability and in-filler quality, with plots and an HTML report.
    Eval(EvalCli),
    /// Fill the white pixels of a mask with the Contextual Attention in-painter (DeepFill v1).
    Infill {
        #[command(flatten)]
        adapter: AdapterArgs,
        /// The in-painter's weights, converted from the authors' TF checkpoint with `fido convert`.
        #[arg(long)]
        weights: PathBuf,
        #[arg(long)]
        image: PathBuf,
        /// White where pixels are to be filled; same size as the image.
        #[arg(long)]
        mask: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Convert a checkpoint to safetensors, keeping tensor names: PyTorch .pth (zip or legacy
    /// format), or a TensorFlow checkpoint (its prefix or its .index file).
    Convert {
        /// The checkpoint to read.
        input: std::path::PathBuf,
        /// The .safetensors file to write.
        output: std::path::PathBuf,
    },
    /// Run a matrix multiply on the chosen adapter, check it against the CPU and report its speed.
    Check {
        #[command(flatten)]
        adapter: AdapterArgs,
        /// Matrix side.
        #[arg(long, default_value_t = 512)]
        size: usize,
    },
}

#[derive(Args, Clone)]
struct AdapterArgs {
    /// auto (best hardware GPU, else software), gpu, cpu, or part of an adapter's name.
    #[arg(long, default_value = "auto")]
    adapter: String,
    /// auto, vulkan, metal, dx12 or gl.
    #[arg(long, default_value = "auto")]
    backend: String,
}

/// `fido eval` options.
#[derive(Args)]
struct EvalCli {
    #[command(flatten)]
    adapter: AdapterArgs,
    /// The classifier (see `fido classify --help`); not needed with --merge.
    #[arg(long, required_unless_present = "merge")]
    model: Option<String>,
    /// The classifier's weights (safetensors).
    #[arg(long, required_unless_present = "merge")]
    weights: Option<PathBuf>,
    /// CSV with file, label, ..., boxes_xyxy columns (like imagenet-val/manifest.csv).
    #[arg(long, required_unless_present = "merge")]
    manifest: Option<PathBuf>,
    /// Output folder; rerunning with the same settings resumes where a run stopped.
    #[arg(long)]
    out: PathBuf,
    /// Configurations to compare, `method[-objective]:infill`, e.g. fido:local fido-sdr:local bbmp:blur
    /// (fido:ca needs --infill-weights).
    #[arg(long = "config", num_args = 1.., default_values_t = ["fido:local".to_string(), "fido-sdr:local".to_string(), "bbmp:blur".to_string()])]
    configs: Vec<String>,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Reuse `fido explain` output folders: CONFIG=DIR (DIR/<image stem>/saliency.safetensors).
    #[arg(long)]
    reuse: Vec<String>,
    /// Weights of the CA in-painter, for `...:ca` configurations, --removal-infill ca and
    /// --infill-quality ca.
    #[arg(long)]
    infill_weights: Option<PathBuf>,
    /// The in-filler that replaces removed pixels in the pixel-removal curve (mean, blur,
    /// random, local, or ca with --infill-weights).
    #[arg(long, default_value = "blur")]
    removal_infill: String,
    /// Step of the removed-fraction grid.
    #[arg(long, default_value_t = 0.05)]
    removal_step: f64,
    /// Skip the pixel-removal curve.
    #[arg(long)]
    no_removal: bool,
    /// Skip the off-box ratio.
    #[arg(long)]
    no_off_box: bool,
    /// Skip the Dabkowski & Gal saliency metric.
    #[arg(long)]
    no_saliency: bool,
    /// Explain each image a second time with seed+1 and compare the MAP masks.
    #[arg(long)]
    stability: bool,
    /// In-fillers to score under random pixel masks, e.g. mean,blur,random,local,ca (empty: skip).
    #[arg(long, default_value = "")]
    infill_quality: String,
    /// Fractions of pixels dropped at random for --infill-quality.
    #[arg(long, default_value = "0.25,0.5,0.75")]
    drop_rates: String,
    /// Random masks per drop rate and in-filler.
    #[arg(long, default_value_t = 4)]
    infill_samples: usize,
    /// Images per classifier pass when scoring.
    #[arg(long, default_value_t = 8)]
    score_batch: usize,
    /// Score images the classifier gets wrong too.
    #[arg(long)]
    all_images: bool,
    /// Example maps per configuration in the HTML report.
    #[arg(long, default_value_t = 8)]
    examples: usize,
    /// Process only shard K of N (0-based), e.g. 3/8; merge the shards with --merge.
    #[arg(long, default_value = "0/1")]
    shard: String,
    /// Merge these shard output folders into --out instead of evaluating.
    #[arg(long, num_args = 1..)]
    merge: Vec<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Method settings shared by `fido explain` and `fido eval`; unset ones take the method's
/// defaults, which are the paper's.
#[derive(Args)]
struct SettingsArgs {
    /// Optimisation steps [default: 300].
    #[arg(long)]
    steps: Option<usize>,
    /// Mask samples per FIDO step [default: 8]; BBMP always optimises one image.
    #[arg(long)]
    batch: Option<usize>,
    /// Sparsity weight [default: 1e-3 for FIDO, 5e-3 for BBMP].
    #[arg(long)]
    lambda: Option<f32>,
    /// Adam learning rate, decayed linearly to 0 [default: 0.05].
    #[arg(long)]
    lr: Option<f32>,
    /// Side of the mask grid [default: 56].
    #[arg(long)]
    mask_size: Option<usize>,
    /// Concrete relaxation temperature [default: 0.1].
    #[arg(long)]
    temperature: Option<f32>,
    /// Total-variation weight on the upsampled mask [default: 0, off].
    #[arg(long)]
    tv: Option<f32>,
    /// Seed of the mask samples [default: 0].
    #[arg(long)]
    seed: Option<u64>,
}

impl SettingsArgs {
    fn overrides(&self) -> fido::explain::ExplainOverrides {
        fido::explain::ExplainOverrides {
            steps: self.steps,
            batch: self.batch,
            mask_size: self.mask_size,
            lambda: self.lambda,
            lr: self.lr,
            temperature: self.temperature,
            tv: self.tv,
            seed: self.seed,
        }
    }
}

/// `fido explain` options; defaults are the paper's.
#[derive(Args)]
struct ExplainArgs {
    #[command(flatten)]
    adapter: AdapterArgs,
    /// The classifier (see `fido classify --help`).
    #[arg(long)]
    model: String,
    #[arg(long)]
    weights: PathBuf,
    /// Image files or folders; several give one output folder each and a gallery.
    #[arg(long, num_args = 1..)]
    image: Vec<PathBuf>,
    /// A CSV of `file,label,...` rows (like imagenet-val/manifest.csv); images beside it or in images/.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// The class to explain; default: the ground truth from a manifest, else the top-1 prediction.
    #[arg(long)]
    label: Option<usize>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// fido or bbmp.
    #[arg(long, default_value = "fido")]
    method: String,
    /// ssr (smallest sufficient region) or sdr (smallest destroying region).
    #[arg(long, default_value = "ssr")]
    objective: String,
    /// mean, blur, random, local or ca (default: local for FIDO, blur for BBMP).
    #[arg(long)]
    infill: Option<String>,
    /// Weights of the CA in-painter, for --infill ca.
    #[arg(long)]
    infill_weights: Option<PathBuf>,
    #[command(flatten)]
    settings: SettingsArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

impl AdapterArgs {
    fn gpu(&self) -> fido::Result<Gpu> {
        Gpu::new(&self.choice()?)
    }

    fn choice(&self) -> fido::Result<AdapterChoice> {
        Ok(AdapterChoice {
            adapter: self.adapter.parse::<AdapterSelector>()?,
            backend: self.backend.parse::<BackendSelector>()?,
        })
    }
}

fn main() -> ExitCode {
    // Mesa warns on every device creation when this is unset; the warning is harmless.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { adapter, json } => info(&adapter, json),
        Command::Check { adapter, size } => check(&adapter, size),
        Command::Convert { input, output } => convert(&input, &output),
        Command::Classify {
            adapter,
            model,
            weights,
            image,
            input,
            manifest,
            top,
            json,
        } => adapter.gpu().and_then(|gpu| {
            cli::classify::run(
                &gpu,
                &model,
                &weights,
                &image,
                input.as_deref(),
                manifest.as_deref(),
                top,
                json,
            )
        }),
        Command::Explain(args) => explain(args),
        Command::Eval(args) => eval(args),
        Command::Infill {
            adapter,
            weights,
            image,
            mask,
            out,
        } => adapter
            .gpu()
            .and_then(|gpu| cli::infill::run(&gpu, &weights, &image, &mask, &out)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn info(args: &AdapterArgs, as_json: bool) -> fido::Result<()> {
    let choice = args.choice()?;
    let adapters: Vec<_> = list_adapters(choice.backend)
        .iter()
        .map(|a| a.get_info())
        .collect();
    let gpu = Gpu::new(&choice)?;
    let limits = gpu.limits();
    let limit_rows: Vec<(&str, u64)> = vec![
        ("max_buffer_size", limits.max_buffer_size),
        (
            "max_storage_buffer_binding_size",
            limits.max_storage_buffer_binding_size.into(),
        ),
        (
            "max_uniform_buffer_binding_size",
            limits.max_uniform_buffer_binding_size.into(),
        ),
        (
            "max_storage_buffers_per_shader_stage",
            limits.max_storage_buffers_per_shader_stage.into(),
        ),
        ("max_bind_groups", limits.max_bind_groups.into()),
        (
            "max_compute_workgroup_storage_size",
            limits.max_compute_workgroup_storage_size.into(),
        ),
        (
            "max_compute_invocations_per_workgroup",
            limits.max_compute_invocations_per_workgroup.into(),
        ),
        (
            "max_compute_workgroup_size_x",
            limits.max_compute_workgroup_size_x.into(),
        ),
        (
            "max_compute_workgroup_size_y",
            limits.max_compute_workgroup_size_y.into(),
        ),
        (
            "max_compute_workgroup_size_z",
            limits.max_compute_workgroup_size_z.into(),
        ),
        (
            "max_compute_workgroups_per_dimension",
            limits.max_compute_workgroups_per_dimension.into(),
        ),
        (
            "min_storage_buffer_offset_alignment",
            limits.min_storage_buffer_offset_alignment.into(),
        ),
        (
            "min_uniform_buffer_offset_alignment",
            limits.min_uniform_buffer_offset_alignment.into(),
        ),
    ];
    let features: Vec<String> = gpu
        .features()
        .iter_names()
        .map(|(name, _)| name.to_string())
        .collect();
    if as_json {
        let list: Vec<_> = adapters.iter().map(adapter_json).collect();
        let out = json!({
            "adapters": list,
            "chosen": adapter_json(gpu.info()),
            "limits": limit_rows.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "features": features,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("JSON of plain values")
        );
        return Ok(());
    }
    println!("Adapters:");
    for a in &adapters {
        println!("  {}", describe(a));
    }
    let info = gpu.info();
    println!("Chosen: {}", describe(info));
    println!("  driver: {} {}", info.driver, info.driver_info);
    println!("Limits:");
    for (k, v) in &limit_rows {
        println!("  {k:<40} {v}");
    }
    println!("Features used by fido when present:");
    for f in &features {
        println!("  {f}");
    }
    Ok(())
}

fn adapter_json(info: &wgpu::AdapterInfo) -> serde_json::Value {
    json!({
        "name": info.name,
        "backend": format!("{:?}", info.backend),
        "device_type": format!("{:?}", info.device_type),
        "driver": info.driver,
        "driver_info": info.driver_info,
        "vendor": info.vendor,
        "device": info.device,
    })
}

fn eval(a: EvalCli) -> fido::Result<()> {
    if !a.merge.is_empty() {
        return cli::eval::merge(&a.merge, &a.out);
    }
    let missing = |what: &str| fido::Error::InvalidArgument(format!("fido eval needs --{what}"));
    let args = cli::eval::EvalArgs {
        model: a.model.ok_or_else(|| missing("model"))?,
        weights: a.weights.ok_or_else(|| missing("weights"))?,
        manifest: a.manifest.ok_or_else(|| missing("manifest"))?,
        out: a.out,
        configs: a.configs,
        overrides: a.settings.overrides(),
        reuse: a.reuse,
        infill_weights: a.infill_weights,
        removal_infill: a.removal_infill,
        removal_step: a.removal_step,
        no_removal: a.no_removal,
        no_off_box: a.no_off_box,
        no_saliency: a.no_saliency,
        stability: a.stability,
        infill_quality: a.infill_quality,
        drop_rates: a.drop_rates,
        infill_samples: a.infill_samples,
        score_batch: a.score_batch,
        all_images: a.all_images,
        examples: a.examples,
        shard: a.shard,
        quiet: a.quiet,
    };
    let gpu = a.adapter.gpu()?;
    cli::eval::run(&gpu, &args)
}

fn explain(a: ExplainArgs) -> fido::Result<()> {
    use fido::explain::{ExplainConfig, InfillKind, Method, Objective};
    let method: Method = a.method.parse()?;
    let paper = ExplainConfig::paper(method);
    let infill: InfillKind = match &a.infill {
        Some(s) => s.parse()?,
        None => paper.infill,
    };
    if infill == InfillKind::Ca && a.infill_weights.is_none() {
        return Err(fido::Error::InvalidArgument(
            "--infill ca needs --infill-weights CA.safetensors".into(),
        ));
    }
    let mut config = ExplainConfig {
        objective: a.objective.parse::<Objective>()?,
        infill,
        ..paper
    };
    a.settings.overrides().apply(&mut config)?;
    let jobs = cli::explain::collect_jobs(&a.image, a.manifest.as_deref(), a.label)?;
    let gpu = a.adapter.gpu()?;
    let ca = match (infill, &a.infill_weights) {
        (InfillKind::Ca, Some(path)) => Some(fido::inpaint::CaSetup::new(fido::inpaint::CaGenerator::load(
            &gpu, path,
        )?)),
        _ => None,
    };
    cli::explain::run(&gpu, &a.model, &a.weights, &jobs, &a.out, config, ca, a.json)
}

fn convert(input: &std::path::Path, output: &std::path::Path) -> fido::Result<()> {
    println!("{}", fido::weights::convert(input, output)?);
    Ok(())
}

fn check(args: &AdapterArgs, size: usize) -> fido::Result<()> {
    if size == 0 || size > 4096 {
        return Err(fido::Error::InvalidArgument(format!(
            "--size {size}: choose 1 to 4096"
        )));
    }
    let gpu = Gpu::new(&args.choice()?)?;
    println!("adapter: {}", gpu.adapter_name());
    let a_host: Vec<f32> = (0..size * size)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
        .collect();
    let b_host: Vec<f32> = (0..size * size)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let a = Tensor::from_slice(&gpu, &[size, size], &a_host)?;
    let b = Tensor::from_slice(&gpu, &[size, size], &b_host)?;
    let c = matmul::matmul(&a, &b, false, false)?;
    gpu.sync()?;
    let start = Instant::now();
    let c2 = matmul::matmul(&a, &b, false, false)?;
    gpu.sync()?;
    let secs = start.elapsed().as_secs_f64();
    let got = c.to_vec()?;
    drop(c2);
    let mut worst = 0.0f64;
    for s in 0..64 {
        let (i, j) = ((s * 7919) % size, (s * 104_729) % size);
        let want: f64 = (0..size)
            .map(|k| a_host[i * size + k] as f64 * b_host[k * size + j] as f64)
            .sum();
        worst = worst.max((got[i * size + j] as f64 - want).abs() / (1.0 + want.abs()));
    }
    let flops = MatmulShape::infer(&[size, size], &[size, size], false, false)?
        .cost()
        .flops;
    println!(
        "matmul {size}³: {:.1} ms, {:.2} GFLOP/s, max relative error {worst:.1e}",
        secs * 1e3,
        flops / secs / 1e9
    );
    if worst > 1e-4 {
        return Err(fido::Error::Gpu(format!(
            "matmul result differs from the CPU by {worst:.1e}"
        )));
    }
    println!("ok");
    Ok(())
}
