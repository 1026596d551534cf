//! CPU reference for pooling, in f64. Planes are NCHW; `planes` = N·C.

use super::{adaptive_window, PoolGeometry};

fn window_start(o: usize, stride: usize, pad: usize) -> isize {
    (o * stride) as isize - pad as isize
}

/// Max pooling with −inf padding; ties go to the first maximum in row-major order.
pub fn max_pool2d(x: &[f64], planes: usize, g: &PoolGeometry) -> Vec<f64> {
    let mut out = Vec::with_capacity(planes * g.out_h * g.out_w);
    for plane in 0..planes {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let (v, _) = window_argmax(x, plane, g, oh, ow);
                out.push(v);
            }
        }
    }
    out
}

/// Gradient of max pooling, scattered on the CPU (the GPU gathers).
pub fn max_pool2d_backward(x: &[f64], dy: &[f64], planes: usize, g: &PoolGeometry) -> Vec<f64> {
    let mut dx = vec![0.0; planes * g.in_h * g.in_w];
    for plane in 0..planes {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let (_, idx) = window_argmax(x, plane, g, oh, ow);
                dx[plane * g.in_h * g.in_w + idx] += dy[(plane * g.out_h + oh) * g.out_w + ow];
            }
        }
    }
    dx
}

fn window_argmax(x: &[f64], plane: usize, g: &PoolGeometry, oh: usize, ow: usize) -> (f64, usize) {
    let base = plane * g.in_h * g.in_w;
    let h0 = window_start(oh, g.stride[0], g.padding[0]);
    let w0 = window_start(ow, g.stride[1], g.padding[1]);
    let mut best: Option<(f64, usize)> = None;
    for h in h0..h0 + g.kernel[0] as isize {
        for w in w0..w0 + g.kernel[1] as isize {
            if h < 0 || w < 0 || h >= g.in_h as isize || w >= g.in_w as isize {
                continue;
            }
            let idx = h as usize * g.in_w + w as usize;
            let v = x[base + idx];
            if best.is_none_or(|(b, _)| v > b) {
                best = Some((v, idx));
            }
        }
    }
    best.expect("every window holds a real element when padding ≤ kernel / 2")
}

/// Average pooling; the divisor follows PyTorch's `count_include_pad`.
pub fn avg_pool2d(x: &[f64], planes: usize, g: &PoolGeometry, count_include_pad: bool) -> Vec<f64> {
    let mut out = Vec::with_capacity(planes * g.out_h * g.out_w);
    for plane in 0..planes {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let (cells, divisor) = avg_window(g, oh, ow, count_include_pad);
                let sum: f64 = cells.iter().map(|&idx| x[plane * g.in_h * g.in_w + idx]).sum();
                out.push(sum / divisor);
            }
        }
    }
    out
}

/// Gradient of average pooling with respect to its input.
pub fn avg_pool2d_backward(dy: &[f64], planes: usize, g: &PoolGeometry, count_include_pad: bool) -> Vec<f64> {
    let mut dx = vec![0.0; planes * g.in_h * g.in_w];
    for plane in 0..planes {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let (cells, divisor) = avg_window(g, oh, ow, count_include_pad);
                let d = dy[(plane * g.out_h + oh) * g.out_w + ow] / divisor;
                for idx in cells {
                    dx[plane * g.in_h * g.in_w + idx] += d;
                }
            }
        }
    }
    dx
}

/// The in-bounds cells of a window and its divisor.
fn avg_window(g: &PoolGeometry, oh: usize, ow: usize, count_include_pad: bool) -> (Vec<usize>, f64) {
    let h0 = window_start(oh, g.stride[0], g.padding[0]);
    let w0 = window_start(ow, g.stride[1], g.padding[1]);
    let mut cells = Vec::new();
    for h in h0..h0 + g.kernel[0] as isize {
        for w in w0..w0 + g.kernel[1] as isize {
            if h >= 0 && w >= 0 && h < g.in_h as isize && w < g.in_w as isize {
                cells.push(h as usize * g.in_w + w as usize);
            }
        }
    }
    let padded_h = (h0 + g.kernel[0] as isize).min((g.in_h + g.padding[0]) as isize) - h0;
    let padded_w = (w0 + g.kernel[1] as isize).min((g.in_w + g.padding[1]) as isize) - w0;
    let divisor = if count_include_pad {
        (padded_h * padded_w) as f64
    } else {
        cells.len() as f64
    };
    (cells, divisor)
}

/// Adaptive average pooling of `planes` planes of `in_hw` to `out_hw`, PyTorch's windows.
pub fn adaptive_avg_pool2d(x: &[f64], planes: usize, in_hw: [usize; 2], out_hw: [usize; 2]) -> Vec<f64> {
    let [ih, iw] = in_hw;
    let [oh, ow] = out_hw;
    let mut out = Vec::with_capacity(planes * oh * ow);
    for plane in 0..planes {
        for r in 0..oh {
            for c in 0..ow {
                let (rows, cols) = (adaptive_window(r, ih, oh), adaptive_window(c, iw, ow));
                let count = (rows.len() * cols.len()) as f64;
                let sum: f64 = rows
                    .flat_map(|h| cols.clone().map(move |w| (h, w)))
                    .map(|(h, w)| x[(plane * ih + h) * iw + w])
                    .sum();
                out.push(sum / count);
            }
        }
    }
    out
}

/// Gradient of [`adaptive_avg_pool2d`], scattered on the CPU (the GPU gathers).
pub fn adaptive_avg_pool2d_backward(
    dy: &[f64],
    planes: usize,
    in_hw: [usize; 2],
    out_hw: [usize; 2],
) -> Vec<f64> {
    let [ih, iw] = in_hw;
    let [oh, ow] = out_hw;
    let mut dx = vec![0.0; planes * ih * iw];
    for plane in 0..planes {
        for r in 0..oh {
            for c in 0..ow {
                let (rows, cols) = (adaptive_window(r, ih, oh), adaptive_window(c, iw, ow));
                let d = dy[(plane * oh + r) * ow + c] / (rows.len() * cols.len()) as f64;
                for h in rows {
                    for w in cols.clone() {
                        dx[(plane * ih + h) * iw + w] += d;
                    }
                }
            }
        }
    }
    dx
}
