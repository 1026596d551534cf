//! The FIDO mix `background + keep·(image − background)` of an image `[1 or B, C, H, W]` with
//! a background `[1 or B, C, H, W]` or `[1 or B, C, 1, 1]` under a keep mask `[B, 1, H, W]`,
//! and its gradient with respect to the mask, each in one pass (see `shaders/mix.wgsl`).

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::ops::Cost;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("mix");

const WG: usize = 64;

crate::kernel_params! {
    /// `items` = samples × pixels; `image_stride` is 0 for one image shared by all samples.
    pub struct MixParams as "MixParams" {
        items: u32,
        pixels: u32,
        channels: u32,
        image_stride: u32,
        background_sample_stride: u32,
        background_channel_stride: u32,
        background_pixel_stride: u32,
    }
}

/// `background + keep·(image − background)`.
pub fn mix(keep: &Tensor, image: &Tensor, background: &Tensor) -> Result<Tensor> {
    let params = check("mix", keep, image, background)?;
    let out = Tensor::empty(keep.gpu(), &output_shape(keep, image), DType::F32)?;
    if params.items > 0 {
        keep.gpu().launch(
            &KERNEL,
            "mix",
            &[("WG", WG as f64)],
            &params,
            &[
                ("keep", keep),
                ("image", image),
                ("background", background),
                ("mixed", &out),
            ],
            Grid::Linear(groups_for(params.items as usize, WG)),
        )?;
    }
    Ok(out)
}

/// The gradient of [`mix`] with respect to `keep` from the output's gradient `dy`:
/// `Σ_c dy·(image − background)`, shaped like `keep`.
pub fn mix_backward(dy: &Tensor, keep: &Tensor, image: &Tensor, background: &Tensor) -> Result<Tensor> {
    const OP: &str = "mix_backward";
    let params = check(OP, keep, image, background)?;
    dy.expect_f32(OP)?;
    dy.same_gpu(keep, OP)?;
    let shape = output_shape(keep, image);
    if dy.shape() != shape {
        return Err(Error::Shape {
            op: OP,
            detail: format!("gradient {:?} vs output {shape:?}", dy.shape()),
        });
    }
    let out = Tensor::empty(keep.gpu(), keep.shape(), DType::F32)?;
    if params.items > 0 {
        keep.gpu().launch(
            &KERNEL,
            "mix_backward",
            &[("WG", WG as f64)],
            &params,
            &[
                ("image", image),
                ("background", background),
                ("mixed_grad", dy),
                ("keep_grad", &out),
            ],
            Grid::Linear(groups_for(params.items as usize, WG)),
        )?;
    }
    Ok(out)
}

/// `[B, C, H, W]`: the mask's samples and size, the image's channels.
fn output_shape(keep: &Tensor, image: &Tensor) -> [usize; 4] {
    let (k, i) = (keep.shape(), image.shape());
    [k[0], i[1], k[2], k[3]]
}

/// FLOPs and bytes of one forward pass with output `shape`.
pub fn mix_cost(shape: &[usize]) -> Cost {
    let n = shape.iter().product::<usize>() as f64;
    let keep = n / shape.get(1).copied().unwrap_or(1).max(1) as f64;
    Cost {
        flops: 2.0 * n,
        bytes: 4.0 * (keep + 3.0 * n),
    }
}

fn check(op: &'static str, keep: &Tensor, image: &Tensor, background: &Tensor) -> Result<MixParams> {
    for t in [keep, image, background] {
        t.expect_f32(op)?;
        t.same_gpu(keep, op)?;
    }
    let (k, i, g) = (keep.shape(), image.shape(), background.shape());
    let ok = k.len() == 4
        && i.len() == 4
        && g.len() == 4
        && k[1] == 1
        && (i[0] == 1 || i[0] == k[0])
        && i[2..] == k[2..]
        && (g[0] == 1 || g[0] == k[0])
        && g[1] == i[1]
        && (g[2..] == k[2..] || g[2..] == [1, 1]);
    if !ok {
        return Err(Error::Shape {
            op,
            detail: format!(
                "keep {k:?}, image {i:?} and background {g:?} must be [B, 1, H, W], [1 or B, C, H, W] and [1 or B, C, H, W] or [1 or B, C, 1, 1]"
            ),
        });
    }
    let (samples, channels, pixels) = (k[0], i[1], k[2] * k[3]);
    if samples * channels * pixels > u32::MAX as usize / 2 {
        return Err(Error::Shape {
            op,
            detail: format!("keep {k:?} over {channels} channels is too large for 32-bit offsets"),
        });
    }
    let per_channel = g[2] * g[3];
    Ok(MixParams {
        items: (samples * pixels) as u32,
        pixels: pixels as u32,
        channels: channels as u32,
        image_stride: if i[0] == 1 { 0 } else { (channels * pixels) as u32 },
        background_sample_stride: if g[0] == 1 {
            0
        } else {
            (channels * per_channel) as u32
        },
        background_channel_stride: per_channel as u32,
        background_pixel_stride: if per_channel == 1 { 0 } else { 1 },
    })
}
