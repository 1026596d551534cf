mod common;

use common::{assert_close, gpu, Rng};
use fido::ops::reduce::{self, reference as rref, Reduction};
use fido::ops::softmax::{self, reference as sref, SoftmaxKind};
use fido::Tensor;

#[test]
fn axis_reductions_match_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(20);
    let shapes: &[&[usize]] = &[
        &[7],
        &[1],
        &[3, 1, 5],
        &[5, 129],
        &[2, 3, 257],
        &[4, 300, 3],
        &[1, 1, 1],
        &[3, 1000],
    ];
    for &shape in shapes {
        let x = rng.vec(shape.iter().product(), -2.0, 2.0);
        let t = Tensor::from_slice(&gpu, shape, &x).unwrap();
        for axis in 0..shape.len() {
            for op in [Reduction::Sum, Reduction::Mean, Reduction::Max] {
                let y = reduce::reduce_axis(&t, axis, op, false).unwrap();
                let mut want_shape = shape.to_vec();
                want_shape.remove(axis);
                assert_eq!(y.shape(), &want_shape[..]);
                let want = rref::reduce_axis(&x, shape, axis, op);
                // Sums of ≤ 1000 values of magnitude ≤ 2: compensated f32 error stays below 1e-5.
                assert_close(
                    &format!("{op:?} axis {axis} of {shape:?}"),
                    &y.to_vec().unwrap(),
                    &want,
                    1e-5,
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn full_reductions_are_accurate_on_large_inputs() {
    let gpu = gpu();
    let mut rng = Rng::new(21);
    // Several passes of the chunked reduction, and a length that is no multiple of anything.
    for &n in &[1usize, 5, 8191, 8193, 3_000_017] {
        // Positive values make naive f32 accumulation drift; the result must not.
        let x = rng.vec(n, 0.0, 1.0);
        let t = Tensor::from_slice(&gpu, &[n], &x).unwrap();
        let s = reduce::sum(&t).unwrap().item().unwrap() as f64;
        let want = rref::reduce_all(&x, Reduction::Sum);
        assert!(
            (s - want).abs() <= 4.0 * f32::EPSILON as f64 * want.abs() + 1e-6,
            "sum n={n}: {s} vs {want}"
        );
        let m = reduce::mean(&t).unwrap().item().unwrap() as f64;
        assert!(
            (m - want / n as f64).abs() <= 4.0 * f32::EPSILON as f64 * m.abs(),
            "mean n={n}"
        );
        let mx = reduce::max(&t).unwrap().item().unwrap() as f64;
        assert_eq!(mx, rref::reduce_all(&x, Reduction::Max), "max n={n}");
    }
}

#[test]
fn max_handles_all_negative_values() {
    let gpu = gpu();
    let t = Tensor::from_slice(&gpu, &[2, 3], &[-5.0, -7.0, -6.0, -1e30, -2e30, -3e30]).unwrap();
    let y = reduce::reduce_axis(&t, 1, Reduction::Max, true).unwrap();
    assert_eq!(y.shape(), &[2, 1]);
    assert_eq!(y.to_vec().unwrap(), vec![-5.0, -1e30]);
}

#[test]
fn softmax_family_matches_reference_and_survives_large_logits() {
    let gpu = gpu();
    let mut rng = Rng::new(22);
    for &(rows, len) in &[(1usize, 1usize), (3, 7), (8, 1000), (70_000, 3), (2, 65)] {
        let mut x = rng.vec(rows * len, -10.0, 10.0);
        x[0] = 500.0; // would overflow exp without the max shift
        let t = Tensor::from_slice(&gpu, &[rows, len], &x).unwrap();
        for kind in [
            SoftmaxKind::Softmax,
            SoftmaxKind::LogSoftmax,
            SoftmaxKind::LogSumExp,
        ] {
            let y = softmax::softmax_like(&t, kind).unwrap();
            let want = sref::softmax_like(&x, len, kind);
            // exp/log on f32: relative error of a few ulp; log-probabilities near -500 keep ~1e-5 absolute.
            assert_close(
                &format!("{kind:?} {rows}x{len}"),
                &y.to_vec().unwrap(),
                &want,
                2e-6,
                1e-5,
            );
        }
    }
}

#[test]
fn reductions_reject_bad_axes() {
    let gpu = gpu();
    let t = Tensor::zeros(&gpu, &[2, 3]).unwrap();
    assert!(reduce::reduce_axis(&t, 2, Reduction::Sum, false).is_err());
    let empty = Tensor::zeros(&gpu, &[2, 0]).unwrap();
    assert!(softmax::softmax(&empty).is_err());
    assert!(reduce::sum(&empty).is_err());
}
