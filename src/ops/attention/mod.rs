//! The kernels of contextual attention (Yu et al. 2018) that no general op covers: patch
//! extraction, patch normalisation, the patch-validity mask, the diagonal score fuse and the
//! masked softmax. `inpaint::attention` composes them with convolutions into the layer.
//!
//! Layouts: patches are `[L, C, k, k]` with `L = grid_h·grid_w` in row-major order of the
//! patch grid; scores are `[L, P]`, patch `l` against position `P` of a row-major score map
//! (the output of a convolution with `L` output channels, viewed as a matrix).

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("attention");

const WG: usize = 64;

/// Norms below this are clamped to it before dividing a patch by its norm.
pub const MIN_PATCH_NORM: f64 = 1e-4;

crate::kernel_params! {
    /// One attention launch; each entry reads the fields its comment in the shader names.
    pub struct AttentionParams as "Params" {
        /// Invocations.
        total: u32,
        channels: u32,
        in_h: u32,
        in_w: u32,
        /// Patch grid (or score-map) height.
        out_h: u32,
        out_w: u32,
        ksize: u32,
        stride: u32,
        /// Zero padding before (top and left); the rest is implied by the grid.
        pad: u32,
        /// Fuse: 0 = row-major neighbours, 1 = column-major neighbours.
        mode: u32,
        /// Softmax: the multiplier of the scores.
        scale: f32,
    }
}

/// The traversal order along which [`fuse_diagonal`] takes neighbouring patches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuseOrder {
    RowMajor,
    ColumnMajor,
}

impl FuseOrder {
    fn code(self) -> u32 {
        match self {
            FuseOrder::RowMajor => 0,
            FuseOrder::ColumnMajor => 1,
        }
    }
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
    const OP: &str = "extract_patches";
    let (channels, h, w) = single_sample(OP, x)?;
    check_window(OP, ksize, stride)?;
    let shape = [grid[0] * grid[1], channels, ksize, ksize];
    let out = Tensor::empty(x.gpu(), &shape, DType::F32)?;
    let params = window_params(out.numel(), channels, [h, w], ksize, stride, pad, grid);
    launch("extract_patches", &params, &[("src", x), ("out", &out)])?;
    Ok(out)
}

/// Each patch of `patches` `[L, …]` (the trailing axes flattened) divided by
/// `max(‖patch‖₂, 1e-4)`.
pub fn normalize_patches(patches: &Tensor) -> Result<Tensor> {
    const OP: &str = "normalize_patches";
    patches.expect_f32(OP)?;
    if patches.rank() < 2 {
        return Err(Error::Shape {
            op: OP,
            detail: format!("patches {:?} must be [L, …]", patches.shape()),
        });
    }
    let count = patches.shape()[0];
    let out = Tensor::empty(patches.gpu(), patches.shape(), DType::F32)?;
    if count == 0 {
        return Ok(out);
    }
    let params = AttentionParams {
        total: count as u32,
        channels: (patches.numel() / count) as u32,
        ..Default::default()
    };
    launch("normalize_patches", &params, &[("src", patches), ("out", &out)])?;
    Ok(out)
}

/// `[L]`: 1 where the `ksize`×`ksize` window (zero padded by `pad`) of the single-channel
/// `mask` `[1, 1, H, W]` at patch `l` of the `grid` is all zero, i.e. the patch lies wholly in
/// the known region; 0 otherwise.
pub fn patch_validity(
    mask: &Tensor,
    ksize: usize,
    stride: usize,
    pad: usize,
    grid: [usize; 2],
) -> Result<Tensor> {
    const OP: &str = "patch_validity";
    let (channels, h, w) = single_sample(OP, mask)?;
    if channels != 1 {
        return Err(Error::Shape {
            op: OP,
            detail: format!("mask {:?} must have one channel", mask.shape()),
        });
    }
    check_window(OP, ksize, stride)?;
    let patches = grid[0] * grid[1];
    let out = Tensor::empty(mask.gpu(), &[patches], DType::F32)?;
    let params = window_params(patches, 1, [h, w], ksize, stride, pad, grid);
    launch("patch_validity", &params, &[("src", mask), ("out", &out)])?;
    Ok(out)
}

/// `out[l, q] = Σ_{d=−1..1} scores[l + d, q + d]` of `scores` `[L, L]`, where patches and
/// positions share one `grid` (`L = grid_h·grid_w`) and `± d` steps along `order`; terms
/// that leave the grid are zero.
pub fn fuse_diagonal(scores: &Tensor, grid: [usize; 2], order: FuseOrder) -> Result<Tensor> {
    const OP: &str = "fuse_diagonal";
    scores.expect_f32(OP)?;
    let n = grid[0] * grid[1];
    if scores.shape() != [n, n] {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "scores {:?} must be [{n}, {n}] for a {}×{} grid",
                scores.shape(),
                grid[0],
                grid[1]
            ),
        });
    }
    let out = Tensor::empty(scores.gpu(), &[n, n], DType::F32)?;
    let params = AttentionParams {
        total: (n * n) as u32,
        out_h: grid[0] as u32,
        out_w: grid[1] as u32,
        mode: order.code(),
        ..Default::default()
    };
    launch("fuse_diagonal", &params, &[("src", scores), ("out", &out)])?;
    Ok(out)
}

/// `A[l, q] = softmax_l(scale · S[l, q] · mm[l]) · mm[l]` for scores `S` `[L, P]` and the
/// validity `mm` `[L]`: a softmax over the patches at each position, in which invalid patches
/// take part with score 0 and then get weight 0.
pub fn masked_softmax(scores: &Tensor, validity: &Tensor, scale: f32) -> Result<Tensor> {
    const OP: &str = "masked_softmax";
    scores.expect_f32(OP)?;
    validity.expect_f32(OP)?;
    scores.same_gpu(validity, OP)?;
    if scores.rank() != 2 || validity.shape() != [scores.shape()[0]] {
        return Err(Error::Shape {
            op: OP,
            detail: format!(
                "scores {:?} must be [L, P] and validity {:?} [L]",
                scores.shape(),
                validity.shape()
            ),
        });
    }
    let (patches, positions) = (scores.shape()[0], scores.shape()[1]);
    let out = Tensor::empty(scores.gpu(), scores.shape(), DType::F32)?;
    if patches == 0 {
        return Ok(out);
    }
    let params = AttentionParams {
        total: positions as u32,
        channels: patches as u32,
        out_h: 1,
        out_w: positions as u32,
        scale,
        ..Default::default()
    };
    launch(
        "masked_softmax",
        &params,
        &[("src", scores), ("validity", validity), ("out", &out)],
    )?;
    Ok(out)
}

/// `(C, H, W)` of a `[1, C, H, W]` tensor.
fn single_sample(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize)> {
    x.expect_f32(op)?;
    match *x.shape() {
        [1, c, h, w] => Ok((c, h, w)),
        _ => Err(Error::Shape {
            op,
            detail: format!("expected one sample [1, C, H, W], got {:?}", x.shape()),
        }),
    }
}

fn check_window(op: &'static str, ksize: usize, stride: usize) -> Result<()> {
    if ksize == 0 || stride == 0 {
        return Err(Error::InvalidArgument(format!(
            "{op}: window {ksize} and stride {stride} must be positive"
        )));
    }
    Ok(())
}

fn launch(entry: &str, params: &AttentionParams, bindings: &[(&str, &Tensor)]) -> Result<()> {
    if params.total == 0 {
        return Ok(());
    }
    let gpu = bindings[0].1.gpu();
    gpu.launch(
        &KERNEL,
        entry,
        &[("WG", WG as f64)],
        params,
        bindings,
        Grid::Linear(groups_for(params.total as usize, WG)),
    )
}

/// The parameters of the two windowed kernels: `total` outputs from a `channels × hw` plane
/// cut into a `grid` of `ksize` windows.
fn window_params(
    total: usize,
    channels: usize,
    [h, w]: [usize; 2],
    ksize: usize,
    stride: usize,
    pad: usize,
    grid: [usize; 2],
) -> AttentionParams {
    AttentionParams {
        total: total as u32,
        channels: channels as u32,
        in_h: h as u32,
        in_w: w as u32,
        out_h: grid[0] as u32,
        out_w: grid[1] as u32,
        ksize: ksize as u32,
        stride: stride as u32,
        pad: pad as u32,
        ..Default::default()
    }
}
