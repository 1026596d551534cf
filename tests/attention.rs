//! The contextual-attention kernels against their f64 CPU reference (after
//! `tools/ca_reference.py`) on odd-sized shapes, and the layer that composes them.
//!
//! Tolerances use `U = 2⁻²⁴`, the unit roundoff of f32. Inputs are f32 values, exact in f64, so
//! every difference is the GPU's f32 arithmetic.

mod common;

use common::{assert_close, gpu, rand_tensor, to_f64, Rng};
use fido::inpaint::attention::{contextual_attention, SOFTMAX_SCALE};
use fido::ops::attention::{
    extract_patches, fuse_diagonal, masked_softmax, normalize_patches, patch_validity, reference, FuseOrder,
};
use fido::ops::resize::{reference::nearest_indices, NearestMode};
use fido::{Error, Tensor};

const U: f64 = 1.0 / (1u64 << 24) as f64;

/// A 0/1 mask with about `fraction` ones.
fn random_mask(rng: &mut Rng, n: usize, fraction: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            if rng.uniform(0.0, 1.0) < fraction {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// A copy: exact, including the zeros outside the input and windows wholly outside it.
#[test]
fn extract_patches_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(31);
    // (C, H, W, k, stride, pad, grid)
    for (c, h, w, k, stride, pad, grid) in [
        (3, 7, 9, 3, 1, 1, [7, 9]),
        (5, 9, 7, 4, 2, 1, [5, 4]),
        (1, 5, 5, 2, 3, 0, [3, 2]),
        (2, 3, 11, 5, 1, 2, [3, 11]),
    ] {
        let (x, xv) = rand_tensor(&gpu, &mut rng, &[1, c, h, w]);
        let got = extract_patches(&x, k, stride, pad, grid).unwrap();
        assert_eq!(got.shape(), [grid[0] * grid[1], c, k, k]);
        let want = reference::extract_patches(&to_f64(&xv), c, [h, w], k, stride, pad, grid);
        let what = format!("extract_patches C{c} {h}×{w} k{k} s{stride} p{pad} {grid:?}");
        assert_close(&what, &got.to_vec().unwrap(), &want, 0.0, 0.0);
    }
}

/// An f32 sum of n squares is off by at most (n − 1)·U relatively, which the square root
/// halves; the root and the reciprocal and product add a few ULP. On outputs of magnitude at
/// most 1 that is below (n/2 + 8)·U, so n·2U (n ≥ 9 here) bounds it. Covers an all-zero
/// patch (stays zero) and one whose norm is below the 1e-4 floor (divided by 1e-4).
#[test]
fn normalize_patches_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(32);
    for shape in [vec![13usize, 5, 3, 3], vec![7, 11], vec![3, 1, 3, 3]] {
        let count = shape[0];
        let n: usize = shape[1..].iter().product();
        let mut v = rng.vec(count * n, -1.0, 1.0);
        v[..n].iter_mut().for_each(|a| *a = 0.0);
        v[n..2 * n].iter_mut().for_each(|a| *a *= 1e-6);
        let x = Tensor::from_slice(&gpu, &shape, &v).unwrap();
        let got = normalize_patches(&x).unwrap();
        assert_eq!(got.shape(), &shape[..]);
        let got = got.to_vec().unwrap();
        let want = reference::normalize_patches(&to_f64(&v), count);
        assert!(got[..n].iter().all(|&a| a == 0.0), "a zero patch stays zero");
        assert!(
            want[n..2 * n].iter().any(|a| a.abs() > 1e-3),
            "the tiny patch is below the norm floor"
        );
        let atol = (n.max(9) as f64) * 2.0 * U;
        assert_close(&format!("normalize_patches {shape:?}"), &got, &want, atol, 0.0);
    }
}

/// Sums of 0/1 values compared with zero: exact.
#[test]
fn patch_validity_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(33);
    let (h, w) = (9, 11);
    for fraction in [0.05, 0.15, 0.5] {
        let m = random_mask(&mut rng, h * w, fraction);
        let mt = Tensor::from_slice(&gpu, &[1, 1, h, w], &m).unwrap();
        for (k, stride, pad, grid) in [(3, 1, 1, [9, 11]), (4, 2, 1, [5, 6]), (3, 2, 0, [4, 5])] {
            let got = patch_validity(&mt, k, stride, pad, grid).unwrap();
            assert_eq!(got.shape(), [grid[0] * grid[1]]);
            let got = got.to_vec().unwrap();
            let want = reference::patch_validity(&to_f64(&m), [h, w], k, stride, pad, grid);
            let what = format!("patch_validity {fraction} k{k} s{stride} p{pad} {grid:?}");
            assert_close(&what, &got, &want, 0.0, 0.0);
            assert!(
                want.contains(&1.0) || fraction > 0.3,
                "{what}: some patch is valid"
            );
        }
    }
}

/// Two f32 additions of three terms of magnitude at most 1: below 2·3·U. The row-major then
/// column-major pair, as the layer runs it, sums nine such terms: below 3·6U + 2·9U.
#[test]
fn fuse_diagonal_matches_reference_in_both_orders() {
    let gpu = gpu();
    let mut rng = Rng::new(34);
    for grid in [[5usize, 7], [1, 6], [4, 1], [3, 3]] {
        let n = grid[0] * grid[1];
        let (s, sv) = rand_tensor(&gpu, &mut rng, &[n, n]);
        let sv = to_f64(&sv);
        for order in [FuseOrder::RowMajor, FuseOrder::ColumnMajor] {
            let got = fuse_diagonal(&s, grid, order).unwrap();
            assert_eq!(got.shape(), [n, n]);
            let want = reference::fuse_diagonal(&sv, grid, order);
            let what = format!("fuse_diagonal {grid:?} {order:?}");
            assert_close(&what, &got.to_vec().unwrap(), &want, 6.0 * U, 0.0);
        }
        let rows = fuse_diagonal(&s, grid, FuseOrder::RowMajor).unwrap();
        let both = fuse_diagonal(&rows, grid, FuseOrder::ColumnMajor).unwrap();
        let want = reference::fuse_diagonal(
            &reference::fuse_diagonal(&sv, grid, FuseOrder::RowMajor),
            grid,
            FuseOrder::ColumnMajor,
        );
        let what = format!("fuse_diagonal {grid:?} rows then columns");
        assert_close(&what, &both.to_vec().unwrap(), &want, 36.0 * U, 0.0);
    }
}

/// The reference orders differ on a grid that is not a single row or column: the column-major
/// fuse is not the row-major one.
#[test]
fn fuse_orders_differ_off_a_line() {
    let mut rng = Rng::new(35);
    let grid = [3, 4];
    let s = to_f64(&rng.vec(144, -1.0, 1.0));
    let rows = reference::fuse_diagonal(&s, grid, FuseOrder::RowMajor);
    let cols = reference::fuse_diagonal(&s, grid, FuseOrder::ColumnMajor);
    assert!(rows.iter().zip(&cols).any(|(a, b)| (a - b).abs() > 0.1));
}

/// Scores in [−3, 3] (the range of fused scores of unit patches) at scale 10, so logits reach
/// ±30 and their differences 60. Each weight is `e^(x_l) / Σ e^(x_k)`: the logit products and
/// the shift by the peak are off by at most 60·U absolutely, exp by (3 + 2|x|) ULP (WGSL's
/// bound, which only grows where the weight is tiny), the sum over L ≤ 35 terms by L·U. Each
/// weight is then within ~1e-5 of its value relatively, and weights are at most 1.
#[test]
fn masked_softmax_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(36);
    for (patches, positions, invalid) in [
        (35usize, 35usize, 0.3f32),
        (13, 20, 0.1),
        (9, 5, 1.0),
        (1, 7, 0.0),
    ] {
        let s = rng.vec(patches * positions, -3.0, 3.0);
        let mm: Vec<f32> = random_mask(&mut rng, patches, invalid)
            .into_iter()
            .map(|v| 1.0 - v)
            .collect();
        let st = Tensor::from_slice(&gpu, &[patches, positions], &s).unwrap();
        let mt = Tensor::from_slice(&gpu, &[patches], &mm).unwrap();
        let got = masked_softmax(&st, &mt, SOFTMAX_SCALE).unwrap();
        assert_eq!(got.shape(), [patches, positions]);
        let want = reference::masked_softmax(&to_f64(&s), &to_f64(&mm), SOFTMAX_SCALE as f64);
        let what = format!("masked_softmax L{patches} P{positions}");
        let got = got.to_vec().unwrap();
        assert_close(&what, &got, &want, 1e-5, 0.0);
        for (l, &valid) in mm.iter().enumerate() {
            if valid == 0.0 {
                assert!(got[l * positions..(l + 1) * positions].iter().all(|&a| a == 0.0));
            }
        }
    }
}

/// The layer on one sample, composed from the reference kernels as `tools/ca_reference.py`
/// does: TF nearest halving, scores as dot products of the foreground windows with the
/// normalised patches, both fuses, the masked softmax, and the raw patches pasted at stride 2.
fn layer_reference(b: &[f64], m: &[f64], c: usize, h: usize, w: usize) -> Vec<f64> {
    let (hs, ws) = (h / 2, w / 2);
    let (l, grid) = (hs * ws, [hs, ws]);
    let iy = nearest_indices(h, hs, NearestMode::TfAlignCorners);
    let ix = nearest_indices(w, ws, NearestMode::TfAlignCorners);
    let halve = |x: &[f64], planes: usize| -> Vec<f64> {
        let mut out = Vec::with_capacity(planes * l);
        for p in 0..planes {
            for &y in &iy {
                for &x_ in &ix {
                    out.push(x[(p * h + y) * w + x_]);
                }
            }
        }
        out
    };
    let (bs, ms) = (halve(b, c), halve(m, 1));
    let small = reference::extract_patches(&bs, c, grid, 3, 1, 1, grid);
    let normed = reference::normalize_patches(&small, l);
    let n = c * 9;
    let mut scores = vec![0.0; l * l];
    for p in 0..l {
        for q in 0..l {
            scores[p * l + q] = (0..n).map(|k| normed[p * n + k] * small[q * n + k]).sum();
        }
    }
    let fused = reference::fuse_diagonal(
        &reference::fuse_diagonal(&scores, grid, FuseOrder::RowMajor),
        grid,
        FuseOrder::ColumnMajor,
    );
    let mm = reference::patch_validity(&ms, grid, 3, 1, 1, grid);
    let att = reference::masked_softmax(&fused, &mm, SOFTMAX_SCALE as f64);
    let raw = reference::extract_patches(b, c, [h, w], 4, 2, 1, grid);
    let (ph, pw) = (h + 2, w + 2);
    let mut y = vec![0.0; c * ph * pw];
    for q in 0..l {
        let (i, j) = (q / ws, q % ws);
        for p in 0..l {
            let a = att[p * l + q];
            for ch in 0..c {
                for u in 0..4 {
                    for v in 0..4 {
                        y[(ch * ph + 2 * i + u) * pw + 2 * j + v] += a * raw[((p * c + ch) * 4 + u) * 4 + v];
                    }
                }
            }
        }
    }
    let mut out = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        for r in 0..h {
            for x_ in 0..w {
                out.push(y[(ch * ph + r + 1) * pw + x_ + 1] / 4.0);
            }
        }
    }
    out
}

/// The whole layer on batches with their own masks, on grids of odd sides. A score (27
/// products of a window of norm ≤ √27, C = 3 features in [−1, 1], with a unit patch) carries
/// f32 rounding that adds like a random walk, ~√27·√27·U ≈ 1.6e-6; two fuses sum nine (×3),
/// the scale of 10 multiplies the logits, and the softmax Jacobian at most doubles the change in
/// total weight, which averages pasted values of magnitude ≤ 1: ~1e-4. (Every rounding in one
/// direction would give 1.6e-3; a wrong rule moves outputs by 0.1 or more.)
#[test]
fn contextual_attention_matches_the_composed_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(37);
    for (batch, c, h, w) in [(2usize, 3usize, 10usize, 14usize), (1, 3, 6, 18), (2, 2, 14, 6)] {
        let (x, xv) = rand_tensor(&gpu, &mut rng, &[batch, c, h, w]);
        let mut masks = Vec::new();
        for _ in 0..batch {
            // A hole: a random rectangle.
            let (r0, c0) = (rng.below(h / 2), rng.below(w / 2));
            let (r1, c1) = (r0 + 1 + rng.below(h / 2), c0 + 1 + rng.below(w / 2));
            masks.extend((0..h * w).map(|k| {
                let (r, col) = (k / w, k % w);
                if (r0..r1).contains(&r) && (c0..c1).contains(&col) {
                    1.0f32
                } else {
                    0.0
                }
            }));
        }
        let m = Tensor::from_slice(&gpu, &[batch, 1, h, w], &masks).unwrap();
        let got = contextual_attention(&x, &m).unwrap();
        assert_eq!(got.shape(), [batch, c, h, w]);
        let (xv, mv) = (to_f64(&xv), to_f64(&masks));
        let (fs, ms) = (c * h * w, h * w);
        let want: Vec<f64> = (0..batch)
            .flat_map(|s| layer_reference(&xv[s * fs..(s + 1) * fs], &mv[s * ms..(s + 1) * ms], c, h, w))
            .collect();
        let what = format!("contextual_attention [{batch}, {c}, {h}, {w}]");
        assert_close(&what, &got.to_vec().unwrap(), &want, 1e-4, 0.0);
    }
}

/// Contextual attention alone: with every patch valid and a map made of one repeated
/// patch, every output pixel away from the border is the input (the weights sum to 1 and
/// each pixel receives 4 overlapping pastes of itself, divided by 4).
#[test]
fn attention_reconstructs_a_uniform_map() {
    let gpu = gpu();
    let (c, h, w) = (3, 8, 8);
    let values: Vec<f32> = (0..c * h * w).map(|i| 0.5 + (i / (h * w)) as f32).collect();
    let b = Tensor::from_slice(&gpu, &[1, c, h, w], &values).unwrap();
    let m = Tensor::zeros(&gpu, &[1, 1, h, w]).unwrap();
    let y = contextual_attention(&b, &m).unwrap().to_vec().unwrap();
    for ch in 0..c {
        for i in 1..h - 1 {
            for j in 1..w - 1 {
                let k = (ch * h + i) * w + j;
                assert!(
                    (y[k] - values[k]).abs() < 1e-4,
                    "({ch},{i},{j}): {} vs {}",
                    y[k],
                    values[k]
                );
            }
        }
    }
}

#[test]
fn bad_shapes_are_errors() {
    let gpu = gpu();
    let t = |shape: &[usize]| Tensor::zeros(&gpu, shape).unwrap();
    let shape_error = |r: fido::Result<Tensor>| matches!(r, Err(Error::Shape { .. }));
    assert!(shape_error(extract_patches(&t(&[2, 3, 4, 4]), 3, 1, 1, [4, 4])));
    assert!(shape_error(extract_patches(&t(&[3, 4, 4]), 3, 1, 1, [4, 4])));
    assert!(extract_patches(&t(&[1, 3, 4, 4]), 3, 0, 1, [4, 4]).is_err());
    assert!(shape_error(patch_validity(&t(&[1, 2, 4, 4]), 3, 1, 1, [4, 4])));
    assert!(shape_error(normalize_patches(&t(&[5]))));
    assert!(shape_error(fuse_diagonal(
        &t(&[12, 11]),
        [3, 4],
        FuseOrder::RowMajor
    )));
    assert!(shape_error(fuse_diagonal(
        &t(&[12, 12]),
        [4, 4],
        FuseOrder::ColumnMajor
    )));
    assert!(shape_error(masked_softmax(&t(&[6, 5]), &t(&[5]), 10.0)));
    assert!(shape_error(masked_softmax(&t(&[1, 6, 5]), &t(&[6]), 10.0)));
}
