mod common;

use common::{assert_close, gpu, Rng};
use fido::ops::elementwise::{self as ew, reference, BinaryOp, UnaryOp};
use fido::Tensor;

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
