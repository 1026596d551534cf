//! A classifier loaded from its weight file together with the image pipeline its
//! preprocessing asks for: what every command that feeds images to a model needs.

use std::path::Path;

use crate::gpu::Gpu;
use crate::imageio::{self, Normalize, Prepared, Resize};
use crate::weights::WeightFile;
use crate::{Error, Result};

use super::{Classifier, ModelKind, Preprocess, ResizeMode};

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

/// A classifier with the resize and normalisation its inputs go through.
pub struct LoadedModel {
    pub kind: ModelKind,
    pub classifier: Classifier,
    pub resize: Resize,
    pub norm: Normalize,
}

impl LoadedModel {
    /// Load `kind` from a safetensors file with the original state_dict names.
    pub fn load(gpu: &Gpu, kind: ModelKind, weights: &Path) -> Result<LoadedModel> {
        let file = WeightFile::open(weights)?;
        let classifier = Classifier::load(gpu, kind, &file)?;
        let (resize, norm) = image_pipeline(&classifier.preprocess())?;
        Ok(LoadedModel {
            kind,
            classifier,
            resize,
            norm,
        })
    }

    /// Decode the image at `path` and bring it to this model's input.
    pub fn prepare_image(&self, path: &Path) -> Result<Prepared> {
        Ok(imageio::prepare(
            &imageio::load_rgb(path)?,
            self.resize,
            &self.norm,
        ))
    }

    /// Decode and preprocess images into one `[N, 3, S, S]` batch: its shape and values.
    pub fn prepare_batch(&self, paths: &[&Path]) -> Result<(Vec<usize>, Vec<f32>)> {
        let mut values = Vec::new();
        let mut size = 0;
        for path in paths {
            let prepared = self.prepare_image(path)?;
            size = prepared.size as usize;
            values.extend(prepared.chw);
        }
        Ok((vec![paths.len(), 3, size, size], values))
    }
}

/// Read the tensor named `input` (N×3×H×W f32, already normalised) from a safetensors file.
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
