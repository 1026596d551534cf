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
    UnaryOp::LeakyRelu { alpha: 0.1 },
    UnaryOp::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    },
    UnaryOp::HardSigmoid {
        alpha: 1.0 / 6.0,
        beta: 0.5,
    },
    UnaryOp::HardSwish,
    UnaryOp::Erf,
    UnaryOp::Gelu,
    UnaryOp::GeluTanh,
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
            // exp/pow/tanh use hardware approximations: a few ulp relative error. erf (alone
            // and in GELU) is good to 1.3e-7 absolute, tested tighter below.
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
fn reference_erf_matches_tabulated_values() {
    // Values from a correctly rounded libm (CPython's math.erf/erfc), on both sides of the
    // reference's switch from series to continued fraction at 2.5.
    let table = [
        (0.1, 0.1124629160182849),
        (0.5, 0.5204998778130465),
        (1.0, 0.8427007929497149),
        (2.0, 0.9953222650189527),
        (2.5, 0.999593047982555),
        (3.0, 0.9999779095030014),
    ];
    for (x, want) in table {
        assert!((reference::erf(x) - want).abs() < 1e-14, "erf({x})");
        assert!((reference::erf(-x) + want).abs() < 1e-14, "erf(-{x})");
    }
    for (x, want) in [(3.0, 2.2090496998585438e-05), (5.0, 1.5374597944280351e-12)] {
        assert!((reference::erfc(x) / want - 1.0).abs() < 1e-13, "erfc({x})");
    }
}

#[test]
fn erf_and_gelu_meet_their_error_bounds() {
    let gpu = gpu();
    // An odd number of points on [−6, 6], past where erf rounds to ±1 in f32.
    let n = 24_001;
    let x: Vec<f32> = (0..n).map(|i| -6.0 + 12.0 * i as f32 / (n - 1) as f32).collect();
    let t = Tensor::from_slice(&gpu, &[n], &x).unwrap();
    let erf = ew::erf(&t).unwrap().to_vec().unwrap();
    // The approximation is within 7.5e-8 of erf in f32 arithmetic; the driver's exp adds
    // under 5.5e-8 (shaders/elementwise.wgsl): 1.3e-7 in all, 2e-7 with margin.
    assert_close("erf", &erf, &reference::unary(&x, UnaryOp::Erf), 2e-7, 0.0);
    // Below |x| = 1 the series is within 7.5e-8 relative, so tiny inputs keep their digits.
    let small: Vec<f32> = [1e-30f32, 1e-8, 1e-4, 0.01, 0.3, 0.7, 0.99]
        .iter()
        .flat_map(|&v| [v, -v])
        .collect();
    let erf_small = ew::erf(&Tensor::from_slice(&gpu, &[small.len()], &small).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close(
        "erf near 0",
        &erf_small,
        &reference::unary(&small, UnaryOp::Erf),
        0.0,
        1.5e-7,
    );
    // GELU's lower tail comes from erfc, whose f32 relative error grows with z² (the rounding
    // of z² and exp's 3 + 2|x| ulp, about 6e-6 at x = −8): relative accuracy where the
    // output is far below any absolute tolerance.
    let tail: Vec<f32> = (0..701).map(|i| -8.0 + 7.0 * i as f32 / 700.0).collect();
    let gelu = ew::gelu(&Tensor::from_slice(&gpu, &[tail.len()], &tail).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    assert_close(
        "gelu lower tail",
        &gelu,
        &reference::unary(&tail, UnaryOp::Gelu),
        0.0,
        2e-5,
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

const KINKS: [f32; 9] = [0.0, 6.0, -0.5, 2.0, 0.5, -2.5, 2.5, -3.0, 3.0];

fn unary_ref(x: f64, op: UnaryOp) -> f64 {
    fido::ops::elementwise::reference::unary_one(x, op)
}

#[test]
fn unary_rules_match_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(30);
    for &op in UNARY {
        let positive = needs_positive(op);
        // Stay away from kinks (0 for relu/abs/leaky relu, 6 for relu6, the clamp bounds, the
        // step's threshold, ±2.5 and ±3 for the hard sigmoids and hard swish) where the
        // finite difference straddles two slopes.
        let x: Vec<f32> = (0..37)
            .map(|_| loop {
                let v = if positive {
                    rng.uniform(0.3, 3.0)
                } else {
                    rng.uniform(-7.0, 7.0)
                };
                if KINKS.iter().all(|k| (v - k).abs() > 0.05) {
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
