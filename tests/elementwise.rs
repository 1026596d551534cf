mod common;

use common::{assert_close, fd_gradient, gpu, Rng};
use fido::ops::elementwise::{self as ew, reference, BinaryOp, UnaryOp};
use fido::{Tape, Tensor};

const UNARY: &[UnaryOp] = &[
    UnaryOp::Neg,
    UnaryOp::Exp,
    UnaryOp::Log,
    UnaryOp::Sigmoid,
    UnaryOp::Relu,
    UnaryOp::Relu6,
    UnaryOp::Elu { alpha: 1.0 },
    UnaryOp::Elu { alpha: 0.3 },
    UnaryOp::Clamp { lo: -0.5, hi: 2.0 },
    UnaryOp::AddScalar(1.5),
    UnaryOp::MulScalar(-3.0),
    UnaryOp::RsubScalar(1.0),
    UnaryOp::RdivScalar(2.0),
    UnaryOp::Affine {
        scale: 0.5,
        shift: -1.0,
    },
    UnaryOp::Square,
    UnaryOp::Sqrt,
    UnaryOp::Abs,
    UnaryOp::Tanh,
    UnaryOp::PowScalar(1.7),
    UnaryOp::Step(0.5),
];

fn needs_positive(op: UnaryOp) -> bool {
    matches!(
        op,
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::PowScalar(_) | UnaryOp::RdivScalar(_)
    )
}

#[test]
fn unary_ops_match_reference_on_odd_sizes() {
    let gpu = gpu();
    let mut rng = Rng::new(1);
    // 1 element, a vec4 multiple, odd sizes not divisible by the 256-wide workgroup.
    for &n in &[1usize, 4, 7, 255, 257, 1023, 4099] {
        for &op in UNARY {
            let (lo, hi) = if needs_positive(op) {
                (0.05, 9.0)
            } else {
                (-9.0, 9.0)
            };
            let x = rng.vec(n, lo, hi);
            let t = Tensor::from_slice(&gpu, &[n], &x).unwrap();
            let y = ew::unary(&t, op).unwrap().to_vec().unwrap();
            // exp/pow/tanh use hardware approximations: a few ulp relative error.
            assert_close(
                &format!("{op:?} n={n}"),
                &y,
                &reference::unary(&x, op),
                1e-6,
                2e-6,
            );
        }
    }
}

#[test]
fn sigmoid_is_finite_and_saturates_on_extreme_inputs() {
    let gpu = gpu();
    let x = [-1e4f32, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4];
    let y = ew::sigmoid(&Tensor::from_slice(&gpu, &[7], &x).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close(
        "sigmoid tails",
        &y,
        &reference::unary(&x, UnaryOp::Sigmoid),
        1e-30,
        2e-6,
    );
}

#[test]
fn binary_ops_broadcast_like_numpy() {
    let gpu = gpu();
    let mut rng = Rng::new(2);
    let cases: &[(&[usize], &[usize])] = &[
        (&[5, 7], &[5, 7]),
        (&[8, 4], &[8, 4]),
        (&[3, 1, 5], &[1, 4, 1]),
        (&[2, 3, 5, 7], &[7]),
        (&[1], &[6, 1, 3]),
        (&[2, 1, 3, 1, 5], &[4, 1, 2, 5]),
        (&[1, 1], &[1, 1]),
        (&[257, 3], &[257, 1]),
    ];
    for &(sa, sb) in cases {
        for op in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Max,
            BinaryOp::Min,
        ] {
            let a = rng.vec(sa.iter().product(), -3.0, 3.0);
            // Keep divisors away from zero so the relative tolerance means something.
            let b: Vec<f32> = rng
                .vec(sb.iter().product(), 0.5, 3.0)
                .into_iter()
                .map(|v| if rng.below(2) == 0 { v } else { -v })
                .collect();
            let ta = Tensor::from_slice(&gpu, sa, &a).unwrap();
            let tb = Tensor::from_slice(&gpu, sb, &b).unwrap();
            let out = ew::binary(&ta, &tb, op).unwrap();
            let (shape, want) = reference::binary(&a, sa, &b, sb, op);
            assert_eq!(out.shape(), &shape[..]);
            assert_close(
                &format!("{op:?} {sa:?}∘{sb:?}"),
                &out.to_vec().unwrap(),
                &want,
                1e-6,
                1e-6,
            );
        }
    }
}

#[test]
fn grids_beyond_65535_workgroups_fold_into_y() {
    let gpu = gpu();
    // 65536·256 + 3 scalar elements need 65537 workgroups of 256.
    let n = 65536 * 256 + 3;
    let mut rng = Rng::new(3);
    let x = rng.vec(n, -2.0, 2.0);
    let t = Tensor::from_slice(&gpu, &[n], &x).unwrap();
    let y = ew::unary(
        &t,
        UnaryOp::Affine {
            scale: 2.0,
            shift: 1.0,
        },
    )
    .unwrap()
    .to_vec()
    .unwrap();
    let want = reference::unary(
        &x,
        UnaryOp::Affine {
            scale: 2.0,
            shift: 1.0,
        },
    );
    assert_close("affine folded grid", &y, &want, 1e-6, 1e-6);
    // The same through the broadcasting path: [n] + [1].
    let one = Tensor::from_slice(&gpu, &[1], &[0.25]).unwrap();
    let z = ew::add(&t, &one).unwrap().to_vec().unwrap();
    let want: Vec<f64> = x.iter().map(|&v| v as f64 + 0.25).collect();
    assert_close("broadcast add folded grid", &z, &want, 1e-6, 1e-6);
}

#[test]
fn shape_errors_are_reported_not_panicked() {
    let gpu = gpu();
    let a = Tensor::zeros(&gpu, &[2, 3]).unwrap();
    let b = Tensor::zeros(&gpu, &[4, 3]).unwrap();
    let err = ew::add(&a, &b).unwrap_err().to_string();
    assert!(err.contains("do not broadcast"), "{err}");
    assert!(ew::clamp(&a, 1.0, -1.0).is_err());
    assert!(Tensor::from_slice(&gpu, &[2, 2], &[1.0; 3]).is_err());
}

// Gradients of f32 kernels against f64 finite differences: f32 rounding in the forward pass
// gives relative errors near 1e-6; 1e-4 leaves room for sums over a few hundred terms.
const GRAD_RTOL: f64 = 1e-4;
const GRAD_ATOL: f64 = 1e-5;

fn unary_ref(x: f64, op: UnaryOp) -> f64 {
    fido::ops::elementwise::reference::unary_one(x, op)
}

#[test]
fn unary_rules_match_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(30);
    for &op in UNARY {
        let positive = needs_positive(op);
        // Stay away from kinks (0 for relu/abs, 6 for relu6, the clamp bounds, the step's
        // threshold) where the finite difference straddles two slopes.
        let x: Vec<f32> = (0..37)
            .map(|_| loop {
                let v = if positive {
                    rng.uniform(0.3, 3.0)
                } else {
                    rng.uniform(-7.0, 7.0)
                };
                if [0.0f32, 6.0, -0.5, 2.0, 0.5].iter().all(|k| (v - k).abs() > 0.05) {
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
            GRAD_ATOL,
            GRAD_RTOL,
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
                GRAD_ATOL,
                GRAD_RTOL,
            );
            assert_close(
                &format!("d{name}/db {sa:?} {sb:?}"),
                &grads.get(&bv).unwrap().to_vec().unwrap(),
                &want_b,
                GRAD_ATOL,
                GRAD_RTOL,
            );
        }
    }
}
