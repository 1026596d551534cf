//! The tape: every rule of the engine's own ops against central finite differences of an f64
//! CPU reference, gradient accumulation over several uses, frozen weights, no-grad scopes.

mod common;

use common::{assert_close, fd_gradient, gpu, Rng};
use fido::ops::elementwise::UnaryOp;
use fido::ops::reduce::Reduction;
use fido::{Tape, Tensor};

// Gradients of f32 kernels against f64 finite differences: f32 rounding in the forward pass
// gives relative errors near 1e-6; 1e-4 leaves room for sums over a few hundred terms.
const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

fn unary_ref(x: f64, op: UnaryOp) -> f64 {
    fido::ops::elementwise::reference::unary_one(x, op)
}

#[test]
fn unary_rules_match_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(30);
    let ops = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Relu6,
        UnaryOp::Elu { alpha: 0.7 },
        UnaryOp::Clamp { lo: -1.0, hi: 1.5 },
        UnaryOp::AddScalar(2.0),
        UnaryOp::MulScalar(-1.5),
        UnaryOp::RsubScalar(3.0),
        UnaryOp::RdivScalar(2.0),
        UnaryOp::Affine {
            scale: 2.0,
            shift: 1.0,
        },
        UnaryOp::Square,
        UnaryOp::Sqrt,
        UnaryOp::Abs,
        UnaryOp::Tanh,
        UnaryOp::PowScalar(2.5),
    ];
    for op in ops {
        let positive = matches!(
            op,
            UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::RdivScalar(_) | UnaryOp::PowScalar(_)
        );
        // Stay away from kinks (0 for relu/abs, 6 for relu6, the clamp bounds) where the
        // finite difference straddles two slopes.
        let x: Vec<f32> = (0..37)
            .map(|_| loop {
                let v = if positive {
                    rng.uniform(0.3, 3.0)
                } else {
                    rng.uniform(-7.0, 7.0)
                };
                if [0.0f32, 6.0, -1.0, 1.5].iter().all(|k| (v - k).abs() > 0.05) {
                    break v;
                }
            })
            .collect();
        let r = rng.vec(37, -1.0, 1.0);
        let tape = Tape::new();
        let xv = tape.param(Tensor::from_slice(&gpu, &[37], &x).unwrap());
        let y = xv.unary(op).unwrap();
        let grads = tape
            .backward_from(&y, Tensor::from_slice(&gpu, &[37], &r).unwrap())
            .unwrap();
        let want = fd_gradient(|xs| xs.iter().map(|&v| unary_ref(v, op)).collect(), &x, &r, 1e-5);
        assert_close(
            &format!("d{op:?}"),
            &grads.get(&xv).unwrap().to_vec().unwrap(),
            &want,
            ATOL,
            RTOL,
        );
    }
}

/// `f(a, b)` with NumPy broadcasting in f64. The element of each operand that feeds each
/// output is found by broadcasting its indices (max of an index and −1 is the index).
fn broadcast_ref(a: &[f64], sa: &[usize], b: &[f64], sb: &[usize], f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    use fido::ops::elementwise::{reference::binary, BinaryOp};
    let idx_a: Vec<f32> = (0..a.len()).map(|i| i as f32).collect();
    let idx_b: Vec<f32> = (0..b.len()).map(|i| i as f32).collect();
    let (_, pick_a) = binary(&idx_a, sa, &vec![-1.0; b.len()], sb, BinaryOp::Max);
    let (_, pick_b) = binary(&vec![-1.0; a.len()], sa, &idx_b, sb, BinaryOp::Max);
    pick_a
        .iter()
        .zip(&pick_b)
        .map(|(&i, &j)| f(a[i as usize], b[j as usize]))
        .collect()
}

#[test]
fn binary_rules_sum_over_broadcast_axes() {
    let gpu = gpu();
    let mut rng = Rng::new(31);
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 5], &[3, 5]),
        (&[2, 3, 4], &[3, 1]),
        (&[4], &[2, 3, 4]),
        (&[2, 1, 3], &[1, 4, 1]),
    ];
    type F = fn(f64, f64) -> f64;
    let ops: [(&str, F); 4] = [
        ("add", |a, b| a + b),
        ("sub", |a, b| a - b),
        ("mul", |a, b| a * b),
        ("div", |a, b| a / b),
    ];
    for &(sa, sb) in cases {
        for (name, f) in ops {
            let (na, nb) = (sa.iter().product::<usize>(), sb.iter().product::<usize>());
            let a = rng.vec(na, -2.0, 2.0);
            let b: Vec<f32> = rng.vec(nb, 0.5, 2.0);
            let tape = Tape::new();
            let av = tape.param(Tensor::from_slice(&gpu, sa, &a).unwrap());
            let bv = tape.param(Tensor::from_slice(&gpu, sb, &b).unwrap());
            let y = match name {
                "add" => av.add(&bv),
                "sub" => av.sub(&bv),
                "mul" => av.mul(&bv),
                _ => av.div(&bv),
            }
            .unwrap();
            let r = rng.vec(y.value().numel(), -1.0, 1.0);
            let grads = tape
                .backward_from(&y, Tensor::from_slice(&gpu, y.shape(), &r).unwrap())
                .unwrap();
            let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            let a64: Vec<f64> = a.iter().map(|&v| v as f64).collect();
            let want_a = fd_gradient(|xs| broadcast_ref(xs, sa, &b64, sb, f), &a, &r, 1e-5);
            let want_b = fd_gradient(|xs| broadcast_ref(&a64, sa, xs, sb, f), &b, &r, 1e-5);
            assert_close(
                &format!("d{name}/da {sa:?} {sb:?}"),
                &grads.get(&av).unwrap().to_vec().unwrap(),
                &want_a,
                ATOL,
                RTOL,
            );
            assert_close(
                &format!("d{name}/db {sa:?} {sb:?}"),
                &grads.get(&bv).unwrap().to_vec().unwrap(),
                &want_b,
                ATOL,
                RTOL,
            );
        }
    }
}

#[test]
fn matmul_rule_matches_finite_differences_for_every_transpose_and_broadcast() {
    let gpu = gpu();
    let mut rng = Rng::new(32);
    let (m, n, k) = (3, 5, 4);
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for batched_b in [false, true] {
            let a_shape = if ta { vec![2, k, m] } else { vec![2, m, k] };
            let mut b_shape = if tb { vec![n, k] } else { vec![k, n] };
            if batched_b {
                b_shape.insert(0, 2);
            }
            let a = rng.vec(a_shape.iter().product(), -1.0, 1.0);
            let b = rng.vec(b_shape.iter().product(), -1.0, 1.0);
            let tape = Tape::new();
            let av = tape.param(Tensor::from_slice(&gpu, &a_shape, &a).unwrap());
            let bv = tape.param(Tensor::from_slice(&gpu, &b_shape, &b).unwrap());
            let y = av.matmul(&bv, ta, tb).unwrap();
            let r = rng.vec(y.value().numel(), -1.0, 1.0);
            let grads = tape
                .backward_from(&y, Tensor::from_slice(&gpu, y.shape(), &r).unwrap())
                .unwrap();
            let s = fido::ops::matmul::MatmulShape::infer(&a_shape, &b_shape, ta, tb).unwrap();
            let fwd = |a: &[f64], b: &[f64]| -> Vec<f64> {
                let mut c = vec![0.0; s.batch * s.m * s.n];
                for bi in 0..s.batch {
                    let ab = if s.a_batched { bi * s.m * s.k } else { 0 };
                    let bb = if s.b_batched { bi * s.k * s.n } else { 0 };
                    for i in 0..s.m {
                        for j in 0..s.n {
                            c[bi * s.m * s.n + i * s.n + j] = (0..s.k)
                                .map(|kk| {
                                    let x = if ta {
                                        a[ab + kk * s.m + i]
                                    } else {
                                        a[ab + i * s.k + kk]
                                    };
                                    let w = if tb {
                                        b[bb + j * s.k + kk]
                                    } else {
                                        b[bb + kk * s.n + j]
                                    };
                                    x * w
                                })
                                .sum();
                        }
                    }
                }
                c
            };
            let a64: Vec<f64> = a.iter().map(|&v| v as f64).collect();
            let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            let want_a = fd_gradient(|xs| fwd(xs, &b64), &a, &r, 1e-5);
            let want_b = fd_gradient(|xs| fwd(&a64, xs), &b, &r, 1e-5);
            let what = format!("matmul ta={ta} tb={tb} batched_b={batched_b}");
            assert_close(
                &format!("{what} dA"),
                &grads.get(&av).unwrap().to_vec().unwrap(),
                &want_a,
                ATOL,
                RTOL,
            );
            assert_close(
                &format!("{what} dB"),
                &grads.get(&bv).unwrap().to_vec().unwrap(),
                &want_b,
                ATOL,
                RTOL,
            );
        }
    }
}

#[test]
fn reduction_and_softmax_rules_match_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(33);
    let shape = [3usize, 4, 5];
    let x = rng.vec(60, -2.0, 2.0);
    let xt = Tensor::from_slice(&gpu, &shape, &x).unwrap();
    for axis in 0..3 {
        for op in [Reduction::Sum, Reduction::Mean] {
            let tape = Tape::new();
            let xv = tape.param(xt.clone());
            let y = xv.reduce_axis(axis, op, false).unwrap();
            let r = rng.vec(y.value().numel(), -1.0, 1.0);
            let grads = tape
                .backward_from(&y, Tensor::from_slice(&gpu, y.shape(), &r).unwrap())
                .unwrap();
            let f = |xs: &[f64]| {
                let (outer, len, inner) = (
                    shape[..axis].iter().product::<usize>(),
                    shape[axis],
                    shape[axis + 1..].iter().product::<usize>(),
                );
                let mut out = vec![];
                for o in 0..outer {
                    for i in 0..inner {
                        let s: f64 = (0..len).map(|l| xs[(o * len + l) * inner + i]).sum();
                        out.push(if op == Reduction::Mean { s / len as f64 } else { s });
                    }
                }
                out
            };
            let want = fd_gradient(f, &x, &r, 1e-5);
            assert_close(
                &format!("{op:?} axis {axis}"),
                &grads.get(&xv).unwrap().to_vec().unwrap(),
                &want,
                ATOL,
                RTOL,
            );
        }
    }
    // Mean of everything, and log-softmax / softmax rows.
    let tape = Tape::new();
    let xv = tape.param(xt.clone());
    let loss = xv.mean().unwrap();
    let grads = tape.backward(&loss).unwrap();
    assert_close(
        "mean",
        &grads.get(&xv).unwrap().to_vec().unwrap(),
        &vec![1.0 / 60.0; 60],
        1e-9,
        1e-6,
    );
    for log in [true, false] {
        let tape = Tape::new();
        let xv = tape.param(xt.reshape(&[12, 5]).unwrap());
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
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn gradients_of_several_uses_are_summed() {
    let gpu = gpu();
    let tape = Tape::new();
    let x = tape.param(Tensor::from_slice(&gpu, &[3], &[1.0, 2.0, 3.0]).unwrap());
    // L = Σ (x·x + 3x) → dL/dx = 2x + 3
    let y = x.mul(&x).unwrap().add(&x.mul_scalar(3.0).unwrap()).unwrap();
    let loss = y.sum().unwrap();
    let grads = tape.backward(&loss).unwrap();
    assert_eq!(grads.get(&x).unwrap().to_vec().unwrap(), vec![5.0, 7.0, 9.0]);
}

#[test]
fn frozen_weights_get_no_gradient_and_no_work() {
    let gpu = gpu();
    let tape = Tape::new();
    let x = tape.param(Tensor::from_slice(&gpu, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap());
    let w = tape.constant(Tensor::from_slice(&gpu, &[3, 2], &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]).unwrap());
    let loss = x.matmul(&w, false, false).unwrap().sum().unwrap();
    let grads = tape.backward(&loss).unwrap();
    assert!(grads.get(&w).is_none());
    // dL/dx = 1·wᵀ summed over columns: row sums of w.
    assert_eq!(
        grads.get(&x).unwrap().to_vec().unwrap(),
        vec![1.0, 1.0, 2.0, 1.0, 1.0, 2.0]
    );
}

#[test]
fn no_grad_scope_records_nothing() {
    let gpu = gpu();
    let tape = Tape::new();
    let x = tape.param(Tensor::from_slice(&gpu, &[2], &[1.0, 2.0]).unwrap());
    let before = tape.len();
    let y = tape.no_grad(|| x.exp().unwrap().mul(&x).unwrap());
    assert!(!y.requires_grad());
    assert_eq!(
        tape.len(),
        before + 2,
        "values are still made, as constants without rules"
    );
    assert!(tape.is_recording());
    let z = x.exp().unwrap();
    assert!(z.requires_grad());
}

#[test]
fn the_walk_returns_buffers_to_the_pool() {
    let gpu = gpu();
    let x0 = Tensor::from_slice(&gpu, &[256], &vec![0.5; 256]).unwrap();
    let step = || {
        let tape = Tape::new();
        let x = tape.param(x0.clone());
        let mut h = x.clone();
        for _ in 0..5 {
            h = h.sigmoid().unwrap().mul(&x).unwrap();
        }
        let loss = h.sum().unwrap();
        let g = tape.backward(&loss).unwrap();
        g.get(&x).unwrap().to_vec().unwrap()
    };
    let first = step();
    let created = gpu.pool_stats().created;
    for _ in 0..3 {
        assert_eq!(step(), first);
    }
    assert_eq!(
        gpu.pool_stats().created,
        created,
        "repeated steps reuse pooled buffers"
    );
}

#[test]
fn backward_needs_a_scalar_loss() {
    let gpu = gpu();
    let tape = Tape::new();
    let x = tape.param(Tensor::zeros(&gpu, &[3]).unwrap());
    let y = x.exp().unwrap();
    assert!(tape.backward(&y).is_err());
}

/// The spatial rules hand the tape's gradient to the families' backward kernels, which their
/// own tests check against finite differences. Here: the wiring, on a chain of them.
#[test]
fn spatial_layout_and_sampling_rules_match_finite_differences_through_the_tape() {
    use fido::ops::resize::NearestMode;
    let gpu = gpu();
    let mut rng = Rng::new(34);
    let shape = [1usize, 2, 5, 6];
    let x = rng.vec(60, -1.0, 1.0);
    let run = |x: &Tensor| -> (Tape, fido::Var, fido::Var) {
        let tape = Tape::new();
        let xv = tape.param(x.clone());
        let a = xv.resize_bilinear(7, 9, false).unwrap();
        let b = a.pad([1, 0, 2, 1], 0.5).unwrap();
        let c = b.avg_pool2d([2, 2], [1, 1], [0, 0], true).unwrap();
        let d = c.resize_nearest(4, 5, NearestMode::Torch).unwrap();
        let e = d.slice(3, 1, 4).unwrap();
        let f = fido::Var::concat(&[&e, &xv.adaptive_avg_pool2d(1, 3).unwrap()], 2).unwrap();
        let g = f
            .global_avg_pool()
            .unwrap()
            .add(
                &f.max_pool2d([2, 2], [1, 1], [0, 0])
                    .unwrap()
                    .global_avg_pool()
                    .unwrap(),
            )
            .unwrap();
        (tape, xv, g)
    };
    let xt = Tensor::from_slice(&gpu, &shape, &x).unwrap();
    let (tape, xv, out) = run(&xt);
    let r = rng.vec(out.value().numel(), -1.0, 1.0);
    let grads = tape
        .backward_from(&out, Tensor::from_slice(&gpu, out.shape(), &r).unwrap())
        .unwrap();
    let got = grads.get(&xv).unwrap().to_vec().unwrap();
    // The reference is the same chain evaluated on the GPU in f32, so the step must be large
    // enough for f32 rounding to vanish in the difference; the chain is piecewise linear
    // (max pool aside, whose argmax does not move for this step and seed).
    let eps = 1e-2f32;
    let loss = |xs: &[f32]| -> f64 {
        let t = Tensor::from_slice(&gpu, &shape, xs).unwrap();
        let (_, _, g) = run(&t);
        g.value()
            .to_vec()
            .unwrap()
            .iter()
            .zip(&r)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    };
    let mut xs = x.clone();
    let want: Vec<f64> = (0..60)
        .map(|i| {
            let keep = xs[i];
            xs[i] = keep + eps;
            let up = loss(&xs);
            xs[i] = keep - eps;
            let down = loss(&xs);
            xs[i] = keep;
            (up - down) / (2.0 * eps as f64)
        })
        .collect();
    assert_close("spatial chain", &got, &want, 2e-4, 2e-3);
}

#[test]
fn concrete_rule_flows_to_the_logits() {
    let gpu = gpu();
    let logits = Tensor::from_slice(&gpu, &[1, 1, 2, 3], &[-2.0, -0.5, 0.0, 0.3, 1.0, 2.5]).unwrap();
    let tape = Tape::new();
    let lv = tape.param(logits.clone());
    let z = lv.concrete_sample(4, 0.5, 9, 0).unwrap();
    let loss = z.sum().unwrap();
    let grads = tape.backward(&loss).unwrap();
    // Same draws from the same seed: the rule is Σ_s z(1−z)/t per logit.
    let zs = fido::ops::random::concrete_sample(&logits, 4, 0.5, 9, 0)
        .unwrap()
        .to_vec()
        .unwrap();
    let want: Vec<f64> = (0..6)
        .map(|i| {
            (0..4)
                .map(|s| {
                    let v = zs[s * 6 + i] as f64;
                    v * (1.0 - v) / 0.5
                })
                .sum()
        })
        .collect();
    assert_close(
        "concrete",
        &grads.get(&lv).unwrap().to_vec().unwrap(),
        &want,
        1e-6,
        1e-5,
    );
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
            ATOL,
            RTOL,
        );
    }
}
