//! Per-channel 2-D filters on NCHW tensors: separable Gaussian blur with a reflect-101
//! border, and the box sum with zero padding that the Local in-filler counts with.

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::ops::Cost;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("filter");

const WG: usize = 256;
/// Outputs per invocation along the filtered axis; fixed by the shader's register window.
const BLOCK: usize = 8;

crate::kernel_params! {
    /// One pass of a separable filter over planes of `h`×`w`.
    pub struct FilterParams as "Params" {
        /// Invocations.
        total: u32,
        h: u32,
        w: u32,
        /// Taps = 2·radius + 1, centred.
        radius: u32,
        /// ceil(w / 4): vec4 columns per row.
        quads: u32,
        /// Eight-output blocks per row (rows pass) or per column (columns pass).
        blocks: u32,
    }
}

/// Radius of the Gaussian kernel for `sigma`: `ceil(3·sigma)`.
pub fn gaussian_radius(sigma: f64) -> usize {
    (3.0 * sigma).ceil() as usize
}

/// Taps `exp(−d²/(2σ²))` for d in −radius..=radius, normalised to sum 1 (in f64).
pub fn gaussian_taps(sigma: f64) -> Vec<f64> {
    let r = gaussian_radius(sigma) as isize;
    let raw: Vec<f64> = (-r..=r)
        .map(|d| (-((d * d) as f64) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|v| v / total).collect()
}

/// Gaussian blur of each plane with standard deviation `sigma` (pixels), radius
/// `ceil(3σ)`, reflect-101 border (reflecting repeatedly when the radius exceeds the image).
pub fn gaussian_blur(x: &Tensor, sigma: f32) -> Result<Tensor> {
    let op = "gaussian_blur";
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "{op}: sigma must be positive and finite, got {sigma}"
        )));
    }
    let taps: Vec<f32> = gaussian_taps(sigma as f64)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    separable(op, x, &taps, false)
}

/// Sum over the `size`×`size` window centred on each pixel (odd `size`), zeros outside.
pub fn box_sum(x: &Tensor, size: usize) -> Result<Tensor> {
    let op = "box_sum";
    if size == 0 || size % 2 == 0 {
        return Err(Error::InvalidArgument(format!(
            "{op}: window size must be odd, got {size}"
        )));
    }
    separable(op, x, &vec![1.0; size], true)
}

/// Separable filter with `taps` taps per axis over `planes` planes of `h`×`w`.
pub fn separable_cost(planes: usize, h: usize, w: usize, taps: usize) -> Cost {
    let n = (planes * h * w) as f64;
    Cost {
        flops: 2.0 * 2.0 * taps as f64 * n,
        bytes: 4.0 * 4.0 * n,
    }
}

pub fn gaussian_blur_cost(shape: &[usize], sigma: f32) -> Cost {
    let (planes, h, w) = dims(shape);
    separable_cost(planes, h, w, 2 * gaussian_radius(sigma as f64) + 1)
}

pub fn box_sum_cost(shape: &[usize], size: usize) -> Cost {
    let (planes, h, w) = dims(shape);
    separable_cost(planes, h, w, size)
}

fn dims(shape: &[usize]) -> (usize, usize, usize) {
    match shape {
        [n, c, h, w] => (n * c, *h, *w),
        _ => (0, 0, 0),
    }
}

fn separable(op: &'static str, x: &Tensor, taps: &[f32], zero_border: bool) -> Result<Tensor> {
    x.expect_f32(op)?;
    if x.rank() != 4 {
        return Err(Error::Shape {
            op,
            detail: format!("expected an NCHW tensor, got shape {:?}", x.shape()),
        });
    }
    let gpu = x.gpu();
    let (planes, h, w) = dims(x.shape());
    let out = Tensor::empty(gpu, x.shape(), DType::F32)?;
    if planes * h * w == 0 {
        return Ok(out);
    }
    let taps_t = Tensor::from_slice(gpu, &[taps.len()], taps)?;
    let radius = (taps.len() / 2) as u32;
    let constants = [("WG", WG as f64), ("ZERO_BORDER", zero_border as u8 as f64)];
    let scratch = Tensor::empty(gpu, x.shape(), DType::F32)?;

    let quads = w.div_ceil(4);
    let params = |total: usize, blocks: usize| FilterParams {
        total: total as u32,
        h: h as u32,
        w: w as u32,
        radius,
        quads: quads as u32,
        blocks: blocks as u32,
    };
    let row_blocks = w.div_ceil(BLOCK);
    let total = planes * h * row_blocks;
    gpu.launch(
        &KERNEL,
        "rows",
        &constants,
        &params(total, row_blocks),
        &[("x", x), ("taps", &taps_t), ("out", &scratch)],
        Grid::Linear(groups_for(total, WG)),
    )?;

    let col_blocks = h.div_ceil(BLOCK);
    if w % 4 == 0 {
        let total = planes * col_blocks * quads;
        gpu.launch(
            &KERNEL,
            "cols_vec4",
            &constants,
            &params(total, col_blocks),
            &[("x4", &scratch), ("taps", &taps_t), ("out4", &out)],
            Grid::Linear(groups_for(total, WG)),
        )?;
    } else {
        let total = planes * h * w;
        gpu.launch(
            &KERNEL,
            "cols",
            &constants,
            &params(total, col_blocks),
            &[("x", &scratch), ("taps", &taps_t), ("out", &out)],
            Grid::Linear(groups_for(total, WG)),
        )?;
    }
    Ok(out)
}
