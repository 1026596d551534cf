//! CPU reference for the contextual-attention kernels, in f64, written after
//! `tools/ca_reference.py` (`attention_one`): windows are read from a zero-padded copy of the
//! plane as `F.pad` + slicing does, the column-major fuse permutes the score matrix, fuses
//! along its diagonal and permutes back, and the softmax is the masked one of DeepFill v1.

use super::{FuseOrder, MIN_PATCH_NORM};

/// `[L, C, k, k]` windows of `x` `[C, H, W]` with top-left corners `(i·stride − pad,
/// j·stride − pad)` on a `grid` (`L = grid_h·grid_w`, row-major), zero outside `x`.
pub fn extract_patches(
    x: &[f64],
    channels: usize,
    hw: [usize; 2],
    ksize: usize,
    stride: usize,
    pad: usize,
    grid: [usize; 2],
) -> Vec<f64> {
    // Pad by `pad` before and by enough after that every window lies inside.
    let ph = (hw[0] + pad).max((grid[0].max(1) - 1) * stride + ksize);
    let pw = (hw[1] + pad).max((grid[1].max(1) - 1) * stride + ksize);
    let mut padded = vec![0.0; channels * ph * pw];
    for c in 0..channels {
        for y in 0..hw[0] {
            for x_ in 0..hw[1] {
                padded[(c * ph + y + pad) * pw + x_ + pad] = x[(c * hw[0] + y) * hw[1] + x_];
            }
        }
    }
    let mut out = Vec::with_capacity(grid[0] * grid[1] * channels * ksize * ksize);
    for i in 0..grid[0] {
        for j in 0..grid[1] {
            for c in 0..channels {
                for u in 0..ksize {
                    for v in 0..ksize {
                        out.push(padded[(c * ph + i * stride + u) * pw + j * stride + v]);
                    }
                }
            }
        }
    }
    out
}

/// Each of the `count` patches (rows of `patches.len() / count` values) divided by
/// `max(‖patch‖₂, 1e-4)`.
pub fn normalize_patches(patches: &[f64], count: usize) -> Vec<f64> {
    let n = patches.len() / count.max(1);
    patches
        .chunks(n.max(1))
        .flat_map(|patch| {
            let norm = patch.iter().map(|v| v * v).sum::<f64>().sqrt();
            let d = norm.max(MIN_PATCH_NORM);
            patch.iter().map(move |v| v / d)
        })
        .collect()
}

/// `[L]`: 1 where the window of `mask` `[H, W]` at patch `l` has mean 0 (all zero for a 0/1
/// mask), else 0.
pub fn patch_validity(
    mask: &[f64],
    hw: [usize; 2],
    ksize: usize,
    stride: usize,
    pad: usize,
    grid: [usize; 2],
) -> Vec<f64> {
    let windows = extract_patches(mask, 1, hw, ksize, stride, pad, grid);
    windows
        .chunks(ksize * ksize)
        .map(|w| {
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            if mean == 0.0 {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// The row-major index of each step of `order` through a `grid`.
pub fn traversal(grid: [usize; 2], order: FuseOrder) -> Vec<usize> {
    let n = grid[0] * grid[1];
    match order {
        FuseOrder::RowMajor => (0..n).collect(),
        FuseOrder::ColumnMajor => (0..n).map(|r| (r % grid[0]) * grid[1] + r / grid[0]).collect(),
    }
}

/// `scores` `[L, L]` with rows and columns taken in `order`, summed with its neighbours one
/// step before and after along the diagonal (zero beyond the ends), and put back in place.
pub fn fuse_diagonal(scores: &[f64], grid: [usize; 2], order: FuseOrder) -> Vec<f64> {
    let n = grid[0] * grid[1];
    let perm = traversal(grid, order);
    // The permuted matrix t[a][b] = scores[perm[a], perm[b]], zero-padded by one on each side.
    let t = |a: isize, b: isize| -> f64 {
        if a < 0 || b < 0 || a >= n as isize || b >= n as isize {
            0.0
        } else {
            scores[perm[a as usize] * n + perm[b as usize]]
        }
    };
    let mut out = vec![0.0; n * n];
    for a in 0..n as isize {
        for b in 0..n as isize {
            let fused = t(a - 1, b - 1) + t(a, b) + t(a + 1, b + 1);
            out[perm[a as usize] * n + perm[b as usize]] = fused;
        }
    }
    out
}

/// `A[l, q] = softmax_l(scale · S[l, q] · mm[l]) · mm[l]` for `scores` `[L, P]` and
/// `validity` `[L]`.
pub fn masked_softmax(scores: &[f64], validity: &[f64], scale: f64) -> Vec<f64> {
    let patches = validity.len();
    let positions = scores.len() / patches.max(1);
    let mut out = vec![0.0; scores.len()];
    for q in 0..positions {
        let logits: Vec<f64> = (0..patches)
            .map(|l| scale * scores[l * positions + q] * validity[l])
            .collect();
        let peak = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = logits.iter().map(|s| (s - peak).exp()).sum();
        for l in 0..patches {
            out[l * positions + q] = (logits[l] - peak).exp() / total * validity[l];
        }
    }
    out
}
