//! Softmax, log-softmax and log-odds rows against the f64 reference, and their rules on the
//! tape against finite differences.

mod common;

use common::{assert_close, fd_gradient, for_each_profile, Rng};
use fido::gpu::KernelProfile;
use fido::ops::reduce::LaneCombine;
use fido::ops::softmax::{self, reference as sref, SoftmaxKind};
use fido::{Gpu, Tape, Tensor};

/// Run `f` under every kernel variant on one adapter: the `cpu` profile, and the `gpu`
/// profile with each lane combine the adapter has (subgroups where it reports them, and
/// always the workgroup tree).
fn for_each_variant(mut f: impl FnMut(&Gpu)) {
    for_each_profile(|gpu| {
        if gpu.kernel_profile() == KernelProfile::Cpu {
            return f(gpu);
        }
        for combine in LaneCombine::available(gpu) {
            eprintln!("lane combine: {combine:?}");
            gpu.set_tuning(Some(combine));
            f(gpu);
        }
        gpu.set_tuning::<LaneCombine>(None);
    });
}

// Gradients of f32 kernels against f64 finite differences: f32 rounding in the forward pass
// gives relative errors near 1e-6; 1e-4 leaves room for sums over a few hundred terms.
const GRAD_RTOL: f64 = 1e-4;
const GRAD_ATOL: f64 = 1e-5;

#[test]
fn softmax_family_matches_reference_and_survives_large_logits() {
    for_each_variant(|gpu| {
        let mut rng = Rng::new(22);
        for &(rows, len) in &[(1usize, 1usize), (3, 7), (8, 1000), (70_000, 3), (2, 65)] {
            let mut x = rng.vec(rows * len, -10.0, 10.0);
            x[0] = 500.0; // would overflow exp without the max shift
            let t = Tensor::from_slice(gpu, &[rows, len], &x).unwrap();
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
    });
}

#[test]
fn softmax_rejects_empty_rows() {
    for_each_variant(|gpu| {
        let empty = Tensor::zeros(gpu, &[2, 0]).unwrap();
        assert!(softmax::softmax(&empty).is_err());
    });
}

#[test]
fn softmax_rules_match_finite_differences() {
    for_each_variant(|gpu| {
        let mut rng = Rng::new(33);
        let x = rng.vec(60, -2.0, 2.0);
        let xt = Tensor::from_slice(gpu, &[12, 5], &x).unwrap();
        for log in [true, false] {
            let tape = Tape::new();
            let xv = tape.param(xt.clone());
            let y = if log { xv.log_softmax() } else { xv.softmax() }.unwrap();
            let r = rng.vec(60, -1.0, 1.0);
            let grads = tape
                .backward_from(&y, Tensor::from_slice(gpu, &[12, 5], &r).unwrap())
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
    });
}

#[test]
fn log_odds_matches_reference_and_finite_differences() {
    for_each_variant(|gpu| {
        let mut rng = Rng::new(35);
        for &(rows, len) in &[(1usize, 2usize), (3, 7), (4, 1000)] {
            let mut x = rng.vec(rows * len, -5.0, 5.0);
            x[0] = 60.0; // a confident row: p_c near 1 must not lose its log-odds to rounding
            let labels: Vec<usize> = (0..rows).map(|r| (r * 7 + 1) % len).collect();
            let labels_u32: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
            let tape = Tape::new();
            let xv = tape.param(Tensor::from_slice(gpu, &[rows, len], &x).unwrap());
            let lt = Tensor::from_u32(gpu, &[rows], &labels_u32).unwrap();
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
                .backward_from(&s, Tensor::from_slice(gpu, &[rows], &r).unwrap())
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
    });
}

#[test]
fn softmax_and_log_odds_handle_odd_row_lengths_and_counts() {
    for_each_variant(|gpu| {
        let mut rng = Rng::new(23);
        // Rows shorter than a subgroup, than the workgroup, and several workgroup strides
        // long, with the max anywhere in the row; 70,000 rows fold the grid into two axes.
        for &(rows, len) in &[
            (1usize, 1usize),
            (5, 7),
            (33, 257),
            (3, 1000),
            (4, 4099),
            (70_000, 2),
        ] {
            let mut x = rng.vec(rows * len, -8.0, 8.0);
            for r in 0..rows.min(8) {
                x[r * len + (r * 131) % len] = 40.0 + r as f32;
            }
            let t = Tensor::from_slice(gpu, &[rows, len], &x).unwrap();
            for kind in [
                SoftmaxKind::Softmax,
                SoftmaxKind::LogSoftmax,
                SoftmaxKind::LogSumExp,
            ] {
                let y = softmax::softmax_like(&t, kind).unwrap();
                // As above: a few ulp of relative error from exp and log on f32.
                assert_close(
                    &format!("{kind:?} {rows}x{len}"),
                    &y.to_vec().unwrap(),
                    &sref::softmax_like(&x, len, kind),
                    2e-6,
                    1e-5,
                );
            }
            if len < 2 {
                continue;
            }
            let labels: Vec<usize> = (0..rows).map(|r| (r * 7 + 3) % len).collect();
            let labels_u32: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
            let lt = Tensor::from_u32(gpu, &[rows], &labels_u32).unwrap();
            let scores = softmax::log_odds(&t, &lt).unwrap();
            assert_close(
                &format!("log-odds {rows}x{len}"),
                &scores.to_vec().unwrap(),
                &sref::log_odds(&x, len, &labels),
                1e-5,
                1e-5,
            );
            // The backward kernel against its closed form: 1 at the label, −exp(x_k − lse_{≠c}).
            let dy = rng.vec(rows, -1.0, 1.0);
            let dx =
                softmax::log_odds_backward(&t, &lt, &Tensor::from_slice(gpu, &[rows], &dy).unwrap()).unwrap();
            let lse: Vec<f64> = sref::log_odds(&x, len, &labels)
                .iter()
                .zip(&labels)
                .enumerate()
                .map(|(r, (s, &c))| x[r * len + c] as f64 - s)
                .collect();
            let want: Vec<f64> = (0..rows * len)
                .map(|i| {
                    let (r, k) = (i / len, i % len);
                    let g = dy[r] as f64;
                    if k == labels[r] {
                        g
                    } else {
                        -g * (x[i] as f64 - lse[r]).exp()
                    }
                })
                .collect();
            assert_close(
                &format!("dlog-odds {rows}x{len}"),
                &dx.to_vec().unwrap(),
                &want,
                1e-6,
                1e-5,
            );
        }
    });
}
