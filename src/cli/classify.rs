//! `fido classify`: top-K classes for images or a prepared input tensor, or top-1 and top-5
//! accuracy over a labelled manifest.

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use fido::dataset::collect_images;
use fido::models::read_input_tensor;
use fido::ops::softmax;
use fido::{Error, Gpu, Result, Tape, Tensor};

use super::{AdapterArgs, ModelArgs};

#[derive(Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub adapter: AdapterArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// One or more images; they are classified as one batch.
    #[arg(long, num_args = 1.., conflicts_with = "input")]
    pub image: Vec<PathBuf>,
    /// A .safetensors file whose tensor `input` (N×3×H×W, already normalised) is classified as is.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// A CSV of labelled images (`file,label,...`): report top-1 and top-5 accuracy instead.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// How many classes to list per image.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print one JSON object with the full logits.
    #[arg(long)]
    pub json: bool,
}

/// Class indices from the highest score to the lowest.
fn ranked(row: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    order
}

/// Images per forward pass when scoring a manifest: keeps activations within one binding.
const MANIFEST_CHUNK: usize = 16;

/// Top-1 and top-5 accuracy over a manifest of labelled images (`file,label,...`).
fn accuracy(gpu: &Gpu, args: &ClassifyArgs, manifest: &Path) -> Result<()> {
    let jobs = collect_images(&[], Some(manifest), None)?;
    let loaded = args.model.load(gpu)?;
    // A label the model cannot output would count as a silent miss: refuse it up front.
    let classes = loaded.classifier.num_classes();
    if let Some(job) = jobs.iter().find(|j| j.label.is_some_and(|l| l >= classes)) {
        return Err(Error::InvalidArgument(format!(
            "{}: label {} of `{}` is out of range: the model has {classes} classes",
            manifest.display(),
            job.label.unwrap_or_default(),
            job.path.display()
        )));
    }
    let bar = indicatif::ProgressBar::new(jobs.len() as u64);
    let (mut top1, mut top5) = (0usize, 0usize);
    let mut rows = Vec::new();
    for chunk in jobs.chunks(MANIFEST_CHUNK) {
        let paths: Vec<&Path> = chunk.iter().map(|j| j.path.as_path()).collect();
        let (shape, values) = loaded.prepare_batch(&paths)?;
        let x = Tensor::from_slice(gpu, &shape, &values)?;
        let logits = Tape::new().no_grad_forward(&loaded.classifier, &x)?;
        let classes = logits.shape()[1];
        let logits = logits.to_vec()?;
        for (i, job) in chunk.iter().enumerate() {
            let row = &logits[i * classes..(i + 1) * classes];
            let order = ranked(row);
            let label = job.label.unwrap_or(usize::MAX);
            top1 += (order[0] == label) as usize;
            top5 += order[..5.min(classes)].contains(&label) as usize;
            rows.push(serde_json::json!({"source": job.path.display().to_string(), "label": label, "top1": order[0]}));
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let n = jobs.len() as f64;
    if args.json {
        let out = json!({"model": loaded.name, "adapter": gpu.adapter_name(), "images": jobs.len(),
            "top1": top1 as f64 / n, "top5": top5 as f64 / n, "results": rows});
        println!("{}", serde_json::to_string(&out).expect("JSON of plain values"));
    } else {
        println!(
            "{}: top-1 {:.1}% ({top1}/{}), top-5 {:.1}% on {}",
            loaded.name,
            100.0 * top1 as f64 / n,
            jobs.len(),
            100.0 * top5 as f64 / n,
            manifest.display()
        );
    }
    Ok(())
}

pub fn run(args: &ClassifyArgs) -> Result<()> {
    let gpu = &args.adapter.gpu()?;
    let (images, input, top) = (&args.image, args.input.as_deref(), args.top);
    if let Some(manifest) = &args.manifest {
        if !images.is_empty() || input.is_some() {
            return Err(Error::InvalidArgument(
                "--manifest scores a labelled set; do not add --image or --input".into(),
            ));
        }
        return accuracy(gpu, args, manifest);
    }
    if images.is_empty() == input.is_none() {
        return Err(Error::InvalidArgument(
            "give either --image (one or more) or --input, not both".into(),
        ));
    }
    if top == 0 {
        return Err(Error::InvalidArgument("--top must be at least 1".into()));
    }
    let loaded = args.model.load(gpu)?;
    let (shape, values, sources) = match input {
        Some(path) => {
            let (shape, values) = read_input_tensor(path)?;
            let sources = (0..shape[0])
                .map(|i| format!("{}[{i}]", path.display()))
                .collect::<Vec<_>>();
            (shape, values, sources)
        }
        None => {
            let paths: Vec<&Path> = images.iter().map(PathBuf::as_path).collect();
            let (shape, values) = loaded.prepare_batch(&paths)?;
            let sources = images.iter().map(|p| p.display().to_string()).collect();
            (shape, values, sources)
        }
    };
    let x = Tensor::from_slice(gpu, &shape, &values)?;
    let logits = Tape::new().no_grad_forward(&loaded.classifier, &x)?;
    let classes = logits.shape()[1];
    let probs = softmax::softmax(&logits)?.to_vec()?;
    let logits = logits.to_vec()?;
    let mut results = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let row = &probs[i * classes..(i + 1) * classes];
        let order = ranked(row);
        let best: Vec<_> = order.iter().take(top.min(classes)).copied().collect();
        if args.json {
            results.push(json!({
                "source": source,
                "top": best.iter().map(|&c| json!({
                    "index": c,
                    "label": fido::classes::name(c, classes),
                    "prob": row[c],
                    "logit": logits[i * classes + c],
                })).collect::<Vec<_>>(),
                "logits": &logits[i * classes..(i + 1) * classes],
            }));
        } else {
            println!("{source}");
            for &c in &best {
                println!(
                    "  {:>6.2}%  {:>4}  {}",
                    100.0 * row[c],
                    c,
                    fido::classes::name(c, classes)
                );
            }
        }
    }
    if args.json {
        let out = json!({"model": loaded.name, "adapter": gpu.adapter_name(), "results": results});
        println!("{}", serde_json::to_string(&out).expect("JSON of plain values"));
    }
    Ok(())
}
