//! The work on one image: prepare it, classify it, and compute (or reuse) and score each
//! configuration's map. Every failure is an error for this image alone.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::config::{EvalConfig, EvalOptions};
use super::manifest::EvalJob;
use super::metrics;
use super::record::ConfigEntry;
use super::{image_stem, removal_metric_name, slug, MAPS_DIR};
use crate::explain::report::{self as explain_report, RunInfo};
use crate::explain::{infill, ExplainConfig, Explainer, Explanation, Model};
use crate::imageio;
use crate::weights::WeightFile;
use crate::{Error, Gpu, Result, Tensor};

/// One image prepared for the model, with what every configuration shares.
pub struct ImageContext<'j> {
    job: &'j EvalJob,
    prepared: imageio::Prepared,
    x: Tensor,
    height: usize,
    width: usize,
    classes: usize,
    /// The classifier's top-1 class.
    pub predicted: usize,
    /// The classifier's probability of the true label.
    pub prob: f64,
    inside_boxes: Vec<bool>,
}

impl<'j> ImageContext<'j> {
    pub fn new(gpu: &Gpu, model: &dyn Model, options: &EvalOptions, job: &'j EvalJob) -> Result<Self> {
        let picture = imageio::load_rgb(&job.path)?;
        let prepared = imageio::prepare(&picture, options.resize, &options.norm);
        let size = prepared.size as usize;
        let x = Tensor::from_slice(gpu, &[1, 3, size, size], &prepared.chw)?;
        let logits = metrics::logits_rows(model, &x, 1)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Shape {
                op: "eval",
                detail: "the model returned no logits".into(),
            })?;
        if job.label >= logits.len() {
            return Err(Error::InvalidArgument(format!(
                "label {} is out of range: the model has {} classes",
                job.label,
                logits.len()
            )));
        }
        let inside_boxes = metrics::box_union_mask(&job.boxes, &prepared.source_to_model, size, size);
        Ok(ImageContext {
            job,
            height: size,
            width: size,
            classes: logits.len(),
            predicted: metrics::argmax(&logits),
            prob: metrics::probability(&logits, job.label),
            prepared,
            x,
            inside_boxes,
        })
    }

    /// Per in-filler, the mean true-class probability under random masks at each drop rate.
    pub fn infill_quality(
        &self,
        model: &dyn Model,
        options: &EvalOptions,
    ) -> Result<BTreeMap<String, Vec<f64>>> {
        let m = &options.metrics;
        let mut out = BTreeMap::new();
        for &kind in &m.infill_quality {
            let probs = metrics::infill_quality(
                model,
                &self.x,
                options.norm,
                metrics::Infill {
                    kind,
                    ca: options.ca.as_ref(),
                },
                self.job.label,
                &m.infill_drop_rates,
                m.infill_samples.max(1),
                seed_of(&self.job.id),
                options.score_batch,
            )?;
            out.insert(kind.to_string(), probs);
        }
        Ok(out)
    }

    /// Compute (or reuse) the map of `config` and score it. Returns the record entry and
    /// whether the map was reused.
    pub fn evaluate(
        &mut self,
        gpu: &Gpu,
        model: &dyn Model,
        options: &EvalOptions,
        config: &EvalConfig,
    ) -> Result<(ConfigEntry, bool)> {
        let started = Instant::now();
        let target = self.job.label;
        let mut entry = ConfigEntry::ok();
        let (importance, reused) = match options.reuse.get(&config.name) {
            Some(dir) => (self.load_map(dir)?, true),
            None => {
                let explanation = self.explain(model, options, config.explain.clone())?;
                let folder = options
                    .out
                    .join(MAPS_DIR)
                    .join(config.slug())
                    .join(image_stem(self.job));
                let info = RunInfo {
                    model: &options.model_name,
                    adapter: &gpu.adapter_name(),
                    source: &self.job.path.display().to_string(),
                    target_name: &crate::classes::name(target, self.classes),
                    source_to_model: self.prepared.source_to_model,
                };
                explain_report::write(&folder, &explanation, &self.prepared.picture, &info)?;
                entry.prob_with_map = Some(explanation.prob_with_map as f64);
                if options.metrics.stability {
                    let mut second = config.explain.clone();
                    second.seed = second.seed.wrapping_add(1);
                    let other = self.explain(model, options, second)?;
                    entry.stability_pearson =
                        Some(metrics::pearson(&explanation.importance, &other.importance));
                    entry.stability_iou =
                        Some(Some(metrics::map_iou(&explanation.importance, &other.importance)));
                }
                (explanation.importance, false)
            }
        };
        let m = &options.metrics;
        entry.map_fraction = Some(metrics::map_fraction(&importance));
        if m.off_box {
            entry.off_box_ratio = Some(metrics::off_box_ratio(&importance, &self.inside_boxes));
        }
        if !m.removal_fractions.is_empty() {
            let curve = metrics::removal_curve(
                model,
                &self.x,
                options.norm,
                metrics::Infill {
                    kind: m.removal_infill,
                    ca: options.ca.as_ref(),
                },
                &importance,
                target,
                &m.removal_fractions,
                seed_of(&self.job.id),
                options.score_batch,
            )?;
            for &level in &m.removal_levels {
                entry
                    .removal_levels
                    .insert(removal_metric_name(level), curve.fraction_reaching(level));
            }
            entry.removal_score_full = Some(curve.score_full);
            entry.removal_score_all_removed = Some(curve.score_all_removed);
            entry.removal_drops = Some(curve.drops);
            entry.removal_scores = Some(curve.scores);
        }
        if m.saliency {
            let saliency = metrics::saliency_of_map(model, &self.x, &self.prepared.chw, &importance, target)?;
            entry.saliency_metric = Some(saliency.map(|(value, _)| value));
            entry.crop_prob = saliency.map(|(_, p)| p);
        }
        entry.reused = Some(reused);
        entry.seconds = Some(started.elapsed().as_secs_f64());
        Ok((entry, reused))
    }

    fn explain(
        &self,
        model: &dyn Model,
        options: &EvalOptions,
        config: ExplainConfig,
    ) -> Result<Explanation> {
        let infiller = infill::build(config.infill, &self.x, options.norm, options.ca.as_ref())?;
        let mut explainer = Explainer::new(
            model,
            &self.x,
            Some(self.job.label),
            options.norm,
            config,
            Some(infiller),
        )?;
        explainer.run(0, |_| {})?;
        explainer.finish()
    }

    /// The importance map of this image from a `fido explain` output folder.
    fn load_map(&self, dir: &Path) -> Result<Vec<f32>> {
        let candidates = [
            dir.join(image_stem(self.job)).join("saliency.safetensors"),
            dir.join(slug(&self.job.id)).join("saliency.safetensors"),
        ];
        let path = candidates.iter().find(|p| p.exists()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no saved map for `{}` in `{}`",
                self.job.id,
                dir.display()
            ))
        })?;
        let file = WeightFile::open(path)?;
        let shape = file.shape("importance")?;
        if shape != [self.height, self.width] {
            return Err(Error::Shape {
                op: "eval",
                detail: format!(
                    "`{}` holds a {shape:?} map; the model input is [{}, {}]",
                    path.display(),
                    self.height,
                    self.width
                ),
            });
        }
        let importance = file.get_f32("importance")?;
        if importance.len() != self.height * self.width {
            return Err(Error::Shape {
                op: "eval",
                detail: format!(
                    "`{}` holds {} importance values for a [{}, {}] map",
                    path.display(),
                    importance.len(),
                    self.height,
                    self.width
                ),
            });
        }
        Ok(importance)
    }
}

/// A per-image seed derived from its id (FNV-1a), so shards and reruns agree.
fn seed_of(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}
