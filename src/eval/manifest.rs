//! The evaluation's job list: a manifest CSV of labelled images with ground-truth boxes.

use std::path::{Path, PathBuf};

use super::metrics::SourceBox;
use crate::dataset::{open_manifest, Manifest, ManifestRow};
use crate::{Error, Result};

/// One image to evaluate: its file, true label and ground-truth boxes in source pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalJob {
    /// Unique name of the image (the manifest's file name); results are keyed by it.
    pub id: String,
    pub path: PathBuf,
    pub label: usize,
    pub boxes: Vec<SourceBox>,
}

/// Read a manifest CSV `file,label,…,boxes_xyxy` (boxes `x0 y0 x1 y1`, several separated by
/// `;`; a missing or empty last column means no boxes). Images are looked up next to the
/// manifest or in its `images/` folder. Jobs come back sorted by id.
pub fn read_manifest(manifest: &Path) -> Result<Vec<EvalJob>> {
    jobs_from_manifest(&open_manifest(manifest)?, &|row| row.image())
}

/// The jobs of a manifest already read, with `image` finding each row's file ([`read_manifest`]
/// looks next to the manifest and in its `images/` folder).
pub fn jobs_from_manifest(
    csv: &Manifest,
    image: &dyn Fn(&ManifestRow<'_>) -> Result<PathBuf>,
) -> Result<Vec<EvalJob>> {
    let manifest = csv.path();
    let boxes_column = csv.header().iter().position(|h| h.starts_with("boxes"));
    let mut jobs = Vec::new();
    for row in csv.rows() {
        let label = row.label()?;
        let boxes = match boxes_column.and_then(|c| row.fields.get(c)) {
            Some(text) => {
                parse_boxes(text).map_err(|why| Error::InvalidArgument(format!("{}: {why}", row.at())))?
            }
            None => Vec::new(),
        };
        jobs.push(EvalJob {
            id: row.file().to_string(),
            path: image(&row)?,
            label,
            boxes,
        });
    }
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    if let Some(w) = jobs.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(Error::InvalidArgument(format!(
            "{}: image `{}` is listed twice",
            manifest.display(),
            w[0].id
        )));
    }
    Ok(jobs)
}

/// Parse `x0 y0 x1 y1;x0 y0 x1 y1`.
pub fn parse_boxes(text: &str) -> std::result::Result<Vec<SourceBox>, String> {
    text.split(';')
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let v: Vec<f64> = b
                .split_whitespace()
                .map(|t| {
                    t.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| format!("box `{b}` is not four finite numbers"))
                })
                .collect::<std::result::Result<_, _>>()?;
            match v[..] {
                [x0, y0, x1, y1] => Ok([x0, y0, x1, y1]),
                _ => Err(format!("box `{b}` is not four finite numbers")),
            }
        })
        .collect()
}
