//! In-fillers: what replaces a dropped pixel. All work in the classifier's normalised input
//! space, take the image `x` `[1, 3, H, W]` and the hard keep mask `[B, 1, H, W]` (1 = kept),
//! and return a background that broadcasts to `[B, 3, H, W]` (mask-independent ones return
//! a single image, so nothing is copied per sample). They run without gradients.

use std::fmt;
use std::str::FromStr;

use crate::imageio::Normalize;
use crate::ops::elementwise::{self, BinaryOp, UnaryOp};
use crate::ops::{filter, random};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// Gaussian σ of the Blur in-filler, in pixels (the paper's setting).
pub const BLUR_SIGMA: f32 = 10.0;
/// Side of the Local in-filler's box window.
pub const LOCAL_WINDOW: usize = 15;
/// Standard deviation of the Random in-filler's per-pixel noise, in 0..1 pixel units.
pub const RANDOM_NOISE_STD: f32 = 0.2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InfillKind {
    Mean,
    Blur,
    Random,
    Local,
    /// The Contextual Attention generative in-painter; needs its weights.
    Ca,
}

impl FromStr for InfillKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "mean" => Self::Mean,
            "blur" => Self::Blur,
            "random" => Self::Random,
            "local" => Self::Local,
            "ca" => Self::Ca,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unknown in-filler `{other}`; expected mean, blur, random, local or ca"
                )))
            }
        })
    }
}

impl fmt::Display for InfillKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Mean => "mean",
            Self::Blur => "blur",
            Self::Random => "random",
            Self::Local => "local",
            Self::Ca => "ca",
        })
    }
}

/// An in-filler bound to one image: whatever does not depend on the mask is computed once.
pub trait Infiller {
    /// The background for the masks in `hard_keep` `[B, 1, H, W]`, broadcastable to
    /// `[B, 3, H, W]`. `seed` varies per step so random in-fillers resample.
    fn fill(&mut self, hard_keep: &Tensor, seed: u64) -> Result<Tensor>;
}

/// Build the in-filler `kind` for image `x` `[1, 3, H, W]` normalised with `norm`; the CA
/// in-filler needs `ca`.
pub fn build(
    kind: InfillKind,
    x: &Tensor,
    norm: Normalize,
    ca: Option<&super::CaSetup>,
) -> Result<Box<dyn Infiller>> {
    match (kind, ca) {
        (InfillKind::Ca, Some(setup)) => Ok(Box::new(setup.infiller(x, norm)?)),
        _ => heuristic(kind, x, norm),
    }
}

/// Build the heuristic in-filler `kind` for image `x` `[1, 3, H, W]` normalised with `norm`.
pub fn heuristic(kind: InfillKind, x: &Tensor, norm: Normalize) -> Result<Box<dyn Infiller>> {
    if x.rank() != 4 || x.shape()[0] != 1 || x.shape()[1] != 3 {
        return Err(Error::Shape {
            op: "infill",
            detail: format!("image must be [1, 3, H, W], got {:?}", x.shape()),
        });
    }
    Ok(match kind {
        InfillKind::Mean => Box::new(MeanInfill {
            value: mean_colour(x, norm)?,
        }),
        InfillKind::Blur => Box::new(BlurInfill {
            blurred: filter::gaussian_blur(x, BLUR_SIGMA)?,
        }),
        InfillKind::Random => Box::new(RandomInfill {
            shape: x.shape().to_vec(),
            norm,
        }),
        InfillKind::Local => Box::new(LocalInfill { x: x.clone() }),
        InfillKind::Ca => {
            return Err(Error::InvalidArgument(
                "the CA in-filler needs its weights: pass --infill-weights CA.safetensors".into(),
            ))
        }
    })
}

/// The dataset mean colour: 0 after mean/std normalisation, so a tensor of the normalised
/// value of the mean (exactly 0 for ImageNet statistics, ~0 for (x−127)/128 models).
fn mean_colour(x: &Tensor, norm: Normalize) -> Result<Tensor> {
    let values: Vec<f32> = (0..3).map(|c| norm.apply(c, norm.mean[c] / norm.range)).collect();
    Tensor::from_slice(x.gpu(), &[1, 3, 1, 1], &values)
}

struct MeanInfill {
    value: Tensor,
}

impl Infiller for MeanInfill {
    fn fill(&mut self, _hard_keep: &Tensor, _seed: u64) -> Result<Tensor> {
        Ok(self.value.clone())
    }
}

struct BlurInfill {
    blurred: Tensor,
}

impl Infiller for BlurInfill {
    fn fill(&mut self, _hard_keep: &Tensor, _seed: u64) -> Result<Tensor> {
        Ok(self.blurred.clone())
    }
}

/// Per sample a uniform random RGB colour in [0,1] plus N(0, 0.2) noise per pixel and
/// channel, clamped to [0,1], then normalised like the image.
struct RandomInfill {
    shape: Vec<usize>,
    norm: Normalize,
}

impl Infiller for RandomInfill {
    fn fill(&mut self, hard_keep: &Tensor, seed: u64) -> Result<Tensor> {
        let gpu = hard_keep.gpu();
        let (b, h, w) = (hard_keep.shape()[0], self.shape[2], self.shape[3]);
        let colour = random::uniform(gpu, &[b, 3, 1, 1], seed, 1)?;
        let noise = random::normal(gpu, &[b, 3, h, w], seed, 2, 0.0, RANDOM_NOISE_STD)?;
        let pixels = elementwise::binary(&noise, &colour, BinaryOp::Add)?;
        elementwise::unary_into(&pixels, UnaryOp::Clamp { lo: 0.0, hi: 1.0 }, &pixels)?;
        // (v·range − mean) / std per channel, as one broadcast multiply and add.
        let scale: Vec<f32> = (0..3).map(|c| self.norm.range / self.norm.std[c]).collect();
        let shift: Vec<f32> = (0..3).map(|c| -self.norm.mean[c] / self.norm.std[c]).collect();
        let scale = Tensor::from_slice(gpu, &[1, 3, 1, 1], &scale)?;
        let shift = Tensor::from_slice(gpu, &[1, 3, 1, 1], &shift)?;
        elementwise::binary_into(&pixels, &scale, BinaryOp::Mul, &pixels)?;
        elementwise::binary_into(&pixels, &shift, BinaryOp::Add, &pixels)?;
        Ok(pixels)
    }
}

/// The mean of the kept pixels in a 15×15 window: box sum of x·keep over the box count of
/// kept pixels (zero padding), and 0 where the window keeps nothing.
struct LocalInfill {
    x: Tensor,
}

impl Infiller for LocalInfill {
    fn fill(&mut self, hard_keep: &Tensor, _seed: u64) -> Result<Tensor> {
        let kept_pixels = elementwise::mul(&self.x, hard_keep)?; // [B, 3, H, W]
        let sums = filter::box_sum(&kept_pixels, LOCAL_WINDOW)?;
        let counts = filter::box_sum(hard_keep, LOCAL_WINDOW)?; // [B, 1, H, W]
                                                                // max(count, 1) keeps the division finite; where the count is 0 the sum is 0 too.
        elementwise::unary_into(
            &counts,
            UnaryOp::Clamp {
                lo: 1.0,
                hi: f32::MAX,
            },
            &counts,
        )?;
        elementwise::div(&sums, &counts)
    }
}
