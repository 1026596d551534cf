//! Evaluation metrics on host arrays (row-major `height × width` importance maps), plus the
//! GPU parts that need the classifier: scoring pixel-removal levels, in-filled random masks
//! and tight crops.
//!
//! A pixel is "important" (in the MAP mask) when its importance exceeds 0.5.

use crate::explain::infill::{self, InfillKind};
use crate::explain::CaSetup;
use crate::explain::Model;
use crate::imageio::{Normalize, SourceToModel};
use crate::ops::{elementwise, resize};
use crate::tensor::Tensor;
use crate::{Error, Result, Tape};

/// Importance above this marks a pixel as part of the MAP mask.
pub const MAP_THRESHOLD: f32 = 0.5;
/// The Dabkowski & Gal saliency metric floors the crop's area fraction at this value.
pub const SALIENCY_AREA_FLOOR: f64 = 0.05;

/// A box `[x0, y0, x1, y1]` in source-image pixel coordinates (x1, y1 exclusive edges).
pub type SourceBox = [f64; 4];

/// Which model-input pixels lie inside the union of `boxes`, after mapping them to model
/// coordinates and clipping to the `height × width` input. A pixel is inside when its centre
/// is.
pub fn box_union_mask(boxes: &[SourceBox], map: &SourceToModel, height: usize, width: usize) -> Vec<bool> {
    let mut inside = vec![false; height * width];
    for b in boxes {
        let x0 = (b[0] * map.scale_x + map.offset_x).clamp(0.0, width as f64);
        let x1 = (b[2] * map.scale_x + map.offset_x).clamp(0.0, width as f64);
        let y0 = (b[1] * map.scale_y + map.offset_y).clamp(0.0, height as f64);
        let y1 = (b[3] * map.scale_y + map.offset_y).clamp(0.0, height as f64);
        for y in 0..height {
            let cy = y as f64 + 0.5;
            if cy < y0 || cy >= y1 {
                continue;
            }
            for x in 0..width {
                let cx = x as f64 + 0.5;
                if cx >= x0 && cx < x1 {
                    inside[y * width + x] = true;
                }
            }
        }
    }
    inside
}

/// The fraction of pixels outside the boxes that the MAP mask marks important. None when
/// the boxes cover the whole input (there is nothing outside to judge).
pub fn off_box_ratio(importance: &[f32], inside_boxes: &[bool]) -> Option<f64> {
    assert_eq!(
        importance.len(),
        inside_boxes.len(),
        "map and box mask sizes differ"
    );
    let (mut outside, mut marked) = (0usize, 0usize);
    for (&v, &inside) in importance.iter().zip(inside_boxes) {
        if !inside {
            outside += 1;
            if v > MAP_THRESHOLD {
                marked += 1;
            }
        }
    }
    (outside > 0).then(|| marked as f64 / outside as f64)
}

/// Pixel indices from most to least important; ties keep index order so the ranking is
/// deterministic.
pub fn removal_order(importance: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..importance.len()).collect();
    order.sort_by(|&a, &b| importance[b].total_cmp(&importance[a]).then(a.cmp(&b)));
    order
}

/// How many pixels removing the fraction `f` of `n` takes (rounded to nearest).
pub fn removed_count(f: f64, n: usize) -> usize {
    ((f.clamp(0.0, 1.0) * n as f64).round() as usize).min(n)
}

/// Keep masks (1 kept, 0 removed), one per fraction, each removing the top `f` of the
/// pixels by importance. Concatenated: `fractions.len() × n`.
pub fn removal_keep_masks(importance: &[f32], fractions: &[f64]) -> Vec<f32> {
    let n = importance.len();
    let order = removal_order(importance);
    let mut masks = vec![1.0f32; fractions.len() * n];
    for (k, &f) in fractions.iter().enumerate() {
        for &i in &order[..removed_count(f, n)] {
            masks[k * n + i] = 0.0;
        }
    }
    masks
}

/// `(s(x) − s(x_f)) / (s(x) − s(x_all_removed))` per removal level. None when removing
/// everything does not change the score (the normalisation is undefined).
pub fn normalised_drops(full: f64, removed: &[f64], all_removed: f64) -> Option<Vec<f64>> {
    let range = full - all_removed;
    if !range.is_finite() || range.abs() <= 1e-9 {
        return None;
    }
    Some(removed.iter().map(|s| (full - s) / range).collect())
}

/// The smallest fraction in the grid whose drop reaches `level`.
pub fn smallest_fraction_reaching(fractions: &[f64], drops: &[f64], level: f64) -> Option<f64> {
    fractions
        .iter()
        .zip(drops)
        .find(|(_, &d)| d >= level)
        .map(|(&f, _)| f)
}

/// Pearson correlation of two maps. None when either is constant.
pub fn pearson(a: &[f32], b: &[f32]) -> Option<f64> {
    assert_eq!(a.len(), b.len(), "maps differ in size");
    let n = a.len() as f64;
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        cov += dx * dy;
        va += dx * dx;
        vb += dy * dy;
    }
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// Intersection over union of two MAP masks; two empty masks agree fully (1).
pub fn map_iou(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "maps differ in size");
    let (mut both, mut either) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x > MAP_THRESHOLD, y > MAP_THRESHOLD);
        both += (x && y) as usize;
        either += (x || y) as usize;
    }
    if either == 0 {
        1.0
    } else {
        both as f64 / either as f64
    }
}

/// The fraction of pixels in the MAP mask.
pub fn map_fraction(importance: &[f32]) -> f64 {
    importance.iter().filter(|&&v| v > MAP_THRESHOLD).count() as f64 / importance.len() as f64
}

/// The tight bounding box `(y0, y1, x0, x1)` (ends exclusive) of the MAP mask, None if empty.
pub fn map_bounding_box(
    importance: &[f32],
    height: usize,
    width: usize,
) -> Option<(usize, usize, usize, usize)> {
    let mut bbox: Option<(usize, usize, usize, usize)> = None;
    for y in 0..height {
        for x in 0..width {
            if importance[y * width + x] > MAP_THRESHOLD {
                bbox = Some(match bbox {
                    None => (y, y + 1, x, x + 1),
                    Some((y0, y1, x0, x1)) => (y0.min(y), y1.max(y + 1), x0.min(x), x1.max(x + 1)),
                });
            }
        }
    }
    bbox
}

/// Dabkowski & Gal: `log(max(area, 0.05)) − log p`, with `area` the crop's fraction of the
/// image and `p` the target probability of the crop rescaled to the input size.
pub fn saliency_metric(area_fraction: f64, crop_prob: f64) -> f64 {
    area_fraction.max(SALIENCY_AREA_FLOOR).ln() - crop_prob.max(f64::MIN_POSITIVE).ln()
}

/// The log-odds `z_c − logsumexp_{k≠c} z_k` of class `c`, in f64.
pub fn log_odds(logits: &[f32], c: usize) -> f64 {
    let others = logits
        .iter()
        .enumerate()
        .filter(|&(k, _)| k != c)
        .map(|(_, &z)| z as f64);
    let max = others.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::INFINITY;
    }
    let lse = max + others.map(|z| (z - max).exp()).sum::<f64>().ln();
    logits[c] as f64 - lse
}

/// Softmax probability of class `c`, in f64.
pub fn probability(logits: &[f32], c: usize) -> f64 {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let total: f64 = logits.iter().map(|&z| (z as f64 - max).exp()).sum();
    (logits[c] as f64 - max).exp() / total
}

/// Index of the largest logit.
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (i, &v)| if v > best.1 { (i, v) } else { best },
        )
        .0
}

/// Logits `[N, classes]` of `x` read back as rows, `chunk` images per forward pass.
pub fn logits_rows(model: &dyn Model, x: &Tensor, chunk: usize) -> Result<Vec<Vec<f32>>> {
    let n = x.shape()[0];
    let tape = Tape::new();
    let mut rows = Vec::with_capacity(n);
    let per_image: usize = x.shape()[1..].iter().product();
    let values = if n <= chunk { None } else { Some(x.to_vec()?) };
    for start in (0..n).step_by(chunk.max(1)) {
        let end = (start + chunk.max(1)).min(n);
        let part = match &values {
            None => x.clone(),
            Some(v) => {
                let mut shape = x.shape().to_vec();
                shape[0] = end - start;
                Tensor::from_slice(x.gpu(), &shape, &v[start * per_image..end * per_image])?
            }
        };
        let logits = tape.no_grad_forward(model, &part)?;
        let classes = match logits.shape() {
            &[_, classes] if classes > 0 => classes,
            shape => {
                return Err(Error::Shape {
                    op: "eval",
                    detail: format!("the model returned logits of shape {shape:?}, not [N, classes]"),
                })
            }
        };
        let flat = logits.to_vec()?;
        rows.extend(flat.chunks(classes).map(|r| r.to_vec()));
    }
    Ok(rows)
}

/// `x·keep + (1−keep)·background` for keep masks `[B, 1, H, W]`.
pub fn mix(x: &Tensor, keep: &Tensor, background: &Tensor) -> Result<Tensor> {
    let difference = elementwise::sub(x, background)?;
    let kept = elementwise::mul(keep, &difference)?;
    elementwise::add(background, &kept)
}

/// Which in-filler replaces removed or dropped pixels; CA needs its generator.
#[derive(Clone, Copy, Debug)]
pub struct Infill<'a> {
    pub kind: InfillKind,
    pub ca: Option<&'a CaSetup>,
}

impl From<InfillKind> for Infill<'_> {
    fn from(kind: InfillKind) -> Self {
        Infill { kind, ca: None }
    }
}

/// The score of the image after each keep mask `[B, 1, H, W]` is in-filled by `infill`.
/// Returns the logits of every mixed image.
pub fn infilled_logits(
    model: &dyn Model,
    x: &Tensor,
    norm: Normalize,
    infill: Infill<'_>,
    keep_masks: &[f32],
    seed: u64,
    chunk: usize,
) -> Result<Vec<Vec<f32>>> {
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let plane = h * w;
    if keep_masks.is_empty() || keep_masks.len() % plane != 0 {
        return Err(Error::Shape {
            op: "eval",
            detail: format!(
                "keep masks of {} values do not tile a {h}×{w} plane",
                keep_masks.len()
            ),
        });
    }
    let mut infiller = infill::build(infill.kind, x, norm, infill.ca)?;
    let total = keep_masks.len() / plane;
    let chunk = chunk.max(1);
    let mut rows = Vec::with_capacity(total);
    for (i, masks) in keep_masks.chunks(chunk * plane).enumerate() {
        let b = masks.len() / plane;
        let keep = Tensor::from_slice(x.gpu(), &[b, 1, h, w], masks)?;
        let background = infiller.fill(&keep, seed.wrapping_add(i as u64))?;
        let mixed = mix(x, &keep, &background)?;
        // Mixing broadcasts to [b, 3, H, W] unless the background is a single image and b is 1.
        rows.extend(logits_rows(model, &mixed, chunk)?);
    }
    Ok(rows)
}

/// The pixel-removal curve of one map: the target's log-odds after removing each fraction
/// (ranked by importance) and in-filling, normalised by the full and all-removed scores.
#[derive(Clone, Debug, PartialEq)]
pub struct RemovalCurve {
    pub fractions: Vec<f64>,
    /// Target log-odds after each removal level.
    pub scores: Vec<f64>,
    pub score_full: f64,
    pub score_all_removed: f64,
    /// Normalised drops; None when the normalisation is undefined.
    pub drops: Option<Vec<f64>>,
}

impl RemovalCurve {
    pub fn fraction_reaching(&self, level: f64) -> Option<f64> {
        self.drops
            .as_ref()
            .and_then(|d| smallest_fraction_reaching(&self.fractions, d, level))
    }
}

/// Score the removal levels in batches of `chunk` images through the classifier.
#[allow(clippy::too_many_arguments)]
pub fn removal_curve(
    model: &dyn Model,
    x: &Tensor,
    norm: Normalize,
    infill: Infill<'_>,
    importance: &[f32],
    target: usize,
    fractions: &[f64],
    seed: u64,
    chunk: usize,
) -> Result<RemovalCurve> {
    // Levels 0 and 1 frame the normalisation; score them with the grid in one pass.
    let mut levels = fractions.to_vec();
    levels.push(0.0);
    levels.push(1.0);
    let masks = removal_keep_masks(importance, &levels);
    let rows = infilled_logits(model, x, norm, infill, &masks, seed, chunk)?;
    let scores: Vec<f64> = rows.iter().map(|r| log_odds(r, target)).collect();
    let k = fractions.len();
    let (full, all_removed) = (scores[k], scores[k + 1]);
    let scores = scores[..k].to_vec();
    Ok(RemovalCurve {
        fractions: fractions.to_vec(),
        drops: normalised_drops(full, &scores, all_removed),
        scores,
        score_full: full,
        score_all_removed: all_removed,
    })
}

/// Random keep masks (1 kept) dropping each pixel with probability `rate`, from a
/// deterministic generator.
pub fn random_keep_masks(count: usize, plane: usize, rate: f64, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..count * plane)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 11) as f64 / (1u64 << 53) as f64;
            if u < rate {
                0.0
            } else {
                1.0
            }
        })
        .collect()
}

/// The mean true-class probability after `samples` random masks at each drop rate are
/// in-filled by `infill`.
#[allow(clippy::too_many_arguments)]
pub fn infill_quality(
    model: &dyn Model,
    x: &Tensor,
    norm: Normalize,
    infill: Infill<'_>,
    label: usize,
    rates: &[f64],
    samples: usize,
    seed: u64,
    chunk: usize,
) -> Result<Vec<f64>> {
    let plane = x.shape()[2] * x.shape()[3];
    rates
        .iter()
        .enumerate()
        .map(|(i, &rate)| {
            let masks = random_keep_masks(samples, plane, rate, seed.wrapping_add(i as u64 * 7919));
            let rows = infilled_logits(model, x, norm, infill, &masks, seed, chunk)?;
            Ok(rows.iter().map(|r| probability(r, label)).sum::<f64>() / rows.len() as f64)
        })
        .collect()
}

/// The Dabkowski & Gal metric of a map: crop the MAP mask's bounding box from `x`, rescale
/// it to the input size, and score it. None when the MAP mask is empty.
pub fn saliency_of_map(
    model: &dyn Model,
    x: &Tensor,
    x_host: &[f32],
    importance: &[f32],
    target: usize,
) -> Result<Option<(f64, f64)>> {
    let (h, w) = (x.shape()[2], x.shape()[3]);
    let Some((y0, y1, x0, x1)) = map_bounding_box(importance, h, w) else {
        return Ok(None);
    };
    let (ch, cw) = (y1 - y0, x1 - x0);
    let mut crop = Vec::with_capacity(3 * ch * cw);
    for c in 0..3 {
        for y in y0..y1 {
            let row = (c * h + y) * w;
            crop.extend_from_slice(&x_host[row + x0..row + x1]);
        }
    }
    let crop = Tensor::from_slice(x.gpu(), &[1, 3, ch, cw], &crop)?;
    let rescaled = resize::resize_bilinear(&crop, h, w, false)?;
    let rows = logits_rows(model, &rescaled, 1)?;
    let area = (ch * cw) as f64 / (h * w) as f64;
    let p = probability(&rows[0], target);
    Ok(Some((saliency_metric(area, p), p)))
}
