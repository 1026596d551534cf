//! Softmax, log-softmax and log-odds rows against the f64 reference, and their rules on the
//! tape against finite differences.

mod common;

use common::{assert_close, fd_gradient, gpu, Rng};
use fido::ops::softmax::{self, reference as sref, SoftmaxKind};
use fido::{Tape, Tensor};

// Gradients of f32 kernels against f64 finite differences: f32 rounding in the forward pass
// gives relative errors near 1e-6; 1e-4 leaves room for sums over a few hundred terms.
const GRAD_RTOL: f64 = 1e-4;
const GRAD_ATOL: f64 = 1e-5;

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
fn softmax_rejects_empty_rows() {
    let gpu = gpu();
    let empty = Tensor::zeros(&gpu, &[2, 0]).unwrap();
    assert!(softmax::softmax(&empty).is_err());
}

#[test]
fn softmax_rules_match_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(33);
    let x = rng.vec(60, -2.0, 2.0);
    let xt = Tensor::from_slice(&gpu, &[12, 5], &x).unwrap();
    for log in [true, false] {
        let tape = Tape::new();
        let xv = tape.param(xt.clone());
        let y = if log { xv.log_softmax() } else { xv.softmax() }.unwrap();
        let r = rng.vec(60, -1.0, 1.0);
        let grads = tape
            .backward_from(&y, Tensor::from_slice(&gpu, &[12, 5], &r).unwrap())
            .unwrap();
        let f = |xs: &[f64]| -> Vec<f64> {
            xs.chunks(5)
                .flat_map(|row| {
                    let m = row.iter().cloned().fold(f64::MIN, f64::max);
                    let s: f64 = row.iter().map(|v| (v - m).exp()).sum();
                    row.iter()
                        .map(move |v| if log { v - m - s.ln() } else { (v - m).exp() / s })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let want = fd_gradient(f, &x, &r, 1e-5);
        assert_close(
            &format!("softmax log={log}"),
            &grads.get(&xv).unwrap().to_vec().unwrap(),
            &want,
            GRAD_ATOL,
            GRAD_RTOL,
        );
    }
}

#[test]
fn log_odds_matches_reference_and_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(35);
    for &(rows, len) in &[(1usize, 2usize), (3, 7), (4, 1000)] {
        let mut x = rng.vec(rows * len, -5.0, 5.0);
        x[0] = 60.0; // a confident row: p_c near 1 must not lose its log-odds to rounding
        let labels: Vec<usize> = (0..rows).map(|r| (r * 7 + 1) % len).collect();
        let labels_u32: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        let tape = Tape::new();
        let xv = tape.param(Tensor::from_slice(&gpu, &[rows, len], &x).unwrap());
        let lt = Tensor::from_u32(&gpu, &[rows], &labels_u32).unwrap();
        let s = xv.log_odds(&lt).unwrap();
        let want = fido::ops::softmax::reference::log_odds(&x, len, &labels);
        assert_close(
            &format!("log-odds {rows}x{len}"),
            &s.value().to_vec().unwrap(),
            &want,
            1e-5,
            1e-5,
        );
        let r = rng.vec(rows, -1.0, 1.0);
        let grads = tape
            .backward_from(&s, Tensor::from_slice(&gpu, &[rows], &r).unwrap())
            .unwrap();
        let f = |xs: &[f64]| -> Vec<f64> {
            xs.chunks(len)
                .zip(&labels)
                .map(|(row, &c)| {
                    let m = row
                        .iter()
                        .enumerate()
                        .filter(|&(k, _)| k != c)
                        .map(|(_, &v)| v)
                        .fold(f64::MIN, f64::max);
                    row[c]
                        - (m + row
                            .iter()
                            .enumerate()
                            .filter(|&(k, _)| k != c)
                            .map(|(_, &v)| (v - m).exp())
                            .sum::<f64>()
                            .ln())
                })
                .collect()
        };
        let want_g = fd_gradient(f, &x, &r, 1e-5);
        assert_close(
            &format!("dlog-odds {rows}x{len}"),
            &grads.get(&xv).unwrap().to_vec().unwrap(),
            &want_g,
            GRAD_ATOL,
            GRAD_RTOL,
        );
    }
}
