//! `fido explain`: saliency maps for one image or many, with a progress bar and a gallery.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use fido::dataset::{collect_images, ImageJob};
use fido::explain::report::{self, RunInfo};
use fido::explain::{CaSetup, ExplainConfig, Explainer};
use fido::imageio::{self, SourceToModel};
use fido::models::{read_input_tensor, LoadedModel};
use fido::{fsio, Error, Gpu, Result, Tensor};

use super::{AdapterArgs, MethodArgs, ModelArgs};

/// `fido explain` options; defaults are the paper's.
#[derive(Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub adapter: AdapterArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Image files or folders; several give one output folder each and a gallery.
    #[arg(long, num_args = 1.., conflicts_with = "input")]
    pub image: Vec<PathBuf>,
    /// A .safetensors file whose tensor `input` (1×3×H×W, already normalised) is explained as
    /// is; overlay.png shows it de-normalised with the model's preprocessing.
    #[arg(long, conflicts_with = "manifest")]
    pub input: Option<PathBuf>,
    /// A CSV of `file,label,...` rows (like imagenet-val/manifest.csv); images beside it or in images/.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// The class to explain; default: the ground truth from a manifest, else the top-1 prediction.
    #[arg(long)]
    pub label: Option<usize>,
    /// Output folder (one subfolder per image when there are several).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub how: MethodArgs,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// With several images, explain every one again, also those whose folder holds a
    /// finished explanation with the same settings (by default these are skipped, so a
    /// stopped batch resumes where it was).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &ExplainArgs) -> Result<()> {
    let config = args.how.config()?;
    let jobs = match &args.input {
        Some(path) => vec![ImageJob {
            path: path.clone(),
            label: args.label,
        }],
        None => collect_images(&args.image, args.manifest.as_deref(), args.label)?,
    };
    let gpu = args.adapter.gpu()?;
    let ca = args.how.ca(&gpu, &config)?;
    let loaded = args.model.load(&gpu)?;
    let out = args.out.as_path();
    let batch_mode = jobs.len() > 1;
    let dirs: Vec<PathBuf> = (0..jobs.len())
        .map(|i| {
            if batch_mode {
                out.join(unique_stem(&jobs[i].path, i, &jobs))
            } else {
                out.to_path_buf()
            }
        })
        .collect();
    // A killed run leaves at most temporaries behind: remove them before anything else.
    fsio::remove_stale_temporaries(out)?;
    for dir in &dirs {
        fsio::remove_stale_temporaries(dir)?;
    }
    // In a batch, folders a run before this one finished with the same settings are kept.
    let done: Vec<Option<serde_json::Value>> = jobs
        .iter()
        .zip(&dirs)
        .map(|(job, dir)| {
            let source = job.path.display().to_string();
            (batch_mode && !args.force)
                .then(|| report::finished(dir, &config, &loaded.name, &source, job.label))
                .flatten()
        })
        .collect();
    let skipped = done.iter().filter(|d| d.is_some()).count();
    if skipped > 0 {
        eprintln!(
            "skipped {skipped} finished of {} images in {} (--force redoes them)",
            jobs.len(),
            out.display()
        );
    }
    let index = out.join("index.html");
    let mut summaries = Vec::new();
    for (i, (job, finished)) in jobs.iter().zip(done).enumerate() {
        let dir = dirs[i].clone();
        if let Some(summary) = finished {
            summaries.push((dir, summary));
            continue;
        }
        let label = if batch_mode {
            format!("[{}/{}] ", i + 1, jobs.len())
        } else {
            String::new()
        };
        // The first image's set-up counts from launch: adapter, weights and all.
        let since = if i == 0 {
            *super::LAUNCHED.get().unwrap_or(&Instant::now())
        } else {
            Instant::now()
        };
        let summary = explain_one(
            &gpu,
            &loaded,
            job,
            args.input.is_some(),
            &dir,
            config.clone(),
            ca.as_ref(),
            &label,
            since,
        )?;
        if args.json && !batch_mode {
            println!(
                "{}",
                serde_json::to_string(&summary).expect("JSON of plain values")
            );
        }
        summaries.push((dir, summary));
        // The gallery grows with the run, so a long batch can be looked at while it goes.
        if batch_mode {
            fsio::write_atomic(&index, gallery(out, &summaries).as_bytes())?;
        }
    }
    if batch_mode {
        fsio::write_atomic(&index, gallery(out, &summaries).as_bytes())?;
        if args.json {
            let all: Vec<_> = summaries.iter().map(|(_, s)| s.clone()).collect();
            println!("{}", serde_json::to_string(&all).expect("JSON of plain values"));
        } else {
            println!("gallery: {}", index.display());
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn explain_one(
    gpu: &Gpu,
    loaded: &LoadedModel,
    job: &ImageJob,
    tensor_input: bool,
    dir: &Path,
    config: ExplainConfig,
    ca: Option<&CaSetup>,
    prefix: &str,
    since: Instant,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    let input = if tensor_input {
        prepare_tensor(loaded, &job.path)?
    } else {
        let p = loaded.prepare_image(&job.path)?;
        let size = p.size as usize;
        Input {
            shape: [1, 3, size, size],
            chw: p.chw,
            picture: p.picture,
            source_to_model: p.source_to_model,
        }
    };
    let x = Tensor::from_slice(gpu, &input.shape, &input.chw)?;
    let steps = config.steps;
    let infiller = fido::explain::infill::build(config.infill, &x, loaded.norm, ca)?;
    let mut explainer = Explainer::new(
        &loaded.classifier,
        &x,
        job.label,
        loaded.norm,
        config,
        Some(infiller),
    )?;
    let target = explainer.target();
    let classes = loaded.classifier.num_classes();
    let name = fido::classes::name(target, classes);
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix}{bar:30} {pos}/{len} steps  {per_sec}  eta {eta}  {msg}")
            .expect("a valid template"),
    );
    bar.set_prefix(format!(
        "{prefix}{} ",
        job.path
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default()
    ));
    // Reading the score back waits for the GPU, so do it only every few steps.
    let every = (steps / 60).clamp(1, 10);
    let setup_seconds = since.elapsed().as_secs_f64();
    // On failure (a lost device, no memory left) clear the bar, so the error is one line.
    let explanation = explainer
        .run(every, |p| {
            bar.set_position(p.step as u64);
            bar.set_message(format!("log-odds {:+.2}", p.score));
        })
        .and_then(|()| explainer.finish());
    bar.finish_and_clear();
    let explanation = explanation?;
    let info = RunInfo {
        model: &loaded.name,
        adapter: &gpu.adapter_name(),
        source: &job.path.display().to_string(),
        target_name: &name,
        source_to_model: input.source_to_model,
    };
    let mut summary = report::write(dir, &explanation, &input.picture, &info)?;
    if tensor_input {
        summary["picture"] = json!("the input tensor de-normalised with the model's preprocessing");
    }
    summary["wall_seconds"] = json!(started.elapsed().as_secs_f64());
    summary["setup_seconds"] = json!(setup_seconds);
    report::write_summary(dir, &summary)?;
    eprintln!(
        "{prefix}{}: class {target} ({name}), p {:.3} → {:.3} with the MAP mask, {:.0}% important, {:.1} s → {}",
        job.path.display(),
        explanation.prob_before,
        explanation.prob_with_map,
        100.0 * summary["map_mask_fraction"].as_f64().unwrap_or(0.0),
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(summary)
}

/// A model input with the picture its overlay is drawn on.
struct Input {
    shape: [usize; 4],
    chw: Vec<f32>,
    picture: image::RgbImage,
    source_to_model: SourceToModel,
}

/// The tensor `input` of a safetensors file, 1×3×H×W and already normalised. The picture
/// is the tensor de-normalised with the model's preprocessing (the only one fido knows of),
/// and source pixels are model pixels.
fn prepare_tensor(loaded: &LoadedModel, path: &Path) -> Result<Input> {
    let (shape, chw) = read_input_tensor(path)?;
    if shape[0] != 1 {
        return Err(Error::InvalidArgument(format!(
            "`{}`: explain takes one image, `input` 1×3×H×W, but it holds {shape:?}; fido classify takes batches",
            path.display()
        )));
    }
    let (h, w) = (shape[2], shape[3]);
    if let Some([mh, mw]) = loaded.classifier.fixed_input_size() {
        if [h, w] != [mh, mw] {
            return Err(Error::InvalidArgument(format!(
                "`{}` holds a {h}×{w} input; {} takes [N, 3, {mh}, {mw}] inputs",
                path.display(),
                loaded.name
            )));
        }
    }
    Ok(Input {
        shape: [1, 3, h, w],
        picture: imageio::to_picture_hw(&chw, w as u32, h as u32, &loaded.norm),
        chw,
        source_to_model: SourceToModel {
            scale_x: 1.0,
            scale_y: 1.0,
            offset_x: 0.0,
            offset_y: 0.0,
        },
    })
}

/// A folder name per image: its file stem, made unique by its position when stems repeat.
fn unique_stem(path: &Path, index: usize, jobs: &[ImageJob]) -> String {
    let stem = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "image".into())
    };
    let mine = stem(path);
    if jobs.iter().filter(|j| stem(&j.path) == mine).count() > 1 {
        format!("{index:04}-{mine}")
    } else {
        mine
    }
}

fn gallery(out: &Path, summaries: &[(PathBuf, serde_json::Value)]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut rows = String::new();
    for (dir, s) in summaries {
        let rel = dir.strip_prefix(out).unwrap_or(dir).display().to_string();
        let source = s["source"].as_str().unwrap_or("");
        rows.push_str(&format!(
            "<tr><td><img src=\"{rel}/overlay.png\"></td><td><img src=\"{rel}/heatmap.png\"></td><td>\
             <b>{}</b><br>class {} — {}<br>p before: {:.3}<br>p with MAP mask: {:.3}<br>important: {:.1}%<br>{:.1} s</td></tr>\n",
            esc(source),
            s["target"]["label"],
            esc(s["target"]["name"].as_str().unwrap_or("")),
            s["target_prob_before"].as_f64().unwrap_or(f64::NAN),
            s["target_prob_with_map_mask"].as_f64().unwrap_or(f64::NAN),
            100.0 * s["map_mask_fraction"].as_f64().unwrap_or(f64::NAN),
            s["wall_seconds"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    let settings = summaries.first().map(|(_, s)| {
        format!(
            "{} · {} {} · in-filler {} · {} steps · batch {} · λ {} · lr {} · mask {} · t {} · seed {} · {}",
            esc(s["model"].as_str().unwrap_or("")),
            s["method"].as_str().unwrap_or(""),
            s["objective"].as_str().unwrap_or(""),
            s["infill"].as_str().unwrap_or(""),
            s["steps"],
            s["batch"],
            s["lambda"],
            s["lr"],
            s["mask_size"],
            s["temperature"],
            s["seed"],
            esc(s["adapter"].as_str().unwrap_or("")),
        )
    });
    format!(
        "<!doctype html><meta charset=utf-8><title>fido explanations</title>\n<style>body{{font-family:sans-serif;margin:2em}}\
         td{{padding:6px;vertical-align:top}}img{{width:224px;height:224px;image-rendering:pixelated}}</style>\n\
         <h1>fido explanations</h1><p>{}</p><p>Red: important (SSR: kept; SDR: dropped). Blue: not.</p>\n\
         <table>\n<tr><th>overlay</th><th>importance</th><th>target</th></tr>\n{rows}</table>\n",
        settings.unwrap_or_default()
    )
}
