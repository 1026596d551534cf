mod common;

use common::{assert_close, fd_gradient, fd_scalar, gpu, to_f64, Rng};
use fido::ops::resize::{self, reference, NearestMode};
use fido::Tensor;

/// The finite-difference step.
const FD_EPS: f64 = 1e-3;

/// Central differences of `L(x) = Σ forward(x)·r` at the given elements of `x` only, in f64.
fn fd_at(forward: impl Fn(&[f64]) -> Vec<f64>, x: &[f32], r: &[f32], elements: &[usize]) -> Vec<f64> {
    let x = to_f64(x);
    let loss = |x: &[f64]| -> f64 { forward(x).iter().zip(r).map(|(a, &b)| a * b as f64).sum() };
    elements
        .iter()
        .map(|&i| {
            let at_i = |v: &[f64]| {
                let mut probe = x.clone();
                probe[i] = v[0];
                loss(&probe)
            };
            fd_scalar(at_i, &[x[i]], FD_EPS)[0]
        })
        .collect()
}

/// Up, down, mixed, non-square, identity, and length-1 axes on either side.
const SIZES: &[([usize; 4], [usize; 2])] = &[
    ([2, 3, 5, 7], [11, 16]),
    ([1, 2, 13, 9], [6, 4]),
    ([2, 1, 7, 10], [15, 3]),
    ([1, 1, 6, 6], [6, 6]),
    ([1, 2, 1, 5], [4, 9]),
    ([1, 1, 4, 3], [1, 1]),
    ([3, 2, 9, 8], [9, 17]),
];

#[test]
fn bilinear_matches_reference_both_align_modes() {
    let gpu = gpu();
    let mut rng = Rng::new(20);
    for &(shape, out) in SIZES {
        for align in [false, true] {
            let planes = shape[0] * shape[1];
            let x = rng.vec(shape.iter().product(), -2.0, 2.0);
            let xt = Tensor::from_slice(&gpu, &shape, &x).unwrap();
            let y = resize::resize_bilinear(&xt, out[0], out[1], align).unwrap();
            assert_eq!(y.shape(), &[shape[0], shape[1], out[0], out[1]]);
            let want = reference::resize_bilinear(&to_f64(&x), planes, [shape[2], shape[3]], out, align);
            // A convex combination of four values in f32: a few ulp of the inputs' range.
            assert_close(
                &format!("bilinear {shape:?} -> {out:?} align={align}"),
                &y.to_vec().unwrap(),
                &want,
                2e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn bilinear_backward_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(21);
    for &(shape, out) in SIZES {
        for align in [false, true] {
            let planes = shape[0] * shape[1];
            let hw = [shape[2], shape[3]];
            let x = rng.vec(shape.iter().product(), -2.0, 2.0);
            let r = rng.vec(planes * out[0] * out[1], -1.0, 1.0);
            let rt = Tensor::from_slice(&gpu, &[shape[0], shape[1], out[0], out[1]], &r).unwrap();
            let dx = resize::resize_bilinear_backward(&rt, hw[0], hw[1], align).unwrap();
            assert_eq!(dx.shape(), &shape);
            let fd = fd_gradient(
                |x| reference::resize_bilinear(x, planes, hw, out, align),
                &x,
                &r,
                FD_EPS,
            );
            // Sums of up to ~16 f32 products of weights ≤ 1 and |dy| ≤ 1.
            assert_close(
                &format!("bilinear grad {shape:?} -> {out:?} align={align}"),
                &dx.to_vec().unwrap(),
                &fd,
                1e-5,
                1e-3,
            );
        }
    }
}

#[test]
fn bilinear_56_to_224_round_trip_matches_reference() {
    // The FIDO mask upsampling shape, checked forward and, on sampled elements, backward.
    let gpu = gpu();
    let mut rng = Rng::new(22);
    for align in [true, false] {
        let (shape, out) = ([2usize, 1, 56, 56], [224usize, 224]);
        let x = rng.vec(shape.iter().product(), 0.0, 1.0);
        let xt = Tensor::from_slice(&gpu, &shape, &x).unwrap();
        let y = resize::resize_bilinear(&xt, out[0], out[1], align).unwrap();
        let want = reference::resize_bilinear(&to_f64(&x), 2, [56, 56], out, align);
        assert_close("bilinear 56->224", &y.to_vec().unwrap(), &want, 2e-6, 1e-5);

        let r = rng.vec(2 * 224 * 224, -1.0, 1.0);
        let rt = Tensor::from_slice(&gpu, &[2, 1, 224, 224], &r).unwrap();
        let dx = resize::resize_bilinear_backward(&rt, 56, 56, align)
            .unwrap()
            .to_vec()
            .unwrap();
        let want = reference::resize_bilinear_backward(&to_f64(&r), 2, [56, 56], out, align);
        // Each input sums ~100 weighted gradients in f32.
        assert_close("bilinear 56->224 grad", &dx, &want, 1e-5, 1e-4);
        // Finite differences on corners, edges and random interior elements.
        let mut picks = vec![0, 55, 56 * 55, 56 * 56 - 1, 56 * 56, 2 * 56 * 56 - 1, 28];
        picks.extend((0..8).map(|_| rng.below(2 * 56 * 56)));
        let fd = fd_at(
            |x| reference::resize_bilinear(x, 2, [56, 56], out, align),
            &x,
            &r,
            &picks,
        );
        let got: Vec<f32> = picks.iter().map(|&i| dx[i]).collect();
        assert_close("bilinear 56->224 fd", &got, &fd, 1e-5, 1e-3);
    }
}

#[test]
fn nearest_matches_reference_and_finite_differences_both_modes() {
    let gpu = gpu();
    let mut rng = Rng::new(23);
    for &(shape, out) in SIZES {
        for mode in [NearestMode::Torch, NearestMode::TfAlignCorners] {
            let planes = shape[0] * shape[1];
            let hw = [shape[2], shape[3]];
            let x = rng.vec(shape.iter().product(), -2.0, 2.0);
            let xt = Tensor::from_slice(&gpu, &shape, &x).unwrap();
            let y = resize::resize_nearest(&xt, out[0], out[1], mode).unwrap();
            let want = reference::resize_nearest(&to_f64(&x), planes, hw, out, mode);
            let what = format!("nearest {mode:?} {shape:?} -> {out:?}");
            // A copy: exact.
            assert_close(&what, &y.to_vec().unwrap(), &want, 0.0, 0.0);

            let r = rng.vec(want.len(), -1.0, 1.0);
            let rt = Tensor::from_slice(&gpu, y.shape(), &r).unwrap();
            let dx = resize::resize_nearest_backward(&rt, hw[0], hw[1], mode).unwrap();
            let fd = fd_gradient(
                |x| reference::resize_nearest(x, planes, hw, out, mode),
                &x,
                &r,
                FD_EPS,
            );
            assert_close(&format!("{what} grad"), &dx.to_vec().unwrap(), &fd, 1e-5, 1e-3);
        }
    }
}

/// Resize a row holding 0, 1, …, n_in − 1 along the width and read back the picked indices.
fn picked_columns(gpu: &fido::Gpu, n_in: usize, n_out: usize, mode: NearestMode) -> Vec<usize> {
    let ramp: Vec<f32> = (0..n_in).map(|i| i as f32).collect();
    let t = Tensor::from_slice(gpu, &[1, 1, 1, n_in], &ramp).unwrap();
    let y = resize::resize_nearest(&t, 1, n_out, mode).unwrap();
    y.to_vec().unwrap().iter().map(|&v| v as usize).collect()
}

#[test]
fn tf_align_corners_nearest_picks_the_tf1_indices() {
    let gpu = gpu();
    // 64 -> 32 is not stride-2 subsampling: it crosses from even to odd indices at the middle.
    let expected: Vec<usize> = (0..=30).step_by(2).chain((33..=63).step_by(2)).collect();
    assert_eq!(expected.len(), 32);
    assert_eq!(
        picked_columns(&gpu, 64, 32, NearestMode::TfAlignCorners),
        expected
    );
    // ×2 upsampling repeats every pixel twice.
    let doubled: Vec<usize> = (0..32).flat_map(|i| [i, i]).collect();
    assert_eq!(
        picked_columns(&gpu, 32, 64, NearestMode::Torch),
        doubled,
        "torch x2"
    );
    assert_eq!(
        picked_columns(&gpu, 64, 128, NearestMode::Torch),
        (0..64).flat_map(|i| [i, i]).collect::<Vec<_>>()
    );
    // The GPU's f32 index arithmetic agrees with the host rule on awkward ratios.
    for (n_in, n_out) in [(64, 32), (7, 3), (5, 12), (100, 33), (33, 100), (1, 5), (5, 1)] {
        for mode in [NearestMode::Torch, NearestMode::TfAlignCorners] {
            assert_eq!(
                picked_columns(&gpu, n_in, n_out, mode),
                reference::nearest_indices(n_in, n_out, mode),
                "{mode:?} {n_in}->{n_out}"
            );
        }
    }
}

#[test]
fn tf_align_corners_doubling_is_repetition() {
    let gpu = gpu();
    for n in [4usize, 16, 32, 64, 128] {
        let doubled: Vec<usize> = (0..n).flat_map(|i| [i, i]).collect();
        assert_eq!(
            picked_columns(&gpu, n, 2 * n, NearestMode::TfAlignCorners),
            doubled,
            "{n} -> {}",
            2 * n
        );
    }
}

#[test]
fn bad_sizes_are_errors() {
    let gpu = gpu();
    let x = Tensor::zeros(&gpu, &[1, 2, 5, 6]).unwrap();
    let e = resize::resize_bilinear(&x, 0, 4, false).unwrap_err().to_string();
    assert!(e.contains("non-empty"), "{e}");
    assert!(resize::resize_bilinear(&x, 4, 0, true).is_err());
    assert!(resize::resize_nearest(&x, 0, 0, NearestMode::Torch).is_err());
    assert!(resize::resize_bilinear_backward(&x, 0, 3, false).is_err());
    assert!(resize::resize_nearest_backward(&x, 3, 0, NearestMode::Torch).is_err());
    let flat = Tensor::zeros(&gpu, &[5, 6]).unwrap();
    assert!(resize::resize_bilinear(&flat, 4, 4, false).is_err());
}
