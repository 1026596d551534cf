//! The Contextual Attention generator as a FIDO in-filler: [`CaSetup`] holds a generator and
//! the side it runs at, and builds a [`CaInfiller`] bound to one classifier input.

use crate::imageio::Normalize;
use crate::inpaint::CaGenerator;
use crate::ops::elementwise::{self, broadcast_to};
use crate::ops::layout::{concat_channels, slice};
use crate::ops::resize::{resize_bilinear, resize_nearest, NearestMode};
use crate::tensor::Tensor;
use crate::{Error, Result};

use super::infill::Infiller;

/// A generator and the square side it in-paints at: what it takes to build a
/// [`CaInfiller`] for any image.
#[derive(Clone)]
pub struct CaSetup {
    pub generator: CaGenerator,
    /// A multiple of 8; [`CaInfiller::SIDE`] for the released checkpoints.
    pub side: usize,
}

impl CaSetup {
    /// At the side the released checkpoints were trained at.
    pub fn new(generator: CaGenerator) -> CaSetup {
        CaSetup {
            generator,
            side: CaInfiller::SIDE,
        }
    }

    /// The in-filler for the classifier input `x` `[1, 3, H, W]` normalised with `norm`.
    pub fn infiller(&self, x: &Tensor, norm: Normalize) -> Result<CaInfiller> {
        CaInfiller::with_side(self.generator.clone(), x, norm, self.side)
    }
}

impl std::fmt::Debug for CaSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSetup")
            .field("side", &self.side)
            .finish_non_exhaustive()
    }
}

/// The generator as a FIDO in-filler: the classifier-normalised RGB image is brought to the
/// generator's BGR [−1, 1] at [`CaInfiller::SIDE`] once; each call in-paints all B masks in one
/// batched pass and returns the results at the classifier's size and normalisation.
pub struct CaInfiller {
    generator: CaGenerator,
    /// `[1, 3, SIDE, SIDE]` BGR in [−1, 1].
    image: Tensor,
    model_hw: [usize; 2],
    side: usize,
    /// Per-channel `a·u + b` taking generator RGB in [−1, 1] to the classifier's normalisation.
    to_model_scale: Tensor,
    to_model_shift: Tensor,
}

impl CaInfiller {
    /// The side the generator was trained at.
    pub const SIDE: usize = 256;

    /// `x` `[1, 3, H, W]` is the classifier input (RGB) normalised with `norm`.
    pub fn new(generator: CaGenerator, x: &Tensor, norm: Normalize) -> Result<Self> {
        Self::with_side(generator, x, norm, Self::SIDE)
    }

    /// Like [`new`](Self::new), running the generator at `side`×`side` (a multiple of 8).
    pub fn with_side(generator: CaGenerator, x: &Tensor, norm: Normalize, side: usize) -> Result<Self> {
        let s = x.shape();
        if s.len() != 4 || s[0] != 1 || s[1] != 3 {
            return Err(Error::Shape {
                op: "ca_infill",
                detail: format!("image must be [1, 3, H, W], got {s:?}"),
            });
        }
        let gpu = x.gpu();
        // Normalised RGB → unit RGB → [−1, 1], reordered to BGR: a per-channel affine map.
        let rgb_to_unit = |c: usize| (norm.std[c] / norm.range, norm.mean[c] / norm.range);
        let mut bgr_scale = [0.0f32; 3];
        let mut bgr_shift = [0.0f32; 3];
        for c in 0..3 {
            let (a, b) = rgb_to_unit(c);
            bgr_scale[c] = 2.0 * a;
            bgr_shift[c] = 2.0 * b - 1.0;
        }
        let rgb = [0, 1, 2].map(|c| slice(x, 1, c, c + 1));
        let [r, g, b] = rgb;
        let (r, g, b) = (r?, g?, b?);
        let bgr = concat_channels(&[&b, &g, &r])?;
        let scale = Tensor::from_slice(gpu, &[1, 3, 1, 1], &[bgr_scale[2], bgr_scale[1], bgr_scale[0]])?;
        let shift = Tensor::from_slice(gpu, &[1, 3, 1, 1], &[bgr_shift[2], bgr_shift[1], bgr_shift[0]])?;
        let unit_bgr = elementwise::add(&elementwise::mul(&bgr, &scale)?, &shift)?;
        let image = resize_bilinear(&unit_bgr, side, side, false)?;
        // Inverse map on the RGB result: v = ((u + 1)/2·range − mean)/std.
        let inv_scale: Vec<f32> = (0..3).map(|c| norm.range / (2.0 * norm.std[c])).collect();
        let inv_shift: Vec<f32> = (0..3)
            .map(|c| (norm.range / 2.0 - norm.mean[c]) / norm.std[c])
            .collect();
        Ok(CaInfiller {
            generator,
            image,
            model_hw: [s[2], s[3]],
            side,
            to_model_scale: Tensor::from_slice(gpu, &[1, 3, 1, 1], &inv_scale)?,
            to_model_shift: Tensor::from_slice(gpu, &[1, 3, 1, 1], &inv_shift)?,
        })
    }
}

impl Infiller for CaInfiller {
    fn fill(&mut self, hard_keep: &Tensor, _seed: u64) -> Result<Tensor> {
        let batch = hard_keep.shape()[0];
        let side = self.side;
        // Nearest resizing keeps the hard mask binary (the rounding of a resized mask).
        let keep = resize_nearest(hard_keep, side, side, NearestMode::Torch)?;
        let holes = elementwise::add_scalar(&elementwise::neg(&keep)?, 1.0)?;
        let image = broadcast_to(&self.image, &[batch, 3, side, side])?;
        let filled = self.generator.forward(&image, &holes)?;
        let [h, w] = self.model_hw;
        let small = resize_bilinear(&filled, h, w, false)?;
        let (b, g, r) = (
            slice(&small, 1, 0, 1)?,
            slice(&small, 1, 1, 2)?,
            slice(&small, 1, 2, 3)?,
        );
        let rgb = concat_channels(&[&r, &g, &b])?;
        elementwise::add(
            &elementwise::mul(&rgb, &self.to_model_scale)?,
            &self.to_model_shift,
        )
    }
}
