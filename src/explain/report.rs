//! Writing an explanation: tensors, pictures and a summary.

use std::path::Path;

use image::{Rgb, RgbImage};
use serde_json::json;

use super::{ExplainConfig, Explanation};
use crate::fsio;
use crate::imageio::{encode_png, SourceToModel};
use crate::{Error, Result};

/// Everything `summary.json` records besides the explanation itself.
pub struct RunInfo<'a> {
    pub model: &'a str,
    pub adapter: &'a str,
    pub source: &'a str,
    pub target_name: &'a str,
    pub source_to_model: SourceToModel,
}

/// Write `saliency.safetensors`, `heatmap.png`, `overlay.png` and `summary.json` into `dir`.
///
/// The four files are written as one group ([`fsio::write_group`]): all or none of them
/// replace those already there, and `summary.json` comes last, so a folder holding one is
/// complete ([`finished`]) even if a run was killed while rewriting it, and a full disk
/// leaves the earlier explanation as it was.
pub fn write(dir: &Path, e: &Explanation, picture: &RgbImage, info: &RunInfo) -> Result<serde_json::Value> {
    std::fs::create_dir_all(dir).map_err(|err| {
        Error::InvalidArgument(format!("cannot create output folder `{}`: {err}", dir.display()))
    })?;
    fsio::remove_stale_temporaries(dir)?;
    let tensors = tensor_bytes(&dir.join("saliency.safetensors"), e)?;
    let heat = heatmap(&e.importance, e.width as u32, e.height as u32);
    let heat_png = encode_png(&heat)?;
    let overlay_png = encode_png(&overlay(picture, &heat, &e.importance))?;
    let important = e.importance.iter().filter(|&&v| v > 0.5).count() as f64 / e.importance.len() as f64;
    let mut summary = json!({
        "model": info.model,
        "adapter": info.adapter,
        "source": info.source,
        "target": {"label": e.target, "name": info.target_name},
        "target_prob_before": tidy(e.prob_before),
        "target_prob_with_map_mask": tidy(e.prob_with_map),
        "map_mask_fraction": important,
        "wall_seconds": e.seconds,
        "steps_done": e.steps_done,
        "source_to_model": {
            "scale_x": info.source_to_model.scale_x,
            "scale_y": info.source_to_model.scale_y,
            "offset_x": info.source_to_model.offset_x,
            "offset_y": info.source_to_model.offset_y,
        },
        "progress": e.history.iter().map(|p| json!({"step": p.step, "loss": tidy(p.loss), "score": tidy(p.score)})).collect::<Vec<_>>(),
    });
    for (key, value) in settings(&e.config) {
        summary[key] = value;
    }
    let text = serde_json::to_string_pretty(&summary).expect("JSON of plain values");
    fsio::write_group(&[
        (dir.join(FILES[0]), tensors),
        (dir.join(FILES[1]), heat_png),
        (dir.join(FILES[2]), overlay_png),
        (dir.join(SUMMARY), text.into_bytes()),
    ])?;
    Ok(summary)
}

/// The name of the file a finished output folder holds last.
pub const SUMMARY: &str = "summary.json";

/// The files of a finished output folder.
pub const FILES: [&str; 4] = ["saliency.safetensors", "heatmap.png", "overlay.png", SUMMARY];

/// Write `summary` as `dir/summary.json`, atomically.
pub fn write_summary(dir: &Path, summary: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(summary).expect("JSON of plain values");
    fsio::write_atomic(&dir.join(SUMMARY), text.as_bytes())
}

/// The settings `summary.json` records, as (key, value) pairs.
pub fn settings(c: &ExplainConfig) -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("method", json!(c.method.to_string())),
        ("objective", json!(c.objective.to_string())),
        ("infill", json!(c.infill.to_string())),
        ("steps", json!(c.steps)),
        ("batch", json!(c.batch)),
        ("lambda", json!(tidy(c.lambda))),
        ("lr", json!(tidy(c.lr))),
        ("mask_size", json!(c.mask_size)),
        ("temperature", json!(tidy(c.temperature))),
        ("tv", json!(tidy(c.tv))),
        ("seed", json!(c.seed)),
    ]
}

/// The summary of `dir` if the folder holds a finished explanation of `source` with
/// `model` under `config` (and of class `label` when one is asked for): every file present
/// and `summary.json`, written last, readable and recording the same settings. None means
/// the image is to be explained (again).
pub fn finished(
    dir: &Path,
    config: &ExplainConfig,
    model: &str,
    source: &str,
    label: Option<usize>,
) -> Option<serde_json::Value> {
    if !FILES.iter().all(|f| dir.join(f).is_file()) {
        return None;
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(SUMMARY)).ok()?).ok()?;
    let same = |a: &serde_json::Value, b: &serde_json::Value| match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
        _ => a == b,
    };
    let settings_match = settings(config)
        .iter()
        .all(|(key, value)| same(&summary[*key], value));
    let label_matches = label.is_none_or(|l| summary["target"]["label"].as_u64() == Some(l as u64));
    (settings_match && label_matches && summary["model"] == model && summary["source"] == source)
        .then_some(summary)
}

/// An f32 as the f64 with the same shortest decimal form, so JSON shows `0.001`, not
/// `0.0010000000474974513`.
fn tidy(x: f32) -> f64 {
    format!("{x}").parse().unwrap_or(x as f64)
}

/// `saliency.safetensors`'s bytes (`path` only names it in errors).
fn tensor_bytes(path: &Path, e: &Explanation) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let m = (e.mask_logits.len() as f64).sqrt() as usize;
    let mut views = vec![(
        "importance",
        TensorView::new(
            Dtype::F32,
            vec![e.height, e.width],
            bytemuck::cast_slice(&e.importance),
        ),
    )];
    // FIDO and BBMP have mask parameters; the gradient methods have an attribution instead.
    if !e.mask_logits.is_empty() {
        views.push((
            "logits",
            TensorView::new(Dtype::F32, vec![m, m], bytemuck::cast_slice(&e.mask_logits)),
        ));
    }
    if let Some(gradient) = &e.gradient {
        views.push((
            "gradient",
            TensorView::new(
                Dtype::F32,
                vec![3, e.height, e.width],
                bytemuck::cast_slice(gradient),
            ),
        ));
    }
    let views: Vec<(&str, TensorView)> = views
        .into_iter()
        .map(|(name, v)| {
            v.map(|v| (name, v))
                .map_err(|err| Error::InvalidArgument(format!("{name}: {err}")))
        })
        .collect::<Result<_>>()?;
    safetensors::serialize(views, None)
        .map_err(|err| Error::InvalidArgument(format!("cannot write `{}`: {err}", path.display())))
}

/// A diverging colour map: blue (0, unimportant) through white (0.5) to red (1, important).
pub fn diverging(v: f32) -> Rgb<u8> {
    let v = v.clamp(0.0, 1.0);
    let (blue, red) = ([59.0, 76.0, 192.0], [180.0, 4.0, 38.0]);
    let white = [242.0, 242.0, 242.0];
    let (from, to, t) = if v < 0.5 {
        (blue, white, v * 2.0)
    } else {
        (white, red, (v - 0.5) * 2.0)
    };
    let mix = |i: usize| (from[i] + (to[i] - from[i]) * t).round() as u8;
    Rgb([mix(0), mix(1), mix(2)])
}

pub fn heatmap(values: &[f32], width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| diverging(values[(y * width + x) as usize]))
}

/// The heatmap over the picture: unimportant pixels are dimmed and tinted blue, important
/// ones tinted red, so the object the classifier relies on stands out.
pub fn overlay(picture: &RgbImage, heat: &RgbImage, values: &[f32]) -> RgbImage {
    let width = picture.width();
    RgbImage::from_fn(width, picture.height(), |x, y| {
        let v = values[(y * width + x) as usize].clamp(0.0, 1.0);
        let light = 0.35 + 0.65 * v;
        let (p, h) = (picture.get_pixel(x, y), heat.get_pixel(x, y));
        let blend = |i: usize| {
            (p[i] as f32 * light * 0.6 + h[i] as f32 * 0.4)
                .round()
                .clamp(0.0, 255.0) as u8
        };
        Rgb([blend(0), blend(1), blend(2)])
    })
}

/// Write a PNG atomically; [`crate::imageio::save_png`].
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    crate::imageio::save_png(img, path)
}
