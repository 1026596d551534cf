//! Writing an explanation: tensors, pictures and a summary.

use std::path::Path;

use image::{Rgb, RgbImage};
use serde_json::json;

use super::Explanation;
use crate::imageio::SourceToModel;
use crate::{Error, IoContext, Result};

/// Everything `summary.json` records besides the explanation itself.
pub struct RunInfo<'a> {
    pub model: &'a str,
    pub adapter: &'a str,
    pub source: &'a str,
    pub target_name: &'a str,
    pub source_to_model: SourceToModel,
}

/// Write `saliency.safetensors`, `heatmap.png`, `overlay.png` and `summary.json` into `dir`.
pub fn write(dir: &Path, e: &Explanation, picture: &RgbImage, info: &RunInfo) -> Result<serde_json::Value> {
    std::fs::create_dir_all(dir).map_err(|err| {
        Error::InvalidArgument(format!("cannot create output folder `{}`: {err}", dir.display()))
    })?;
    write_tensors(&dir.join("saliency.safetensors"), e)?;
    let heat = heatmap(&e.importance, e.width as u32, e.height as u32);
    save_png(&heat, &dir.join("heatmap.png"))?;
    save_png(&overlay(picture, &heat, &e.importance), &dir.join("overlay.png"))?;
    let c = &e.config;
    let important = e.importance.iter().filter(|&&v| v > 0.5).count() as f64 / e.importance.len() as f64;
    let summary = json!({
        "model": info.model,
        "adapter": info.adapter,
        "source": info.source,
        "method": c.method.to_string(),
        "objective": c.objective.to_string(),
        "infill": c.infill.to_string(),
        "steps": c.steps,
        "batch": c.batch,
        "lambda": tidy(c.lambda),
        "lr": tidy(c.lr),
        "mask_size": c.mask_size,
        "temperature": tidy(c.temperature),
        "tv": tidy(c.tv),
        "seed": c.seed,
        "target": {"label": e.target, "name": info.target_name},
        "target_prob_before": tidy(e.prob_before),
        "target_prob_with_map_mask": tidy(e.prob_with_map),
        "map_mask_fraction": important,
        "wall_seconds": e.seconds,
        "source_to_model": {
            "scale_x": info.source_to_model.scale_x,
            "scale_y": info.source_to_model.scale_y,
            "offset_x": info.source_to_model.offset_x,
            "offset_y": info.source_to_model.offset_y,
        },
        "progress": e.history.iter().map(|p| json!({"step": p.step, "loss": tidy(p.loss), "score": tidy(p.score)})).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&summary).expect("JSON of plain values");
    std::fs::write(dir.join("summary.json"), text).at(dir.join("summary.json"))?;
    Ok(summary)
}

/// An f32 as the f64 with the same shortest decimal form, so JSON shows `0.001`, not
/// `0.0010000000474974513`.
fn tidy(x: f32) -> f64 {
    format!("{x}").parse().unwrap_or(x as f64)
}

fn write_tensors(path: &Path, e: &Explanation) -> Result<()> {
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
    safetensors::serialize_to_file(views, None, path)
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

pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    img.save(path)
        .map_err(|err| Error::InvalidArgument(format!("cannot write `{}`: {err}", path.display())))
}
