//! The per-image record files under `results/`: what is known about one image and each
//! configuration's scores, written as soon as they are known so a run can resume.
//!
//! Fields serialise in name order and absent metrics are left out, as the records have
//! always been written; a metric that was computed but is undefined is written as `null`.
//! Non-finite numbers, which JSON cannot hold, are written as `null` and read back as NaN.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use super::manifest::EvalJob;
use super::metrics::SourceBox;
use super::{image_stem, write_atomic};
use crate::Result;

/// Where an image, or one configuration on it, stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not looked at yet.
    #[default]
    Pending,
    /// Scored.
    Ok,
    /// Skipped: the classifier gets it wrong.
    Misclassified,
    /// Failed; the record's `error` says why.
    Error,
}

/// One image's record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub boxes: Vec<SourceBox>,
    /// Per configuration name.
    #[serde(default)]
    pub configs: BTreeMap<String, ConfigEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub id: String,
    /// Per in-filler, the mean true-class probability at each drop rate.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "quality_or_nan"
    )]
    pub infill_quality: Option<BTreeMap<String, Vec<f64>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infill_quality_error: Option<String>,
    pub label: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<usize>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_or_nan"
    )]
    pub prob: Option<f64>,
    pub source: String,
    pub status: Status,
    pub stem: String,
}

/// The scores of one configuration on one image. Every metric is optional: it is present
/// when it was asked for; the doubly optional ones are `null` when undefined.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigEntry {
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "some_or_nan")]
    pub crop_prob: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "some_or_nan")]
    pub map_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub off_box_ratio: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "some_or_nan")]
    pub prob_with_map: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub removal_drops: Option<Option<Vec<f64>>>,
    /// The smallest removed fraction reaching each reported drop level, keyed by
    /// [`removal_metric_name`](super::removal_metric_name) (`removal_f50`, …).
    #[serde(flatten)]
    pub removal_levels: BTreeMap<String, Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "some_or_nan")]
    pub removal_score_all_removed: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "some_or_nan")]
    pub removal_score_full: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "all_or_nan")]
    pub removal_scores: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub saliency_metric: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "some_or_nan")]
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub stability_iou: Option<Option<f64>>,
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "present")]
    pub stability_pearson: Option<Option<f64>>,
    pub status: Status,
}

impl ConfigEntry {
    /// A scored entry with nothing measured yet.
    pub fn ok() -> ConfigEntry {
        ConfigEntry {
            status: Status::Ok,
            ..ConfigEntry::default()
        }
    }

    /// A failed entry.
    pub fn failed(error: String) -> ConfigEntry {
        ConfigEntry {
            status: Status::Error,
            error: Some(error),
            ..ConfigEntry::default()
        }
    }
}

impl ImageRecord {
    /// A record for a job not looked at yet.
    pub fn new(job: &EvalJob) -> ImageRecord {
        ImageRecord {
            boxes: job.boxes.clone(),
            configs: BTreeMap::new(),
            error: None,
            id: job.id.clone(),
            infill_quality: None,
            infill_quality_error: None,
            label: job.label,
            predicted: None,
            prob: None,
            source: job.path.display().to_string(),
            status: Status::Pending,
            stem: image_stem(job),
        }
    }

    /// The record in `path`, or None when there is none or it cannot be read (it is then
    /// computed afresh).
    pub fn read(path: &Path) -> Option<ImageRecord> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Write the record through a temporary file, so a killed run never leaves half of one.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("a record is plain data");
        write_atomic(path, &text)
    }

    /// Whether `config` is finished on this image.
    pub fn is_done(&self, config: &str) -> bool {
        self.configs.get(config).is_some_and(|c| c.status == Status::Ok)
    }
}

/// A present field, even `null`: `Some(value)`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A present number, `null` standing for a non-finite one.
fn some_or_nan<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    Ok(Some(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN)))
}

/// A present list of numbers, `null` items standing for non-finite ones.
fn all_or_nan<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Vec<f64>>, D::Error> {
    let items = Vec::<Option<f64>>::deserialize(d)?;
    Ok(Some(items.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect()))
}

fn quality_or_nan<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<BTreeMap<String, Vec<f64>>>, D::Error> {
    let map = BTreeMap::<String, Vec<Option<f64>>>::deserialize(d)?;
    Ok(Some(
        map.into_iter()
            .map(|(k, v)| (k, v.into_iter().map(|p| p.unwrap_or(f64::NAN)).collect()))
            .collect(),
    ))
}
