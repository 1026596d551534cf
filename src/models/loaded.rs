//! A classifier loaded from its weight file together with the image pipeline its
//! preprocessing asks for: what every command that feeds images to a model needs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::gpu::Gpu;
use crate::imageio::{self, Normalize, Prepared, Resize};
use crate::weights::WeightFile;
use crate::{Error, Result};

use super::{Classifier, ModelKind, Preprocess, PreprocessOptions, ResizeMode};

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

/// What `--model` names: a built-in architecture, or an ONNX file. A value ending in
/// `.onnx`, or naming an existing file, is a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSpec {
    Native(ModelKind),
    Onnx(PathBuf),
}

impl FromStr for ModelSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<ModelSpec> {
        let path = Path::new(s.trim());
        let onnx = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
        if onnx || path.is_file() {
            return Ok(ModelSpec::Onnx(path.to_path_buf()));
        }
        s.parse::<ModelKind>()
            .map(ModelSpec::Native)
            .map_err(|e| match e {
                Error::InvalidArgument(m) => {
                    Error::InvalidArgument(format!("{m}, or a path to an .onnx file"))
                }
                other => other,
            })
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelSpec::Native(kind) => write!(f, "{kind}"),
            ModelSpec::Onnx(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A classifier with the resize and normalisation its inputs go through.
pub struct LoadedModel {
    /// The built-in architecture; None for an ONNX model.
    pub kind: Option<ModelKind>,
    /// What reports call the model: the architecture, or the ONNX file's stem.
    pub name: String,
    pub classifier: Classifier,
    pub resize: Resize,
    pub norm: Normalize,
}

impl LoadedModel {
    /// Load `kind` from a safetensors file with the original state_dict names, with the
    /// model's own preprocessing.
    pub fn load(gpu: &Gpu, kind: ModelKind, weights: &Path) -> Result<LoadedModel> {
        Self::open(
            gpu,
            &ModelSpec::Native(kind),
            Some(weights),
            &PreprocessOptions::default(),
        )
    }

    /// Load what `--model` names. A built-in architecture needs `weights` (safetensors); an
    /// ONNX file holds its own, and `weights` is then an error. `preprocess` overrides the
    /// model's own preprocessing (for ONNX models: the `imagenet` preset at the graph's size).
    pub fn open(
        gpu: &Gpu,
        spec: &ModelSpec,
        weights: Option<&Path>,
        preprocess: &PreprocessOptions,
    ) -> Result<LoadedModel> {
        let classifier = match (spec, weights) {
            (ModelSpec::Native(kind), Some(weights)) => {
                let file = WeightFile::open(weights)?;
                let classifier = Classifier::load(gpu, *kind, &file)?;
                let p = preprocess.apply(classifier.preprocess())?;
                classifier.with_preprocess(p)?
            }
            (ModelSpec::Native(kind), None) => {
                return Err(Error::InvalidArgument(format!(
                    "--model {kind} needs --weights FILE.safetensors"
                )))
            }
            (ModelSpec::Onnx(path), Some(_)) => {
                return Err(Error::InvalidArgument(format!(
                    "--weights is not used with an ONNX model: `{}` holds its own weights; drop --weights",
                    path.display()
                )))
            }
            (ModelSpec::Onnx(path), None) => Classifier::load_onnx(gpu, path, preprocess)?,
        };
        Self::from_classifier(classifier)
    }

    /// Wrap a loaded classifier with the image pipeline its preprocessing asks for.
    pub fn from_classifier(classifier: Classifier) -> Result<LoadedModel> {
        let (resize, norm) = image_pipeline(&classifier.preprocess())?;
        Ok(LoadedModel {
            kind: classifier.kind(),
            name: classifier.name().to_string(),
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
