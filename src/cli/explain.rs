//! `fido explain`: saliency maps for one image or many, with a progress bar and a gallery.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use fido::explain::report::{self, RunInfo};
use fido::explain::CaSetup;
use fido::explain::{ExplainConfig, Explainer};
use fido::imageio;
use fido::{Error, Gpu, IoContext, Result, Tensor};

use super::classify::{load_model, Loaded};

/// One image to explain, with its label when known.
pub struct Job {
    pub path: PathBuf,
    pub label: Option<usize>,
}

/// Collect jobs from `--image` paths (files or folders) and a `--manifest` CSV
/// (`file,label,...`, images next to it or in its `images/` folder).
pub fn collect_jobs(images: &[PathBuf], manifest: Option<&Path>, label: Option<usize>) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for path in images {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .at(path)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        matches!(
                            e.to_ascii_lowercase().as_str(),
                            "jpg" | "jpeg" | "png" | "bmp" | "webp"
                        )
                    })
                })
                .collect();
            files.sort();
            jobs.extend(files.into_iter().map(|path| Job { path, label }));
        } else {
            jobs.push(Job {
                path: path.clone(),
                label,
            });
        }
    }
    if let Some(manifest) = manifest {
        let text = std::fs::read_to_string(manifest).map_err(|e| {
            Error::InvalidArgument(format!("cannot read manifest `{}`: {e}", manifest.display()))
        })?;
        let dir = manifest.parent().unwrap_or(Path::new("."));
        for (n, line) in text.lines().enumerate().skip(1) {
            if line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split(',');
            let (file, label) = (fields.next().unwrap_or(""), fields.next().unwrap_or(""));
            let label: usize = label.trim().parse().map_err(|_| {
                Error::InvalidArgument(format!(
                    "{}:{}: label `{label}` is not a class index",
                    manifest.display(),
                    n + 1
                ))
            })?;
            let path = [dir.join(file), dir.join("images").join(file)]
                .into_iter()
                .find(|p| p.exists())
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "{}:{}: image `{file}` not found",
                        manifest.display(),
                        n + 1
                    ))
                })?;
            jobs.push(Job {
                path,
                label: Some(label),
            });
        }
    }
    if jobs.is_empty() {
        return Err(Error::InvalidArgument(
            "no images to explain: give --image or --manifest".into(),
        ));
    }
    Ok(jobs)
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    gpu: &Gpu,
    model: &str,
    weights: &Path,
    jobs: &[Job],
    out: &Path,
    config: ExplainConfig,
    ca: Option<CaSetup>,
    as_json: bool,
) -> Result<()> {
    config.validate()?;
    let loaded = load_model(gpu, model, weights)?;
    let batch_mode = jobs.len() > 1;
    let mut summaries = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let dir = if batch_mode {
            out.join(unique_stem(&job.path, i, jobs))
        } else {
            out.to_path_buf()
        };
        let label = if batch_mode {
            format!("[{}/{}] ", i + 1, jobs.len())
        } else {
            String::new()
        };
        let summary = explain_one(gpu, &loaded, job, &dir, config.clone(), ca.as_ref(), &label)?;
        if as_json && !batch_mode {
            println!(
                "{}",
                serde_json::to_string(&summary).expect("JSON of plain values")
            );
        }
        summaries.push((dir, summary));
    }
    if batch_mode {
        let index = out.join("index.html");
        std::fs::write(&index, gallery(out, &summaries)).at(&index)?;
        if as_json {
            let all: Vec<_> = summaries.iter().map(|(_, s)| s.clone()).collect();
            println!("{}", serde_json::to_string(&all).expect("JSON of plain values"));
        } else {
            println!("gallery: {}", index.display());
        }
    }
    Ok(())
}

fn explain_one(
    gpu: &Gpu,
    loaded: &Loaded,
    job: &Job,
    dir: &Path,
    config: ExplainConfig,
    ca: Option<&CaSetup>,
    prefix: &str,
) -> Result<serde_json::Value> {
    let started = Instant::now();
    let prepared = imageio::prepare(&imageio::load_rgb(&job.path)?, loaded.resize, &loaded.norm);
    let size = prepared.size as usize;
    let x = Tensor::from_slice(gpu, &[1, 3, size, size], &prepared.chw)?;
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
    explainer.run(every, |p| {
        bar.set_position(p.step as u64);
        bar.set_message(format!("log-odds {:+.2}", p.score));
    })?;
    bar.finish_and_clear();
    let explanation = explainer.finish()?;
    let info = RunInfo {
        model: &loaded.kind.to_string(),
        adapter: &gpu.adapter_name(),
        source: &job.path.display().to_string(),
        target_name: &name,
        source_to_model: prepared.source_to_model,
    };
    let mut summary = report::write(dir, &explanation, &prepared.picture, &info)?;
    summary["wall_seconds"] = json!(started.elapsed().as_secs_f64());
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).expect("JSON"),
    )
    .at(dir.join("summary.json"))?;
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

/// A folder name per image: its file stem, made unique by its position when stems repeat.
fn unique_stem(path: &Path, index: usize, jobs: &[Job]) -> String {
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
