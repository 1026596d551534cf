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

use crate::gpu::{groups_for, Grid, Kernel, Params};
use crate::ops::conv::{conv2d, conv_transpose2d, Conv2dOptions, Padding};
use crate::ops::elementwise::mul_scalar;
use crate::ops::layout::{concat, slice};
use crate::ops::resize::{resize_nearest, NearestMode};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("attention");

/// Softmax sharpness applied to the fused scores.
pub const SOFTMAX_SCALE: f32 = 10.0;
/// Downsampling factor between the features and the matched patches.
pub const RATE: usize = 2;

const WG: usize = 64;

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
    let gpu = b.gpu();
    let (channels, h, w) = (b.shape()[1], b.shape()[2], b.shape()[3]);
    let (hs, ws) = (b_s.shape()[2], b_s.shape()[3]);
    let patches = hs * ws;

    let raw = extract_patches(b, 2 * RATE, RATE, 1, [hs, ws])?;
    let small = extract_patches(b_s, 3, 1, 1, [hs, ws])?;
    let normed = Tensor::empty(gpu, small.shape(), DType::F32)?;
    launch(
        "normalize_patches",
        Geometry {
            total: patches,
            channels: channels * 9,
            ..Geometry::default()
        },
        &small,
        &small,
        &normed,
    )?;

    let validity = Tensor::empty(gpu, &[patches], DType::F32)?;
    launch(
        "patch_validity",
        Geometry {
            total: patches,
            channels: 1,
            in_hw: [hs, ws],
            out_hw: [hs, ws],
            ksize: 3,
            stride: 1,
            pad: 1,
            ..Geometry::default()
        },
        m_s,
        m_s,
        &validity,
    )?;

    let scores = conv2d(
        b_s,
        &normed,
        None,
        &Conv2dOptions::new().padding(Padding::symmetric(1, 1)),
    )?;
    let fused_rows = Tensor::empty(gpu, &[patches, patches], DType::F32)?;
    let fuse = |mode: u32, src: &Tensor, out: &Tensor| {
        launch(
            "fuse_diagonal",
            Geometry {
                total: patches * patches,
                out_hw: [hs, ws],
                mode,
                ..Geometry::default()
            },
            src,
            src,
            out,
        )
    };
    fuse(0, &scores, &fused_rows)?;
    let fused = Tensor::empty(gpu, &[patches, patches], DType::F32)?;
    fuse(1, &fused_rows, &fused)?;

    let attention = Tensor::empty(gpu, &[1, patches, hs, ws], DType::F32)?;
    launch(
        "masked_softmax",
        Geometry {
            total: patches,
            channels: patches,
            out_hw: [hs, ws],
            scale: SOFTMAX_SCALE,
            ..Geometry::default()
        },
        &fused,
        &validity,
        &attention,
    )?;
    let pasted = conv_transpose2d(&attention, &raw, None, [RATE, RATE], [1, 1], [0, 0], [1, 1])?;
    debug_assert_eq!(pasted.shape(), [1, channels, h, w]);
    mul_scalar(&pasted, 0.25)
}

/// `[L, C, k, k]` windows of `x` `[1, C, H, W]` on a `grid` of top-left corners
/// `(i·stride − pad, j·stride − pad)`, zero outside.
pub fn extract_patches(
    x: &Tensor,
    ksize: usize,
    stride: usize,
    pad: usize,
    grid: [usize; 2],
) -> Result<Tensor> {
    let (channels, h, w) = (x.shape()[1], x.shape()[2], x.shape()[3]);
    let shape = [grid[0] * grid[1], channels, ksize, ksize];
    let out = Tensor::empty(x.gpu(), &shape, DType::F32)?;
    launch(
        "extract_patches",
        Geometry {
            total: out.numel(),
            channels,
            in_hw: [h, w],
            out_hw: grid,
            ksize,
            stride,
            pad,
            ..Geometry::default()
        },
        x,
        x,
        &out,
    )?;
    Ok(out)
}

#[derive(Default)]
struct Geometry {
    total: usize,
    channels: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    ksize: usize,
    stride: usize,
    pad: usize,
    mode: u32,
    scale: f32,
}

fn launch(entry: &str, g: Geometry, src: &Tensor, aux: &Tensor, out: &Tensor) -> Result<()> {
    if g.total == 0 {
        return Ok(());
    }
    let params = Params::new()
        .u(g.total as u32)
        .u(g.channels as u32)
        .u(g.in_hw[0] as u32)
        .u(g.in_hw[1] as u32)
        .u(g.out_hw[0] as u32)
        .u(g.out_hw[1] as u32)
        .u(g.ksize as u32)
        .u(g.stride as u32)
        .u(g.pad as u32)
        .u(0)
        .u(g.mode)
        .f(g.scale);
    src.gpu().launch_positional(
        &KERNEL,
        entry,
        &[("WG", WG as f64)],
        &params,
        &[src, aux, out],
        Grid::Linear(groups_for(g.total, WG)),
    )
}
