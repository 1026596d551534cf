//! Image classifiers on the tape: ResNet-18/34/50/101/152, VGG-11/13/16/19 and AlexNet in
//! torchvision's layout, and EfficientNet-Lite0 in the layout of the PyPI
//! `efficientnet-lite-pytorch` package.
//!
//! A [`Classifier`] is loaded from a state_dict (original tensor names) through any
//! [`WeightSource`]: a safetensors [`WeightFile`], or the deterministic generator in
//! [`synthetic`]. Loading checks every name and shape against the architecture, folds every
//! batch norm into the convolution before it, and uploads the weights once. The forward
//! pass records on a [`Tape`] with the weights as constants, so the gradient with respect to
//! the input flows through and nothing is spent on weight gradients.

mod alexnet;
mod efficientnet;
mod layers;
pub use layers::fold_batch_norm;
mod loaded;
pub mod onnx;
mod resnet;
pub mod synthetic;
mod vgg;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::autodiff::{Tape, Var};
use crate::gpu::Gpu;
use crate::tensor::Tensor;
use crate::weights::WeightFile;
use crate::{Error, Result};

pub use loaded::{image_pipeline, read_input_tensor, LoadedModel, ModelSpec};

/// The architectures `fido classify --model` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
    Vgg11,
    Vgg13,
    Vgg16,
    Vgg19,
    AlexNet,
    EfficientNetLite0,
}

impl ModelKind {
    pub const ALL: [ModelKind; 11] = [
        ModelKind::ResNet18,
        ModelKind::ResNet34,
        ModelKind::ResNet50,
        ModelKind::ResNet101,
        ModelKind::ResNet152,
        ModelKind::Vgg11,
        ModelKind::Vgg13,
        ModelKind::Vgg16,
        ModelKind::Vgg19,
        ModelKind::AlexNet,
        ModelKind::EfficientNetLite0,
    ];

    /// The command-line name, e.g. `resnet50` or `efficientnet-lite0`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::ResNet18 => "resnet18",
            ModelKind::ResNet34 => "resnet34",
            ModelKind::ResNet50 => "resnet50",
            ModelKind::ResNet101 => "resnet101",
            ModelKind::ResNet152 => "resnet152",
            ModelKind::Vgg11 => "vgg11",
            ModelKind::Vgg13 => "vgg13",
            ModelKind::Vgg16 => "vgg16",
            ModelKind::Vgg19 => "vgg19",
            ModelKind::AlexNet => "alexnet",
            ModelKind::EfficientNetLite0 => "efficientnet-lite0",
        }
    }

    /// How images are turned into this model's input.
    pub fn preprocess(self) -> Preprocess {
        match self {
            ModelKind::EfficientNetLite0 => Preprocess::EFFICIENTNET_LITE,
            _ => Preprocess::TORCHVISION,
        }
    }

    /// The name of the final linear layer's weight, whose first axis is the class count.
    fn classifier_weight(self) -> &'static str {
        match self {
            ModelKind::ResNet18
            | ModelKind::ResNet34
            | ModelKind::ResNet50
            | ModelKind::ResNet101
            | ModelKind::ResNet152 => "fc.weight",
            ModelKind::Vgg11
            | ModelKind::Vgg13
            | ModelKind::Vgg16
            | ModelKind::Vgg19
            | ModelKind::AlexNet => "classifier.6.weight",
            ModelKind::EfficientNetLite0 => "_fc.weight",
        }
    }

    /// Every tensor the state_dict of this architecture holds (batch-norm counters aside),
    /// with its shape, for a head of `num_classes` outputs.
    pub fn expected_tensors(self, num_classes: usize) -> Vec<TensorSpec> {
        let mut out = Vec::new();
        match self {
            ModelKind::ResNet18
            | ModelKind::ResNet34
            | ModelKind::ResNet50
            | ModelKind::ResNet101
            | ModelKind::ResNet152 => resnet::describe(self, num_classes).tensors(&mut out),
            ModelKind::Vgg11 | ModelKind::Vgg13 | ModelKind::Vgg16 | ModelKind::Vgg19 => {
                vgg::describe(self, num_classes).tensors(&mut out)
            }
            ModelKind::AlexNet => alexnet::describe(num_classes).tensors(&mut out),
            ModelKind::EfficientNetLite0 => efficientnet::describe(num_classes).tensors(&mut out),
        }
        out
    }

    /// Elements of the largest activation one image produces at `h`×`w`, with a margin for
    /// the padded, channel-packed copies the convolutions make. Used to split a batch so no
    /// tensor outgrows one storage binding.
    fn peak_elements_per_image(self, h: usize, w: usize) -> usize {
        let half = (h.div_ceil(2) + 2) * (w.div_ceil(2) + 2);
        let full = (h + 2) * (w + 2);
        let input = 4 * (h + 10) * (w + 10);
        let widest = match self {
            ModelKind::ResNet18
            | ModelKind::ResNet34
            | ModelKind::ResNet50
            | ModelKind::ResNet101
            | ModelKind::ResNet152 => 64 * half,
            ModelKind::Vgg11 | ModelKind::Vgg13 | ModelKind::Vgg16 | ModelKind::Vgg19 => 64 * full,
            ModelKind::AlexNet => 64 * (h / 4 + 3) * (w / 4 + 3),
            ModelKind::EfficientNetLite0 => 96 * half,
        };
        widest.max(input) * 5 / 4
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<ModelKind> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let valid: Vec<&str> = ModelKind::ALL.iter().map(|k| k.name()).collect();
                Error::InvalidArgument(format!(
                    "unknown model `{s}`; valid models are: {}",
                    valid.join(", ")
                ))
            })
    }
}

/// How an image becomes the network input, as data; the image code applies it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preprocess {
    /// Network input height and width.
    pub input_size: [usize; 2],
    pub resize: ResizeMode,
    /// The range 8-bit pixel values are mapped to before normalising: 1.0 maps 0..255 to
    /// 0..1 (torchvision's `ToTensor`), 255.0 keeps them as 0..255.
    pub pixel_range: f32,
    /// Per-channel (R, G, B) mean and standard deviation in `pixel_range` units:
    /// `input = (pixel / 255 · pixel_range − mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// How the source image is brought to the input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    /// Resize so the shorter side is `shorter_side` (keeping the aspect ratio), then crop the
    /// centre `input_size`.
    ShorterSideThenCenterCrop { shorter_side: usize },
    /// Resize both axes straight to `input_size`, ignoring the aspect ratio.
    Stretch,
}

impl Preprocess {
    /// torchvision's ImageNet evaluation transform.
    pub const TORCHVISION: Preprocess = Preprocess {
        input_size: [224, 224],
        resize: ResizeMode::ShorterSideThenCenterCrop { shorter_side: 256 },
        pixel_range: 1.0,
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// EfficientNet-Lite: RGB 0..255 resized to 224×224, then `(x − 127) / 128`.
    pub const EFFICIENTNET_LITE: Preprocess = Preprocess {
        input_size: [224, 224],
        resize: ResizeMode::Stretch,
        pixel_range: 255.0,
        mean: [127.0; 3],
        std: [128.0; 3],
    };

    /// Pixel / 255 only, stretched to the input size.
    pub const UNIT: Preprocess = Preprocess {
        input_size: [224, 224],
        resize: ResizeMode::Stretch,
        pixel_range: 1.0,
        mean: [0.0; 3],
        std: [1.0; 3],
    };

    /// The normalised input value of an 8-bit `pixel` in `channel` (0 = R, 1 = G, 2 = B).
    pub fn normalize(&self, pixel: u8, channel: usize) -> f32 {
        (pixel as f32 / 255.0 * self.pixel_range - self.mean[channel]) / self.std[channel]
    }

    /// The same pipeline for an `n`×`n` input: a shorter-side resize scales with it
    /// (256 for 224 becomes `round(256·n/224)`).
    pub fn resized(&self, n: usize) -> Preprocess {
        let resize = match self.resize {
            ResizeMode::ShorterSideThenCenterCrop { shorter_side } => {
                let old = self.input_size[0].max(1);
                ResizeMode::ShorterSideThenCenterCrop {
                    shorter_side: ((shorter_side * n) as f64 / old as f64).round().max(n as f64) as usize,
                }
            }
            ResizeMode::Stretch => ResizeMode::Stretch,
        };
        Preprocess {
            input_size: [n, n],
            resize,
            ..*self
        }
    }
}

/// A named preprocessing, as `--preprocess` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreprocessPreset {
    /// Resize the shorter side to `256·N/224`, centre-crop N, pixel/255, ImageNet mean and std.
    Imagenet,
    /// What the native EfficientNet-Lite0 uses: stretch to N×N, `(pixel − 127) / 128` on 0..255.
    Lite0,
    /// Pixel/255 only, stretched to N×N.
    None,
}

impl PreprocessPreset {
    /// The preset's pipeline for an `n`×`n` input.
    pub fn at_size(self, n: usize) -> Preprocess {
        match self {
            PreprocessPreset::Imagenet => Preprocess::TORCHVISION.resized(n),
            PreprocessPreset::Lite0 => ModelKind::EfficientNetLite0.preprocess().resized(n),
            PreprocessPreset::None => Preprocess::UNIT.resized(n),
        }
    }
}

impl FromStr for PreprocessPreset {
    type Err = Error;
    fn from_str(s: &str) -> Result<PreprocessPreset> {
        match s.trim().to_ascii_lowercase().as_str() {
            "imagenet" => Ok(PreprocessPreset::Imagenet),
            "lite0" => Ok(PreprocessPreset::Lite0),
            "none" => Ok(PreprocessPreset::None),
            _ => Err(Error::InvalidArgument(format!(
                "unknown preprocessing `{s}`; expected imagenet, lite0 or none"
            ))),
        }
    }
}

impl fmt::Display for PreprocessPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PreprocessPreset::Imagenet => "imagenet",
            PreprocessPreset::Lite0 => "lite0",
            PreprocessPreset::None => "none",
        })
    }
}

/// Three per-channel values (R, G, B) written `R,G,B`, as `--mean` and `--std` take them.
pub fn parse_channels(text: &str) -> Result<[f32; 3]> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let values: Vec<f32> = parts
        .iter()
        .map(|p| p.parse::<f32>().ok().filter(|v| v.is_finite()))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::InvalidArgument(format!("`{text}` is not a list of three numbers R,G,B")))?;
    <[f32; 3]>::try_from(values).map_err(|v| {
        Error::InvalidArgument(format!("`{text}` has {} values; expected three, R,G,B", v.len()))
    })
}

/// What the user imposes on a model's preprocessing (None: the model's own, or for ONNX
/// models the `imagenet` preset at the graph's input size).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PreprocessOptions {
    pub preset: Option<PreprocessPreset>,
    /// Per-channel mean, in the pipeline's pixel units (0..1 for imagenet and none, 0..255
    /// for lite0).
    pub mean: Option<[f32; 3]>,
    /// Per-channel standard deviation, same units; every value must be positive.
    pub std: Option<[f32; 3]>,
    /// Input side N.
    pub size: Option<usize>,
}

impl PreprocessOptions {
    /// `base` with these options on top: the preset replaces it (at `--size`, else at
    /// `base`'s size), then mean and std replace the preset's.
    pub fn apply(&self, base: Preprocess) -> Result<Preprocess> {
        let n = self.size.unwrap_or(base.input_size[0]);
        if n == 0 {
            return Err(Error::InvalidArgument("--size must be at least 1".into()));
        }
        let mut p = match self.preset {
            Some(preset) => preset.at_size(n),
            None if n == base.input_size[0] && base.input_size[0] == base.input_size[1] => base,
            None => base.resized(n),
        };
        if let Some(mean) = self.mean {
            if mean.iter().any(|v| !v.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "--mean must be finite, got {mean:?}"
                )));
            }
            p.mean = mean;
        }
        if let Some(std) = self.std {
            if std.iter().any(|v| !(*v > 0.0 && v.is_finite())) {
                return Err(Error::InvalidArgument(format!(
                    "--std must be three positive values, got {},{},{}",
                    std[0], std[1], std[2]
                )));
            }
            p.std = std;
        }
        Ok(p)
    }
}

/// One tensor of a state_dict: its name and shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

/// Where a model's parameters come from. Names are the original state_dict names.
pub trait WeightSource {
    /// Where the weights come from, for error messages (a path, or a description).
    fn origin(&self) -> String;
    /// Every tensor name the source holds.
    fn tensor_names(&self) -> Vec<String>;
    /// The shape of `name`, or `None` when the source does not hold it.
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>>;
    /// The values of `name` as f32, row-major.
    fn tensor_values(&self, name: &str) -> Result<Vec<f32>>;
}

impl WeightSource for WeightFile {
    fn origin(&self) -> String {
        format!("`{}`", self.path().display())
    }
    fn tensor_names(&self) -> Vec<String> {
        self.names().into_iter().map(str::to_owned).collect()
    }
    fn tensor_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.shape(name).ok()
    }
    fn tensor_values(&self, name: &str) -> Result<Vec<f32>> {
        self.get_f32(name)
    }
}

/// State_dict entries that carry no parameters and may be present or not.
fn is_ignorable(name: &str) -> bool {
    name.ends_with("num_batches_tracked")
}

/// A loaded classifier: architecture plus weights resident on the GPU. Built-in
/// architectures and ONNX graphs look the same from here up: a name, a class count, the
/// preprocessing its inputs go through and a forward pass on the tape.
pub struct Classifier {
    /// The built-in architecture; None for an ONNX graph.
    kind: Option<ModelKind>,
    name: String,
    num_classes: usize,
    preprocess: Preprocess,
    network: Network,
    gpu: Gpu,
}

enum Network {
    ResNet(resnet::ResNet),
    Vgg(vgg::Vgg),
    AlexNet(alexnet::AlexNet),
    EfficientNet(efficientnet::EfficientNet),
    /// An ONNX graph; `batch_one` when it was exported for one image at a time.
    Onnx {
        model: Box<onnx::OnnxClassifier>,
        batch_one: bool,
    },
}

impl Classifier {
    /// Load `kind` from a safetensors file with the original state_dict names.
    pub fn load(gpu: &Gpu, kind: ModelKind, weights: &WeightFile) -> Result<Classifier> {
        Self::load_from(gpu, kind, weights)
    }

    /// Load `kind` from any weight source. Every expected tensor must be present with its
    /// exact shape and nothing else may be (`num_batches_tracked` counters aside); the error
    /// names the offending tensors. The class count is read from the final layer.
    pub fn load_from(gpu: &Gpu, kind: ModelKind, weights: &dyn WeightSource) -> Result<Classifier> {
        let num_classes = weights
            .tensor_shape(kind.classifier_weight())
            .and_then(|s| s.first().copied())
            .unwrap_or(1000);
        let expected = kind.expected_tensors(num_classes);
        check_tensors(kind, &expected, weights)?;
        let loader = layers::Loader { gpu, source: weights };
        let network = match kind {
            ModelKind::ResNet18
            | ModelKind::ResNet34
            | ModelKind::ResNet50
            | ModelKind::ResNet101
            | ModelKind::ResNet152 => Network::ResNet(resnet::describe(kind, num_classes).load(&loader)?),
            ModelKind::Vgg11 | ModelKind::Vgg13 | ModelKind::Vgg16 | ModelKind::Vgg19 => {
                Network::Vgg(vgg::describe(kind, num_classes).load(&loader)?)
            }
            ModelKind::AlexNet => Network::AlexNet(alexnet::describe(num_classes).load(&loader)?),
            ModelKind::EfficientNetLite0 => {
                Network::EfficientNet(efficientnet::describe(num_classes).load(&loader)?)
            }
        };
        Ok(Classifier {
            kind: Some(kind),
            name: kind.to_string(),
            num_classes,
            preprocess: kind.preprocess(),
            network,
            gpu: gpu.clone(),
        })
    }

    /// Load an ONNX classifier from `path` with the preprocessing `options` choose (default:
    /// the `imagenet` preset). The input side comes from the graph's declared input, else
    /// from `options.size`, else 224; see [`from_onnx`](Self::from_onnx) for the rest.
    pub fn load_onnx(gpu: &Gpu, path: &Path, options: &PreprocessOptions) -> Result<Classifier> {
        if !path.is_file() {
            return Err(Error::InvalidArgument(format!(
                "model file `{}` does not exist",
                path.display()
            )));
        }
        let model = onnx::OnnxClassifier::load(gpu, path)?;
        let declared = match model.input_shape() {
            [_, _, Some(h), Some(w)] => Some((*h, *w)),
            _ => None,
        };
        let n = match (declared, options.size) {
            (Some((h, w)), _) if h != w => {
                return Err(Error::InvalidArgument(format!(
                    "`{}` declares a {h}×{w} input; fido takes square inputs only",
                    path.display()
                )))
            }
            (Some((h, _)), Some(n)) if n != h => {
                return Err(Error::InvalidArgument(format!(
                    "--size {n} disagrees with the {h}×{h} input `{}` declares",
                    path.display()
                )))
            }
            (Some((h, _)), _) => h,
            (None, Some(n)) => n,
            (None, None) => 224,
        };
        let preprocess = options.apply(PreprocessPreset::Imagenet.at_size(n))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "onnx".into());
        Self::from_onnx(gpu, model, name, preprocess)
    }

    /// Wrap a loaded ONNX graph. Its input must be `[N, 3, H, W]` as declared (any axis may
    /// be dynamic; a declared H×W must be `preprocess`'s size). A dynamic batch axis takes
    /// the samples in one pass; a graph exported with batch 1 runs them one after another
    /// ([`runs_one_at_a_time`](Self::runs_one_at_a_time)); another fixed batch is refused.
    /// The class count is the declared output's, else one forward pass finds it.
    pub fn from_onnx(
        gpu: &Gpu,
        model: onnx::OnnxClassifier,
        name: impl Into<String>,
        preprocess: Preprocess,
    ) -> Result<Classifier> {
        let name = name.into();
        let bad = |why: String| Error::InvalidArgument(format!("ONNX model `{name}`: {why}"));
        let shape = model.input_shape().to_vec();
        if shape.len() != 4 || shape[1].is_some_and(|c| c != 3) {
            let dims: Vec<String> = shape
                .iter()
                .map(|d| d.map_or("?".to_string(), |v| v.to_string()))
                .collect();
            return Err(bad(format!(
                "its input is [{}]; fido feeds images as [N, 3, H, W]",
                dims.join(", ")
            )));
        }
        let [h, w] = preprocess.input_size;
        if let (Some(gh), Some(gw)) = (shape[2], shape[3]) {
            if (gh, gw) != (h, w) {
                return Err(bad(format!(
                    "it declares a {gh}×{gw} input but the preprocessing makes {h}×{w}"
                )));
            }
        }
        let batch_one = match shape[0] {
            None => false,
            Some(1) => true,
            Some(b) => {
                return Err(bad(format!(
                "it was exported with a fixed batch of {b}; export it with a dynamic batch axis or batch 1"
            )))
            }
        };
        let num_classes = match model.output_classes() {
            Some(k) => k,
            None => {
                let tape = Tape::new();
                let x = Tensor::zeros(gpu, &[1, 3, h, w])?;
                let out = tape.no_grad(|| model.forward(&tape, &tape.constant(x)))?;
                match out.shape() {
                    [1, k] => *k,
                    other => return Err(bad(format!("its output is {other:?}, not [N, classes]"))),
                }
            }
        };
        Ok(Classifier {
            kind: None,
            name,
            num_classes,
            preprocess,
            network: Network::Onnx {
                model: Box::new(model),
                batch_one,
            },
            gpu: gpu.clone(),
        })
    }

    /// The built-in architecture, or None for an ONNX graph.
    pub fn kind(&self) -> Option<ModelKind> {
        self.kind
    }

    /// The name reports print: the architecture (`resnet50`) or the ONNX file's stem.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// How images become this classifier's input.
    pub fn preprocess(&self) -> Preprocess {
        self.preprocess
    }

    /// The same classifier with another preprocessing. For an ONNX graph with a declared
    /// input size, the size must stay.
    pub fn with_preprocess(mut self, preprocess: Preprocess) -> Result<Classifier> {
        if let Some([h, w]) = self.fixed_input_size() {
            if [h, w] != preprocess.input_size {
                return Err(Error::InvalidArgument(format!(
                    "ONNX model `{}` declares a {h}×{w} input; the preprocessing cannot change it",
                    self.name
                )));
            }
        }
        self.preprocess = preprocess;
        Ok(self)
    }

    /// The input height and width the model insists on: an ONNX graph's declared ones; None
    /// when any size is taken (built-in architectures, dynamic ONNX axes).
    pub fn fixed_input_size(&self) -> Option<[usize; 2]> {
        match &self.network {
            Network::Onnx { model, .. } => match model.input_shape() {
                [_, _, Some(h), Some(w)] => Some([*h, *w]),
                _ => None,
            },
            _ => None,
        }
    }

    /// True for an ONNX graph exported with batch 1: a batch runs one sample at a time.
    pub fn runs_one_at_a_time(&self) -> bool {
        matches!(self.network, Network::Onnx { batch_one: true, .. })
    }

    /// Logits `[N, num_classes]` of a normalised input `[N, 3, H, W]`. The weights enter the
    /// tape as constants, so only the input (and whatever it was computed from) gets a
    /// gradient. A batch whose activations would outgrow one storage binding is run in
    /// slices, concatenated on the tape.
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        self.check_input(x)?;
        let shape = x.shape();
        let (h, w) = (shape[2], shape[3]);
        let Some(kind) = self.kind else {
            // An ONNX graph: all at once, or one sample at a time when exported with batch 1.
            let per_slice = if self.runs_one_at_a_time() { 1 } else { shape[0] };
            return self.forward_in_slices(tape, x, per_slice);
        };
        let per_image = (kind.peak_elements_per_image(h, w) * 4) as u64;
        let per_slice = (self.gpu.max_binding_bytes() / per_image.max(1)).max(1) as usize;
        self.forward_in_slices(tape, x, per_slice)
    }

    /// [`forward`](Self::forward) on at most `images` images at a time, concatenating the
    /// logits on the tape.
    pub fn forward_in_slices(&self, tape: &Tape, x: &Var, images: usize) -> Result<Var> {
        self.check_input(x)?;
        let n = x.shape()[0];
        let images = images.max(1);
        if n <= images {
            return self.forward_batch(tape, x);
        }
        let mut parts = Vec::new();
        for start in (0..n).step_by(images) {
            let slice = x.slice(0, start, (start + images).min(n))?;
            parts.push(self.forward_batch(tape, &slice)?);
        }
        Var::concat(&parts.iter().collect::<Vec<_>>(), 0)
    }

    fn check_input(&self, x: &Var) -> Result<()> {
        let shape = x.shape();
        if shape.len() != 4 || shape[1] != 3 || shape[0] == 0 {
            return Err(Error::Shape {
                op: "classifier",
                detail: format!(
                    "{} expects a normalised input [N, 3, H, W] with N ≥ 1, got {shape:?}",
                    self.name
                ),
            });
        }
        if let Some([h, w]) = self.fixed_input_size() {
            if (shape[2], shape[3]) != (h, w) {
                return Err(Error::Shape {
                    op: "classifier",
                    detail: format!("{} takes [N, 3, {h}, {w}] inputs, got {shape:?}", self.name),
                });
            }
        }
        Ok(())
    }

    fn forward_batch(&self, tape: &Tape, x: &Var) -> Result<Var> {
        match &self.network {
            Network::ResNet(net) => net.forward(tape, x),
            Network::Vgg(net) => net.forward(tape, x),
            Network::AlexNet(net) => net.forward(tape, x),
            Network::EfficientNet(net) => net.forward(tape, x),
            Network::Onnx { model, .. } => {
                let out = model.forward(tape, x)?;
                if out.shape().len() != 2 || out.shape()[0] != x.shape()[0] {
                    return Err(Error::Shape {
                        op: "classifier",
                        detail: format!(
                            "ONNX model `{}` returned {:?} for {} inputs; expected logits [N, classes]",
                            self.name,
                            out.shape(),
                            x.shape()[0]
                        ),
                    });
                }
                Ok(out)
            }
        }
    }
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Classifier({}, {} classes)", self.name, self.num_classes)
    }
}

/// Compare the source's names and shapes with the architecture's before anything is read.
fn check_tensors(kind: ModelKind, expected: &[TensorSpec], source: &dyn WeightSource) -> Result<()> {
    let names = source.tensor_names();
    let missing: Vec<&str> = expected
        .iter()
        .filter(|t| source.tensor_shape(&t.name).is_none())
        .map(|t| t.name.as_str())
        .collect();
    let unexpected: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !is_ignorable(n) && !expected.iter().any(|t| t.name == *n))
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("{} missing: {}", missing.len(), list_names(&missing)));
        }
        if !unexpected.is_empty() {
            parts.push(format!(
                "{} unexpected: {}",
                unexpected.len(),
                list_names(&unexpected)
            ));
        }
        return Err(Error::Weights(format!(
            "{} does not hold {kind} weights; {}{}",
            source.origin(),
            parts.join("; "),
            guess_kind(kind, source)
        )));
    }
    for t in expected {
        let found = source.tensor_shape(&t.name).unwrap_or_default();
        if found != t.shape {
            return Err(Error::Weights(format!(
                "tensor `{}` in {} has shape {found:?} but {kind} expects {:?}{}",
                t.name,
                source.origin(),
                t.shape,
                guess_kind(kind, source)
            )));
        }
    }
    Ok(())
}

/// A hint naming the architecture the source's tensors do match, if one does.
fn guess_kind(wanted: ModelKind, source: &dyn WeightSource) -> String {
    let names: Vec<String> = source
        .tensor_names()
        .into_iter()
        .filter(|n| !is_ignorable(n))
        .collect();
    for kind in ModelKind::ALL {
        if kind == wanted {
            continue;
        }
        let classes = source
            .tensor_shape(kind.classifier_weight())
            .and_then(|s| s.first().copied())
            .unwrap_or(1000);
        let expected = kind.expected_tensors(classes);
        let matches = expected.len() == names.len()
            && expected
                .iter()
                .all(|t| source.tensor_shape(&t.name).as_deref() == Some(t.shape.as_slice()));
        if matches {
            return format!(" (they match {kind}; pass `--model {kind}`)");
        }
    }
    String::new()
}

fn list_names(names: &[&str]) -> String {
    const SHOWN: usize = 8;
    let shown: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{n}`")).collect();
    match names.len().saturating_sub(SHOWN) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

/// Per-row log-odds of the label, `s_i = log p_c − log(1 − p_c)` with `p = softmax(logits_i)`
/// and `c = labels[i]`; shape `[N]`, on the tape. The labels are checked here, on the host;
/// the work is the fused kernel behind [`Var::log_odds`], which computes
/// `z_c − logsumexp_{k≠c} z_k` so it stays finite where `log(1 − p_c)` would round to −∞.
pub fn log_odds(logits: &Var, labels: &[usize]) -> Result<Var> {
    let shape = logits.shape().to_vec();
    if shape.len() != 2 || shape[0] != labels.len() || shape[0] == 0 {
        return Err(Error::Shape {
            op: "log_odds",
            detail: format!(
                "logits {shape:?} must be [N, classes] with one label per row ({} labels)",
                labels.len()
            ),
        });
    }
    let classes = shape[1];
    if classes < 2 {
        return Err(Error::Shape {
            op: "log_odds",
            detail: format!("log-odds need at least two classes, logits are {shape:?}"),
        });
    }
    if let Some(&bad) = labels.iter().find(|&&c| c >= classes) {
        return Err(Error::InvalidArgument(format!(
            "label {bad} is out of range for {classes} classes"
        )));
    }
    let labels: Vec<u32> = labels.iter().map(|&c| c as u32).collect();
    logits.log_odds(&Tensor::from_u32(logits.value().gpu(), &[labels.len()], &labels)?)
}
