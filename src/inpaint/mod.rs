//! The DeepFill v1 generator (Yu et al. 2018, "Generative Image Inpainting with Contextual
//! Attention"), forward only, with the authors' TF semantics: TF 'SAME' zero padding (the odd
//! pixel after), ELU, TF1 align-corners nearest resizing, and contextual attention with each
//! batch item's own mask.
//!
//! Inputs are BGR images in [−1, 1] (`v/127.5 − 1` of 0..255 values) and masks with 1 at
//! holes, sides a multiple of 8. The net input is `[x·(1−m), 1, m]`.
//!
//! Weights use the names of the authors' TF checkpoints (84 tensors, 3,601,542 parameters):
//! `inpaint_net/NAME/kernel` (HWIO `[kh, kw, cin, cout]`) and `inpaint_net/NAME/bias`, with
//! `inpaint_net/NAME/NAME_conv/kernel` for the up layers (×2 nearest, then the conv). NAME is,
//! in order:
//!
//! | stage | layers |
//! |---|---|
//! | 1 | `conv1` `conv2_downsample` `conv3` `conv4_downsample` `conv5` `conv6` `conv7_atrous` `conv8_atrous` `conv9_atrous` `conv10_atrous` `conv11` `conv12` `conv13_upsample` `conv14` `conv15_upsample` `conv16` `conv17` |
//! | 2, conv branch | `xconv1` `xconv2_downsample` `xconv3` `xconv4_downsample` `xconv5` `xconv6` `xconv7_atrous` `xconv8_atrous` `xconv9_atrous` `xconv10_atrous` |
//! | 2, attention branch | `pmconv1` `pmconv2_downsample` `pmconv3` `pmconv4_downsample` `pmconv5` `pmconv6` (ReLU) contextual attention `pmconv9` `pmconv10` |
//! | 2, merge | `allconv11` `allconv12` `allconv13_upsample` `allconv14` `allconv15_upsample` `allconv16` `allconv17` |
//!
//! `conv17` and `allconv17` have no activation; the stage outputs are clipped to [−1, 1].
//! Other tensors in the file (discriminators, optimiser slots) are ignored.

pub mod attention;

use std::collections::HashMap;
use std::path::Path;

use crate::gpu::Gpu;
use crate::ops::conv::{conv2d, Conv2dOptions, Padding};
use crate::ops::elementwise::{self, clamp, elu, UnaryOp};
use crate::ops::layout::concat_channels;
use crate::ops::resize::{resize_nearest, NearestMode};
use crate::tensor::Tensor;
use crate::weights::WeightFile;
use crate::{Error, Result};

pub use attention::contextual_attention;

/// Channel width of the generator.
pub const CNUM: usize = 32;
/// Image sides must be multiples of this (two stride-2 levels, then the attention's ×2).
pub const SIDE_MULTIPLE: usize = 8;

/// What a conv is followed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Elu,
    Relu,
    None,
}

/// One convolution of the generator.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// The layer's scope, e.g. `conv13_upsample`.
    pub name: &'static str,
    pub in_channels: usize,
    pub out_channels: usize,
    pub ksize: usize,
    pub stride: usize,
    pub dilation: usize,
    /// ×2 nearest upsampling before the conv.
    pub upsample: bool,
    pub activation: Activation,
}

impl LayerSpec {
    /// Checkpoint name of the HWIO kernel.
    pub fn kernel_name(&self) -> String {
        format!("{}/kernel", self.scope())
    }
    pub fn bias_name(&self) -> String {
        format!("{}/bias", self.scope())
    }
    /// HWIO shape of the kernel as stored.
    pub fn kernel_shape(&self) -> [usize; 4] {
        [self.ksize, self.ksize, self.in_channels, self.out_channels]
    }
    fn scope(&self) -> String {
        if self.upsample {
            format!("inpaint_net/{0}/{0}_conv", self.name)
        } else {
            format!("inpaint_net/{}", self.name)
        }
    }
}

/// Every conv of the generator, in execution order (stage 1, conv branch, attention branch,
/// merge).
pub fn layer_specs() -> Vec<LayerSpec> {
    let c = CNUM;
    let l = |name, cin, cout, ksize, stride, dilation, upsample, activation| LayerSpec {
        name,
        in_channels: cin,
        out_channels: cout,
        ksize,
        stride,
        dilation,
        upsample,
        activation,
    };
    use Activation::{Elu, None as Linear, Relu};
    vec![
        l("conv1", 5, c, 5, 1, 1, false, Elu),
        l("conv2_downsample", c, 2 * c, 3, 2, 1, false, Elu),
        l("conv3", 2 * c, 2 * c, 3, 1, 1, false, Elu),
        l("conv4_downsample", 2 * c, 4 * c, 3, 2, 1, false, Elu),
        l("conv5", 4 * c, 4 * c, 3, 1, 1, false, Elu),
        l("conv6", 4 * c, 4 * c, 3, 1, 1, false, Elu),
        l("conv7_atrous", 4 * c, 4 * c, 3, 1, 2, false, Elu),
        l("conv8_atrous", 4 * c, 4 * c, 3, 1, 4, false, Elu),
        l("conv9_atrous", 4 * c, 4 * c, 3, 1, 8, false, Elu),
        l("conv10_atrous", 4 * c, 4 * c, 3, 1, 16, false, Elu),
        l("conv11", 4 * c, 4 * c, 3, 1, 1, false, Elu),
        l("conv12", 4 * c, 4 * c, 3, 1, 1, false, Elu),
        l("conv13_upsample", 4 * c, 2 * c, 3, 1, 1, true, Elu),
        l("conv14", 2 * c, 2 * c, 3, 1, 1, false, Elu),
        l("conv15_upsample", 2 * c, c, 3, 1, 1, true, Elu),
        l("conv16", c, c / 2, 3, 1, 1, false, Elu),
        l("conv17", c / 2, 3, 3, 1, 1, false, Linear),
        l("xconv1", 5, c, 5, 1, 1, false, Elu),
        l("xconv2_downsample", c, c, 3, 2, 1, false, Elu),
        l("xconv3", c, 2 * c, 3, 1, 1, false, Elu),
        l("xconv4_downsample", 2 * c, 2 * c, 3, 2, 1, false, Elu),
        l("xconv5", 2 * c, 4 * c, 3, 1, 1, false, Elu),
        l("xconv6", 4 * c, 4 * c, 3, 1, 1, false, Elu),
        l("xconv7_atrous", 4 * c, 4 * c, 3, 1, 2, false, Elu),
        l("xconv8_atrous", 4 * c, 4 * c, 3, 1, 4, false, Elu),
        l("xconv9_atrous", 4 * c, 4 * c, 3, 1, 8, false, Elu),
        l("xconv10_atrous", 4 * c, 4 * c, 3, 1, 16, false, Elu),
        l("pmconv1", 5, c, 5, 1, 1, false, Elu),
        l("pmconv2_downsample", c, c, 3, 2, 1, false, Elu),
        l("pmconv3", c, 2 * c, 3, 1, 1, false, Elu),
        l("pmconv4_downsample", 2 * c, 4 * c, 3, 2, 1, false, Elu),
        l("pmconv5", 4 * c, 4 * c, 3, 1, 1, false, Elu),
        l("pmconv6", 4 * c, 4 * c, 3, 1, 1, false, Relu),
        l("pmconv9", 4 * c, 4 * c, 3, 1, 1, false, Elu),
        l("pmconv10", 4 * c, 4 * c, 3, 1, 1, false, Elu),
        l("allconv11", 8 * c, 4 * c, 3, 1, 1, false, Elu),
        l("allconv12", 4 * c, 4 * c, 3, 1, 1, false, Elu),
        l("allconv13_upsample", 4 * c, 2 * c, 3, 1, 1, true, Elu),
        l("allconv14", 2 * c, 2 * c, 3, 1, 1, false, Elu),
        l("allconv15_upsample", 2 * c, c, 3, 1, 1, true, Elu),
        l("allconv16", c, c / 2, 3, 1, 1, false, Elu),
        l("allconv17", c / 2, 3, 3, 1, 1, false, Linear),
    ]
}

/// Every checkpoint tensor the generator needs, with its stored (HWIO) shape.
pub fn tensor_specs() -> Vec<(String, Vec<usize>)> {
    layer_specs()
        .iter()
        .flat_map(|s| {
            [
                (s.kernel_name(), s.kernel_shape().to_vec()),
                (s.bias_name(), vec![s.out_channels]),
            ]
        })
        .collect()
}

/// HWIO `[kh, kw, cin, cout]` to OIHW `[cout, cin, kh, kw]`.
pub fn hwio_to_oihw(values: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let [kh, kw, cin, cout] = shape;
    let mut out = vec![0.0; values.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..cin {
                for o in 0..cout {
                    out[((o * cin + i) * kh + y) * kw + x] = values[((y * kw + x) * cin + i) * cout + o];
                }
            }
        }
    }
    out
}

#[derive(Clone)]
struct ConvLayer {
    spec: LayerSpec,
    weight: Tensor,
    bias: Tensor,
}

/// The generator with its weights on the GPU. Clones share the weights.
#[derive(Clone)]
pub struct CaGenerator {
    gpu: Gpu,
    layers: HashMap<&'static str, ConvLayer>,
}

impl CaGenerator {
    /// Loads a safetensors file with the TF checkpoint's names and HWIO kernels.
    pub fn load(gpu: &Gpu, path: &Path) -> Result<Self> {
        let file = WeightFile::open(path)?;
        Self::from_weight_file(gpu, &file)
    }

    pub fn from_weight_file(gpu: &Gpu, file: &WeightFile) -> Result<Self> {
        let missing: Vec<String> = tensor_specs()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| !file.contains(name))
            .collect();
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().take(8).map(String::as_str).collect();
            return Err(Error::Weights(format!(
                "`{}` is not a DeepFill v1 (contextual attention) generator: {} of its {} tensors are missing, e.g. {}{}",
                file.path().display(),
                missing.len(),
                tensor_specs().len(),
                shown.join(", "),
                if missing.len() > shown.len() { ", …" } else { "" }
            )));
        }
        Self::from_fn(gpu, |name, shape| file.expect(name, shape))
    }

    /// Builds the generator from a source of checkpoint tensors (HWIO kernels), e.g.
    /// [`synthetic_values`].
    pub fn from_fn(gpu: &Gpu, mut get: impl FnMut(&str, &[usize]) -> Result<Vec<f32>>) -> Result<Self> {
        let mut layers = HashMap::new();
        for spec in layer_specs() {
            let hwio = spec.kernel_shape();
            let kernel = get(&spec.kernel_name(), &hwio)?;
            let bias = get(&spec.bias_name(), &[spec.out_channels])?;
            let oihw = hwio_to_oihw(&kernel, hwio);
            let weight = Tensor::from_slice(
                gpu,
                &[spec.out_channels, spec.in_channels, spec.ksize, spec.ksize],
                &oihw,
            )?;
            let bias = Tensor::from_slice(gpu, &[spec.out_channels], &bias)?;
            layers.insert(spec.name, ConvLayer { spec, weight, bias });
        }
        Ok(CaGenerator {
            gpu: gpu.clone(),
            layers,
        })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// In-paints `image` `[B, 3, H, W]` (BGR in [−1, 1]) where `mask` `[B, 1, H, W]` is 1.
    /// Returns the merged result `x2·m + x·(1−m)` in [−1, 1].
    pub fn forward(&self, image: &Tensor, mask: &Tensor) -> Result<Tensor> {
        check_inputs(image, mask)?;
        let (batch, h, w) = (image.shape()[0], image.shape()[2], image.shape()[3]);
        // The largest tensor is the zero-padded input of a 2c-channel 3×3 conv at full size;
        // run as many samples at once as keep it within one storage binding.
        let per_sample = (4 * 2 * CNUM * (h + 2) * (w + 2)) as u64;
        let fit = (self.gpu.max_binding_bytes() / (per_sample + per_sample / 4)).max(1) as usize;
        if batch <= fit {
            return Ok(self.forward_stages(image, mask)?.output);
        }
        let mut parts = Vec::new();
        for start in (0..batch).step_by(fit) {
            let end = (start + fit).min(batch);
            let part_image = crate::ops::layout::slice(image, 0, start, end)?;
            let part_mask = crate::ops::layout::slice(mask, 0, start, end)?;
            parts.push(self.forward_stages(&part_image, &part_mask)?.output);
        }
        crate::ops::layout::concat(&parts.iter().collect::<Vec<_>>(), 0)
    }

    /// Like [`forward`](Self::forward), keeping the intermediate results.
    pub fn forward_stages(&self, image: &Tensor, mask: &Tensor) -> Result<Stages> {
        check_inputs(image, mask)?;
        let (batch, h, w) = (image.shape()[0], image.shape()[2], image.shape()[3]);
        let keep = elementwise::add_scalar(&elementwise::neg(mask)?, 1.0)?;
        let x_in = elementwise::mul(image, &keep)?;
        let ones = Tensor::full(&self.gpu, &[batch, 1, h, w], 1.0)?;
        let net_input = |x: &Tensor| concat_channels(&[x, &ones, mask]);

        let mut x = net_input(&x_in)?;
        for name in [
            "conv1",
            "conv2_downsample",
            "conv3",
            "conv4_downsample",
            "conv5",
            "conv6",
            "conv7_atrous",
            "conv8_atrous",
            "conv9_atrous",
            "conv10_atrous",
            "conv11",
            "conv12",
            "conv13_upsample",
            "conv14",
            "conv15_upsample",
            "conv16",
            "conv17",
        ] {
            x = self.layer(name, &x)?;
        }
        let stage1 = clamp(&x, -1.0, 1.0)?;

        let merged1 = merge(&stage1, &x_in, mask)?;
        let x_now = net_input(&merged1)?;
        let mut hallucinated = x_now.clone();
        for name in [
            "xconv1",
            "xconv2_downsample",
            "xconv3",
            "xconv4_downsample",
            "xconv5",
            "xconv6",
            "xconv7_atrous",
            "xconv8_atrous",
            "xconv9_atrous",
            "xconv10_atrous",
        ] {
            hallucinated = self.layer(name, &hallucinated)?;
        }
        let mut matched = x_now;
        for name in [
            "pmconv1",
            "pmconv2_downsample",
            "pmconv3",
            "pmconv4_downsample",
            "pmconv5",
            "pmconv6",
        ] {
            matched = self.layer(name, &matched)?;
        }
        let feature_mask = resize_nearest(mask, h / 4, w / 4, NearestMode::TfAlignCorners)?;
        matched = contextual_attention(&matched, &feature_mask)?;
        for name in ["pmconv9", "pmconv10"] {
            matched = self.layer(name, &matched)?;
        }
        let mut y = concat_channels(&[&hallucinated, &matched])?;
        for name in [
            "allconv11",
            "allconv12",
            "allconv13_upsample",
            "allconv14",
            "allconv15_upsample",
            "allconv16",
            "allconv17",
        ] {
            y = self.layer(name, &y)?;
        }
        let stage2 = clamp(&y, -1.0, 1.0)?;
        let output = merge(&stage2, &x_in, mask)?;
        Ok(Stages {
            stage1,
            stage2,
            output,
        })
    }

    fn layer(&self, name: &str, x: &Tensor) -> Result<Tensor> {
        let layer = &self.layers[name];
        let spec = &layer.spec;
        let x = if spec.upsample {
            let (h, w) = (x.shape()[2], x.shape()[3]);
            resize_nearest(x, 2 * h, 2 * w, NearestMode::TfAlignCorners)?
        } else {
            x.clone()
        };
        let (h, w) = (x.shape()[2], x.shape()[3]);
        let padding = Padding::tf_same(h, w, spec.ksize, spec.ksize, [spec.stride; 2], [spec.dilation; 2]);
        let opts = Conv2dOptions::new()
            .stride(spec.stride, spec.stride)
            .dilation(spec.dilation, spec.dilation)
            .padding(padding);
        let y = conv2d(&x, &layer.weight, Some(&layer.bias), &opts)?;
        match spec.activation {
            Activation::Elu => elu(&y, 1.0),
            Activation::Relu => elementwise::unary(&y, UnaryOp::Relu),
            Activation::None => Ok(y),
        }
    }
}

/// The generator's intermediate results, all `[B, 3, H, W]` in [−1, 1].
pub struct Stages {
    /// Coarse stage output, clipped.
    pub stage1: Tensor,
    /// Refinement stage output, clipped.
    pub stage2: Tensor,
    /// `stage2·m + x·(1−m)`.
    pub output: Tensor,
}

/// `generated·m + x_in`, where `x_in = x·(1−m)` already.
fn merge(generated: &Tensor, x_in: &Tensor, mask: &Tensor) -> Result<Tensor> {
    elementwise::add(&elementwise::mul(generated, mask)?, x_in)
}

/// Shapes the generator accepts: `[B, 3, H, W]` and `[B, 1, H, W]`, sides multiples of 8.
pub fn check_inputs(image: &Tensor, mask: &Tensor) -> Result<()> {
    let s = image.shape();
    let ok = s.len() == 4 && s[1] == 3 && mask.shape() == [s[0], 1, s[2], s[3]];
    if !ok {
        return Err(Error::Shape {
            op: "inpaint",
            detail: format!(
                "image must be [B, 3, H, W] and mask [B, 1, H, W] of the same size; got {:?} and {:?}",
                s,
                mask.shape()
            ),
        });
    }
    if s[2] == 0 || s[3] == 0 || s[2] % SIDE_MULTIPLE != 0 || s[3] % SIDE_MULTIPLE != 0 {
        return Err(Error::Shape {
            op: "inpaint",
            detail: format!(
                "image sides must be non-zero multiples of {SIDE_MULTIPLE}; got {}×{}",
                s[2], s[3]
            ),
        });
    }
    Ok(())
}

/// Rejects masks with nothing to fill (all 0) or nothing known (all 1); `mask` holds 1 at holes.
pub fn check_mask_values(mask: &[f32]) -> Result<()> {
    let holes = mask.iter().filter(|&&m| m > 0.5).count();
    if holes == 0 {
        return Err(Error::InvalidArgument(
            "the mask marks no pixel to fill (it must be white where pixels are to be filled)".into(),
        ));
    }
    if holes == mask.len() {
        return Err(Error::InvalidArgument(
            "the mask covers the whole image; contextual attention needs some known pixels".into(),
        ));
    }
    Ok(())
}

/// Deterministic stand-in weights in checkpoint layout, for tests and benchmarks:
/// element `i` of `name` is `u·√(3/fan_in)` for kernels (fan_in = kh·kw·cin) and `0.1·u` for
/// biases, with `u = splitmix64(fnv1a64(name) ^ i)` mapped to [−1, 1) as in
/// [`crate::weights::synthetic::unit`]. `tools/ca_reference.py` draws the same values.
pub fn synthetic_values(name: &str, shape: &[usize]) -> Vec<f32> {
    use crate::weights::synthetic::{fnv1a64, unit};
    let n: usize = shape.iter().product();
    let hash = fnv1a64(name);
    let scale = if shape.len() == 4 {
        (3.0 / (shape[0] * shape[1] * shape[2]) as f64).sqrt()
    } else {
        0.1
    };
    (0..n).map(|i| (unit(hash, i as u64) * scale) as f32).collect()
}
