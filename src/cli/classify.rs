//! `fido classify`: top-K classes for images or a prepared input tensor.

use std::path::{Path, PathBuf};

use serde_json::json;

use fido::imageio::{self, Normalize, Resize};
use fido::models::{Classifier, ModelKind, Preprocess, ResizeMode};
use fido::ops::softmax;
use fido::weights::WeightFile;
use fido::{Error, Gpu, Result, Tape, Tensor};

/// The image pipeline a model's preprocessing description asks for.
pub fn image_pipeline(p: &Preprocess) -> Result<(Resize, Normalize)> {
    let [h, w] = p.input_size;
    if h != w {
        return Err(Error::InvalidArgument(format!(
            "non-square model inputs ({h}×{w}) are not supported"
        )));
    }
    let resize = match p.resize {
        ResizeMode::ShorterSideThenCenterCrop { shorter_side } => Resize::ShorterThenCentreCrop {
            shorter: shorter_side as u32,
            crop: h as u32,
        },
        ResizeMode::Stretch => Resize::Stretch { size: h as u32 },
    };
    Ok((
        resize,
        Normalize {
            range: p.pixel_range,
            mean: p.mean,
            std: p.std,
        },
    ))
}

pub struct Loaded {
    pub kind: ModelKind,
    pub classifier: Classifier,
    pub resize: Resize,
    pub norm: Normalize,
}

pub fn load_model(gpu: &Gpu, model: &str, weights: &Path) -> Result<Loaded> {
    let kind: ModelKind = model.parse()?;
    let file = WeightFile::open(weights)?;
    let classifier = Classifier::load(gpu, kind, &file)?;
    let (resize, norm) = image_pipeline(&classifier.preprocess())?;
    Ok(Loaded {
        kind,
        classifier,
        resize,
        norm,
    })
}

/// Decode and preprocess images for `loaded` into one `[N, 3, S, S]` batch.
fn prepare_batch(paths: &[&Path], loaded: &Loaded) -> Result<(Vec<usize>, Vec<f32>)> {
    let mut values = Vec::new();
    let mut size = 0;
    for path in paths {
        let prepared = imageio::prepare(&imageio::load_rgb(path)?, loaded.resize, &loaded.norm);
        size = prepared.size as usize;
        values.extend(prepared.chw);
    }
    Ok((vec![paths.len(), 3, size, size], values))
}

/// Class indices from the highest score to the lowest.
fn ranked(row: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    order
}

/// Read the tensor named `input` (N×3×H×W f32) from a safetensors file.
pub fn read_input_tensor(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let file = WeightFile::open(path)?;
    let shape = file.shape("input")?;
    if shape.len() != 4 || shape[1] != 3 {
        return Err(Error::Shape {
            op: "classify",
            detail: format!("`input` must be N×3×H×W, got {shape:?}"),
        });
    }
    Ok((shape, file.get_f32("input")?))
}

/// Images per forward pass when scoring a manifest: keeps activations within one binding.
const MANIFEST_CHUNK: usize = 16;

/// Top-1 and top-5 accuracy over a manifest of labelled images (`file,label,...`).
pub fn accuracy(gpu: &Gpu, model: &str, weights: &Path, manifest: &Path, as_json: bool) -> Result<()> {
    let jobs = super::explain::collect_jobs(&[], Some(manifest), None)?;
    let loaded = load_model(gpu, model, weights)?;
    let bar = indicatif::ProgressBar::new(jobs.len() as u64);
    let (mut top1, mut top5) = (0usize, 0usize);
    let mut rows = Vec::new();
    for chunk in jobs.chunks(MANIFEST_CHUNK) {
        let paths: Vec<&Path> = chunk.iter().map(|j| j.path.as_path()).collect();
        let (shape, values) = prepare_batch(&paths, &loaded)?;
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
    if as_json {
        let out = json!({"model": loaded.kind.to_string(), "adapter": gpu.adapter_name(), "images": jobs.len(),
            "top1": top1 as f64 / n, "top5": top5 as f64 / n, "results": rows});
        println!("{}", serde_json::to_string(&out).expect("JSON of plain values"));
    } else {
        println!(
            "{}: top-1 {:.1}% ({top1}/{}), top-5 {:.1}% on {}",
            loaded.kind,
            100.0 * top1 as f64 / n,
            jobs.len(),
            100.0 * top5 as f64 / n,
            manifest.display()
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    gpu: &Gpu,
    model: &str,
    weights: &Path,
    images: &[PathBuf],
    input: Option<&Path>,
    manifest: Option<&Path>,
    top: usize,
    as_json: bool,
) -> Result<()> {
    if let Some(manifest) = manifest {
        if !images.is_empty() || input.is_some() {
            return Err(Error::InvalidArgument(
                "--manifest scores a labelled set; do not add --image or --input".into(),
            ));
        }
        return accuracy(gpu, model, weights, manifest, as_json);
    }
    if images.is_empty() == input.is_none() {
        return Err(Error::InvalidArgument(
            "give either --image (one or more) or --input, not both".into(),
        ));
    }
    if top == 0 {
        return Err(Error::InvalidArgument("--top must be at least 1".into()));
    }
    let loaded = load_model(gpu, model, weights)?;
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
            let (shape, values) = prepare_batch(&paths, &loaded)?;
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
        if as_json {
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
    if as_json {
        let out =
            json!({"model": loaded.kind.to_string(), "adapter": gpu.adapter_name(), "results": results});
        println!("{}", serde_json::to_string(&out).expect("JSON of plain values"));
    }
    Ok(())
}
