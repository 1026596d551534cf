mod common;

use fido::Tape;

use common::{assert_close, fd_gradient, gpu, to_f64, Rng};
use fido::ops::matmul::{self, reference, MatmulShape, MatmulTiles};
use fido::Tensor;

fn check(
    gpu: &fido::Gpu,
    rng: &mut Rng,
    a_shape: &[usize],
    b_shape: &[usize],
    ta: bool,
    tb: bool,
    tiles: MatmulTiles,
) {
    let a = rng.vec(a_shape.iter().product(), -1.0, 1.0);
    let b = rng.vec(b_shape.iter().product(), -1.0, 1.0);
    let s = MatmulShape::infer(a_shape, b_shape, ta, tb).unwrap();
    let ta_t = Tensor::from_slice(gpu, a_shape, &a).unwrap();
    let tb_t = Tensor::from_slice(gpu, b_shape, &b).unwrap();
    let out = Tensor::empty(gpu, &[s.batch, s.m, s.n], fido::DType::F32).unwrap();
    matmul::matmul_into(&ta_t, &tb_t, ta, tb, &out, 1.0, false, tiles).unwrap();
    let want = reference::matmul(&a, &b, &s, ta, tb);
    // f32 accumulation over k terms of magnitude ≤ 1: error grows like sqrt(k)·eps·|terms|.
    let atol = 1e-6 * (s.k as f64).sqrt() * 4.0;
    assert_close(
        &format!("matmul {a_shape:?}·{b_shape:?} ta={ta} tb={tb} {tiles:?}"),
        &out.to_vec().unwrap(),
        &want,
        atol,
        1e-5,
    );
}

#[test]
fn matmul_matches_reference_for_every_transpose_and_odd_sizes() {
    let gpu = gpu();
    let mut rng = Rng::new(10);
    let dims: &[(usize, usize, usize)] = &[
        (1, 1, 1),
        (3, 5, 7),
        (17, 33, 9),
        (64, 64, 64),
        (13, 260, 12),
        (9, 8, 20),
        (1, 300, 4),
        (70, 1, 3),
    ];
    for &(m, n, k) in dims {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a_shape = if ta { [k, m] } else { [m, k] };
            let b_shape = if tb { [n, k] } else { [k, n] };
            check(&gpu, &mut rng, &a_shape, &b_shape, ta, tb, MatmulTiles::default());
        }
    }
}

#[test]
fn matmul_batches_and_broadcasts_the_batch_axis() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    check(
        &gpu,
        &mut rng,
        &[3, 5, 8],
        &[3, 8, 12],
        false,
        false,
        MatmulTiles::default(),
    );
    check(
        &gpu,
        &mut rng,
        &[3, 5, 7],
        &[1, 7, 6],
        false,
        false,
        MatmulTiles::default(),
    );
    check(
        &gpu,
        &mut rng,
        &[5, 7],
        &[4, 7, 6],
        false,
        false,
        MatmulTiles::default(),
    );
    check(
        &gpu,
        &mut rng,
        &[2, 7, 5],
        &[2, 6, 7],
        true,
        true,
        MatmulTiles::default(),
    );
}

#[test]
fn matmul_is_correct_for_other_tile_sizes() {
    let gpu = gpu();
    let mut rng = Rng::new(12);
    for tiles in [
        MatmulTiles { rows: 1, width: 32 },
        MatmulTiles { rows: 3, width: 16 },
        MatmulTiles { rows: 8, width: 128 },
    ] {
        check(&gpu, &mut rng, &[19, 24], &[24, 40], false, false, tiles);
        check(&gpu, &mut rng, &[19, 23], &[41, 23], false, true, tiles);
    }
}

#[test]
fn matmul_accumulates_and_scales() {
    let gpu = gpu();
    let a = Tensor::from_slice(&gpu, &[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let b = Tensor::from_slice(&gpu, &[2, 4], &[1.0, 0.0, 2.0, 1.0, 0.0, 1.0, 1.0, -1.0]).unwrap();
    let out = Tensor::full(&gpu, &[2, 4], 10.0).unwrap();
    matmul::matmul_into(&a, &b, false, false, &out, 0.5, true, MatmulTiles::default()).unwrap();
    let s = MatmulShape::infer(&[2, 2], &[2, 4], false, false).unwrap();
    let want: Vec<f64> = reference::matmul(
        &[1.0, 2.0, 3.0, 4.0],
        &[1.0, 0.0, 2.0, 1.0, 0.0, 1.0, 1.0, -1.0],
        &s,
        false,
        false,
    )
    .into_iter()
    .map(|v| 10.0 + 0.5 * v)
    .collect();
    assert_close("accumulate", &out.to_vec().unwrap(), &want, 1e-6, 1e-6);
}

#[test]
fn matmul_rejects_mismatched_shapes() {
    let gpu = gpu();
    let a = Tensor::zeros(&gpu, &[3, 4]).unwrap();
    let b = Tensor::zeros(&gpu, &[5, 6]).unwrap();
    let err = matmul::matmul(&a, &b, false, false).unwrap_err().to_string();
    assert!(err.contains("inner sizes differ"), "{err}");
    let c = Tensor::zeros(&gpu, &[2, 4, 6]).unwrap();
    let d = Tensor::zeros(&gpu, &[3, 6, 2]).unwrap();
    assert!(matmul::matmul(&c, &d, false, false).is_err());
    assert!(matmul::matmul(&Tensor::zeros(&gpu, &[4]).unwrap(), &b, false, false).is_err());
}

// Gradients of f32 kernels against f64 finite differences: f32 rounding in the forward pass
// gives relative errors near 1e-6; 1e-4 leaves room for sums over a few hundred terms.
const GRAD_RTOL: f64 = 1e-4;
const GRAD_ATOL: f64 = 1e-5;

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
            let fwd = |a: &[f64], b: &[f64]| reference::matmul_f64(a, b, &s, ta, tb);
            let (a64, b64) = (to_f64(&a), to_f64(&b));
            let want_a = fd_gradient(|xs| fwd(xs, &b64), &a, &r, 1e-5);
            let want_b = fd_gradient(|xs| fwd(&a64, xs), &b, &r, 1e-5);
            let what = format!("matmul ta={ta} tb={tb} batched_b={batched_b}");
            assert_close(
                &format!("{what} dA"),
                &grads.get(&av).unwrap().to_vec().unwrap(),
                &want_a,
                GRAD_ATOL,
                GRAD_RTOL,
            );
            assert_close(
                &format!("{what} dB"),
                &grads.get(&bv).unwrap().to_vec().unwrap(),
                &want_b,
                GRAD_ATOL,
                GRAD_RTOL,
            );
        }
    }
}
