//! CPU reference for resizing. Source coordinates are computed in f32 exactly as PyTorch
//! and TF do; the interpolation itself is in f64. Planes are NCHW; `planes` = N·C.

use super::{bilinear_scale, NearestMode};

/// One axis of a bilinear stencil: `(i0, i1, w0, w1)` for every output index.
pub fn bilinear_taps(n_in: usize, n_out: usize, align_corners: bool) -> Vec<(usize, usize, f64, f64)> {
    let scale = bilinear_scale(n_in, n_out, align_corners);
    (0..n_out)
        .map(|dst| {
            let src = if align_corners {
                scale * dst as f32
            } else {
                (scale * (dst as f32 + 0.5) - 0.5).max(0.0)
            };
            let i0 = (src as usize).min(n_in - 1);
            let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
            let w1 = src as f64 - i0 as f64;
            (i0, i1, 1.0 - w1, w1)
        })
        .collect()
}

/// PyTorch `F.interpolate(mode="bilinear")`.
pub fn resize_bilinear(
    x: &[f64],
    planes: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    align_corners: bool,
) -> Vec<f64> {
    let ty = bilinear_taps(in_hw[0], out_hw[0], align_corners);
    let tx = bilinear_taps(in_hw[1], out_hw[1], align_corners);
    let mut out = Vec::with_capacity(planes * out_hw[0] * out_hw[1]);
    for plane in 0..planes {
        let at = |h: usize, w: usize| x[(plane * in_hw[0] + h) * in_hw[1] + w];
        for &(y0, y1, wy0, wy1) in &ty {
            for &(x0, x1, wx0, wx1) in &tx {
                let top = wx0 * at(y0, x0) + wx1 * at(y0, x1);
                let bottom = wx0 * at(y1, x0) + wx1 * at(y1, x1);
                out.push(wy0 * top + wy1 * bottom);
            }
        }
    }
    out
}

/// Gradient of bilinear resizing, scattered on the CPU.
pub fn resize_bilinear_backward(
    dy: &[f64],
    planes: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    align_corners: bool,
) -> Vec<f64> {
    let ty = bilinear_taps(in_hw[0], out_hw[0], align_corners);
    let tx = bilinear_taps(in_hw[1], out_hw[1], align_corners);
    let mut dx = vec![0.0; planes * in_hw[0] * in_hw[1]];
    for plane in 0..planes {
        for (oh, &(y0, y1, wy0, wy1)) in ty.iter().enumerate() {
            for (ow, &(x0, x1, wx0, wx1)) in tx.iter().enumerate() {
                let d = dy[(plane * out_hw[0] + oh) * out_hw[1] + ow];
                let mut add = |h: usize, w: usize, weight: f64| {
                    dx[(plane * in_hw[0] + h) * in_hw[1] + w] += weight * d;
                };
                add(y0, x0, wy0 * wx0);
                add(y0, x1, wy0 * wx1);
                add(y1, x0, wy1 * wx0);
                add(y1, x1, wy1 * wx1);
            }
        }
    }
    dx
}

/// The source index of every output index along one axis.
pub fn nearest_indices(n_in: usize, n_out: usize, mode: NearestMode) -> Vec<usize> {
    let scale = mode.scale(n_in, n_out);
    (0..n_out)
        .map(|dst| {
            let v = dst as f32 * scale;
            let src = match mode {
                NearestMode::Torch => v.floor(),
                // f32::round rounds half away from zero, like C's roundf.
                NearestMode::TfAlignCorners => v.round(),
            };
            (src as usize).min(n_in - 1)
        })
        .collect()
}

pub fn resize_nearest(
    x: &[f64],
    planes: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    mode: NearestMode,
) -> Vec<f64> {
    let iy = nearest_indices(in_hw[0], out_hw[0], mode);
    let ix = nearest_indices(in_hw[1], out_hw[1], mode);
    let mut out = Vec::with_capacity(planes * out_hw[0] * out_hw[1]);
    for plane in 0..planes {
        for &h in &iy {
            for &w in &ix {
                out.push(x[(plane * in_hw[0] + h) * in_hw[1] + w]);
            }
        }
    }
    out
}

pub fn resize_nearest_backward(
    dy: &[f64],
    planes: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    mode: NearestMode,
) -> Vec<f64> {
    let iy = nearest_indices(in_hw[0], out_hw[0], mode);
    let ix = nearest_indices(in_hw[1], out_hw[1], mode);
    let mut dx = vec![0.0; planes * in_hw[0] * in_hw[1]];
    for plane in 0..planes {
        for (oh, &h) in iy.iter().enumerate() {
            for (ow, &w) in ix.iter().enumerate() {
                dx[(plane * in_hw[0] + h) * in_hw[1] + w] += dy[(plane * out_hw[0] + oh) * out_hw[1] + ow];
            }
        }
    }
    dx
}
