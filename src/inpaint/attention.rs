//! Contextual attention (Yu et al. 2018), the DeepFill v1 layer that copies known-region
//! feature patches into the hole, with each batch item using its own mask.
//!
//! For one sample with features `b` `[C, h, w]` (foreground = background) and its hole mask
//! at `h×w`:
//! 1. raw patches: 4×4 windows of `b` at stride 2, SAME padding (1 before, 1 after);
//! 2. `b_s` = `b` resized by TF align-corners nearest to `h/2 × w/2`, and the mask likewise;
//! 3. 3×3 patches of `b_s` (stride 1, zero padding 1), valid (`mm = 1`) where the mask's
//!    window is all zero;
//! 4. patches divided by `max(‖patch‖₂, 1e-4)`; scores are the convolution of `b_s` with them;
//! 5. the scores are fused along the diagonal in row-major, then column-major order;
//! 6. `A = softmax_l(10 · S · mm) · mm`;
//! 7. the raw patches are pasted with `A` as a stride-2 transposed convolution, divided by 4.
//!
//! Steps 1, 3, 4 (the normalisation), 5 and 6 are the kernels of [`crate::ops::attention`].

use crate::ops::attention::{
    extract_patches, fuse_diagonal, masked_softmax, normalize_patches, patch_validity, FuseOrder,
};
use crate::ops::conv::{conv2d, conv_transpose2d, Conv2dOptions, Padding};
use crate::ops::elementwise::mul_scalar;
use crate::ops::layout::{concat, slice};
use crate::ops::resize::{resize_nearest, NearestMode};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// Softmax sharpness applied to the fused scores.
pub const SOFTMAX_SCALE: f32 = 10.0;
/// Downsampling factor between the features and the matched patches.
pub const RATE: usize = 2;

/// Contextual attention of `features` `[B, C, h, w]` with `mask` `[B, 1, h, w]` (1 = hole),
/// both sides even. Returns `[B, C, h, w]`.
pub fn contextual_attention(features: &Tensor, mask: &Tensor) -> Result<Tensor> {
    const OP: &str = "contextual_attention";
    let shape = features.shape().to_vec();
    if shape.len() != 4 || mask.shape() != [shape[0], 1, shape[2], shape[3]] {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "features must be [B, C, h, w] and mask [B, 1, h, w]; got {:?} and {:?}",
                shape,
                mask.shape()
            ),
        });
    }
    let (batch, _, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    if h % RATE != 0 || w % RATE != 0 || h == 0 || w == 0 {
        return Err(Error::Shape {
            op: OP,
            detail: format!("feature map {h}×{w} must have even, non-zero sides"),
        });
    }
    let small_features = resize_nearest(features, h / RATE, w / RATE, NearestMode::TfAlignCorners)?;
    let small_mask = resize_nearest(mask, h / RATE, w / RATE, NearestMode::TfAlignCorners)?;
    let mut outputs = Vec::with_capacity(batch);
    for item in 0..batch {
        let b = slice(features, 0, item, item + 1)?;
        let b_s = slice(&small_features, 0, item, item + 1)?;
        let m_s = slice(&small_mask, 0, item, item + 1)?;
        outputs.push(attend_one(&b, &b_s, &m_s)?);
    }
    let refs: Vec<&Tensor> = outputs.iter().collect();
    concat(&refs, 0)
}

/// One sample: `b` `[1, C, h, w]`, `b_s` `[1, C, h/2, w/2]`, `m_s` `[1, 1, h/2, w/2]`.
fn attend_one(b: &Tensor, b_s: &Tensor, m_s: &Tensor) -> Result<Tensor> {
    let (channels, h, w) = (b.shape()[1], b.shape()[2], b.shape()[3]);
    let (hs, ws) = (b_s.shape()[2], b_s.shape()[3]);
    let patches = hs * ws;

    let raw = extract_patches(b, 2 * RATE, RATE, 1, [hs, ws])?;
    let normed = normalize_patches(&extract_patches(b_s, 3, 1, 1, [hs, ws])?)?;
    let validity = patch_validity(m_s, 3, 1, 1, [hs, ws])?;

    let scores = conv2d(
        b_s,
        &normed,
        None,
        &Conv2dOptions::new().padding(Padding::symmetric(1, 1)),
    )?
    .reshape(&[patches, patches])?;
    let fused_rows = fuse_diagonal(&scores, [hs, ws], FuseOrder::RowMajor)?;
    let fused = fuse_diagonal(&fused_rows, [hs, ws], FuseOrder::ColumnMajor)?;
    let attention = masked_softmax(&fused, &validity, SOFTMAX_SCALE)?.reshape(&[1, patches, hs, ws])?;
    let pasted = conv_transpose2d(&attention, &raw, None, [RATE, RATE], [1, 1], [0, 0], [1, 1])?;
    debug_assert_eq!(pasted.shape(), [1, channels, h, w]);
    mul_scalar(&pasted, 0.25)
}
