//! Matmul: every entry point and tile shape against the f64 reference, under both kernel
//! profiles; the rule on the tape against finite differences; bad shapes and tiles are errors.

mod common;

use fido::Tape;

use common::{assert_close, fd_gradient, for_each_profile, gpu, to_f64, Rng};
use fido::ops::matmul::{self, reference, MatmulShape, MatmulTiles, RegisterTiles, SharedTiles};
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
    for_each_profile(|gpu| {
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
                check(
                    gpu,
                    &mut rng,
                    &a_shape,
                    &b_shape,
                    ta,
                    tb,
                    MatmulTiles::for_gpu(gpu),
                );
            }
        }
    });
}

#[test]
fn matmul_batches_and_broadcasts_the_batch_axis() {
    for_each_profile(|gpu| {
        let mut rng = Rng::new(11);
        let tiles = MatmulTiles::for_gpu(gpu);
        check(gpu, &mut rng, &[3, 5, 8], &[3, 8, 12], false, false, tiles);
        check(gpu, &mut rng, &[3, 5, 7], &[1, 7, 6], false, false, tiles);
        check(gpu, &mut rng, &[5, 7], &[4, 7, 6], false, false, tiles);
        check(gpu, &mut rng, &[2, 7, 5], &[2, 6, 7], true, true, tiles);
    });
}

// Explicit tiles name their kernel, so this does not depend on the profile.
#[test]
fn matmul_is_correct_for_other_register_tile_sizes() {
    let gpu = gpu();
    let mut rng = Rng::new(12);
    for tiles in [
        RegisterTiles { rows: 1, width: 32 },
        RegisterTiles { rows: 3, width: 16 },
        RegisterTiles { rows: 8, width: 128 },
    ] {
        let tiles = MatmulTiles::Register(tiles);
        check(&gpu, &mut rng, &[19, 24], &[24, 40], false, false, tiles);
        check(&gpu, &mut rng, &[19, 23], &[41, 23], false, true, tiles);
    }
}

/// Runs `op(a)·op(b)` with `tiles` into an output that starts as `c0`, as
/// `out = c0·[accumulate] + alpha·op(a)·op(b)`, and checks it against the f64 reference
/// within the worst-case bound of f32 recursive summation: each of the k products and
/// partial sums rounds once, so |error| ≤ k·eps·Σ|a||b| (Higham, Accuracy and Stability of
/// Numerical Algorithms, §3.1; f32::EPSILON is twice the unit roundoff, a margin of 2), plus
/// one rounding each of alpha·sum and of the added c0.
#[allow(clippy::too_many_arguments)]
fn check_tiled(
    gpu: &fido::Gpu,
    rng: &mut Rng,
    a_shape: &[usize],
    b_shape: &[usize],
    ta: bool,
    tb: bool,
    alpha: f32,
    accumulate: bool,
    tiles: SharedTiles,
) {
    let a = rng.vec(a_shape.iter().product(), -1.0, 1.0);
    let b = rng.vec(b_shape.iter().product(), -1.0, 1.0);
    let s = MatmulShape::infer(a_shape, b_shape, ta, tb).unwrap();
    let c0 = rng.vec(s.batch * s.m * s.n, -1.0, 1.0);
    let out = Tensor::from_slice(gpu, &[s.batch, s.m, s.n], &c0).unwrap();
    matmul::matmul_into(
        &Tensor::from_slice(gpu, a_shape, &a).unwrap(),
        &Tensor::from_slice(gpu, b_shape, &b).unwrap(),
        ta,
        tb,
        &out,
        alpha,
        accumulate,
        MatmulTiles::Shared(tiles),
    )
    .unwrap();
    let got = out.to_vec().unwrap();
    let product = reference::matmul(&a, &b, &s, ta, tb);
    let abs = |v: &[f32]| -> Vec<f32> { v.iter().map(|x| x.abs()).collect() };
    let magnitude = reference::matmul(&abs(&a), &abs(&b), &s, ta, tb);
    let eps = f32::EPSILON as f64;
    let alpha = alpha as f64;
    let what =
        format!("tiled {a_shape:?}·{b_shape:?} ta={ta} tb={tb} alpha={alpha} acc={accumulate} {tiles:?}");
    for i in 0..got.len() {
        let c_in = if accumulate { c0[i] as f64 } else { 0.0 };
        let want = c_in + alpha * product[i];
        let bound =
            alpha.abs() * (s.k as f64 + 1.0) * eps * magnitude[i] + eps * (c_in.abs() + want.abs()) + 1e-30;
        let err = (got[i] as f64 - want).abs();
        assert!(
            err <= bound,
            "{what}: element {i}: gpu {} vs ref {want}, error {err:e} over the bound {bound:e}",
            got[i]
        );
    }
}

const TILE_SETS: [SharedTiles; 5] = [
    SharedTiles::DEFAULT,
    SharedTiles {
        tile_m: 128,
        tile_n: 64,
        tile_k: 8,
        thread_m: 8,
        thread_n: 4,
    },
    SharedTiles {
        tile_m: 32,
        tile_n: 32,
        tile_k: 8,
        thread_m: 4,
        thread_n: 4,
    },
    SharedTiles {
        tile_m: 64,
        tile_n: 64,
        tile_k: 8,
        thread_m: 8,
        thread_n: 8,
    },
    SharedTiles {
        tile_m: 16,
        tile_n: 32,
        tile_k: 4,
        thread_m: 4,
        thread_n: 8,
    },
];

#[test]
fn tiled_matmul_matches_reference_for_every_tile_set_transpose_and_odd_size() {
    let gpu = gpu();
    let mut rng = Rng::new(13);
    // Shapes that exercise each load path: odd everything (scalar loads, ragged tiles),
    // k or n alone not a multiple of 4, everything a multiple of 4 (vec4 loads and stores),
    // and several tiles in every direction.
    let dims: &[(usize, usize, usize)] = &[
        (67, 45, 33),
        (1, 1, 1),
        (9, 12, 10),
        (12, 10, 8),
        (64, 64, 64),
        (130, 70, 20),
    ];
    for tiles in TILE_SETS {
        for &(m, n, k) in dims {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a_shape = if ta { [k, m] } else { [m, k] };
                let b_shape = if tb { [n, k] } else { [k, n] };
                check_tiled(&gpu, &mut rng, &a_shape, &b_shape, ta, tb, 1.0, false, tiles);
            }
        }
    }
}

#[test]
fn tiled_matmul_broadcasts_batches_and_accumulates_with_alpha() {
    let gpu = gpu();
    let mut rng = Rng::new(14);
    for tiles in [TILE_SETS[0], TILE_SETS[3]] {
        // A broadcast over B's batch, then B over A's, in both layouts.
        check_tiled(
            &gpu,
            &mut rng,
            &[1, 23, 17],
            &[3, 17, 29],
            false,
            false,
            1.0,
            false,
            tiles,
        );
        check_tiled(
            &gpu,
            &mut rng,
            &[3, 24, 16],
            &[16, 28],
            false,
            false,
            1.0,
            false,
            tiles,
        );
        check_tiled(
            &gpu,
            &mut rng,
            &[17, 23],
            &[3, 29, 17],
            true,
            true,
            1.0,
            false,
            tiles,
        );
        check_tiled(
            &gpu,
            &mut rng,
            &[2, 17, 23],
            &[1, 29, 17],
            true,
            true,
            1.0,
            false,
            tiles,
        );
        check_tiled(
            &gpu,
            &mut rng,
            &[2, 70, 36],
            &[2, 36, 66],
            false,
            false,
            -0.75,
            true,
            tiles,
        );
        check_tiled(
            &gpu,
            &mut rng,
            &[2, 33, 70],
            &[2, 66, 33],
            true,
            true,
            2.5,
            true,
            tiles,
        );
    }
}

#[test]
fn tiles_over_the_adapter_limits_are_clear_errors() {
    let gpu = gpu();
    let limits = gpu.limits().clone();
    let a = Tensor::zeros(&gpu, &[8, 8]).unwrap();
    let out = Tensor::zeros(&gpu, &[8, 8]).unwrap();
    let run = |tiles: SharedTiles| {
        matmul::matmul_into(&a, &a, false, false, &out, 1.0, false, MatmulTiles::Shared(tiles))
            .unwrap_err()
            .to_string()
    };
    // Workgroup storage: deep enough steps of a 128×128 tile exceed any adapter's limit.
    let mut deep = SharedTiles {
        tile_m: 128,
        tile_n: 128,
        tile_k: 4,
        thread_m: 8,
        thread_n: 8,
    };
    while deep.workgroup_bytes() <= u64::from(limits.max_compute_workgroup_storage_size) {
        deep.tile_k *= 2;
    }
    let err = run(deep);
    assert!(
        err.contains("workgroup storage") && err.contains("lower tile_k"),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");
    // Invocations: a wide tile of small thread tiles.
    let mut wide = SharedTiles {
        tile_m: 64,
        tile_n: 64,
        tile_k: 4,
        thread_m: 4,
        thread_n: 4,
    };
    while wide.invocations() <= limits.max_compute_invocations_per_workgroup {
        wide.tile_m *= 2;
    }
    let err = run(wide);
    assert!(
        err.contains("invocations") && err.contains("lower tile_m or tile_n"),
        "{err}"
    );
    // Too many loads per invocation for the kernel's staging registers (16 KiB of storage,
    // so no adapter stops it earlier).
    let err = run(SharedTiles {
        tile_m: 32,
        tile_n: 32,
        tile_k: 32,
        thread_m: 8,
        thread_n: 8,
    });
    assert!(err.contains("stage") && err.contains("lower tile_k"), "{err}");
    // Shapes the kernel does not have.
    let err = run(SharedTiles {
        thread_m: 6,
        ..SharedTiles::DEFAULT
    });
    assert!(err.contains("thread_m must be 4 or 8"), "{err}");
    let err = run(SharedTiles {
        tile_k: 6,
        ..SharedTiles::DEFAULT
    });
    assert!(err.contains("tile_k must be a positive multiple of 4"), "{err}");
}

#[test]
fn default_tiles_fit_the_adapter_and_follow_the_profile() {
    for_each_profile(|gpu| match MatmulTiles::for_gpu(gpu) {
        MatmulTiles::Register(t) => {
            assert_eq!(gpu.kernel_profile(), fido::gpu::KernelProfile::Cpu);
            assert_eq!(t, RegisterTiles::default());
        }
        MatmulTiles::Shared(t) => {
            assert_eq!(gpu.kernel_profile(), fido::gpu::KernelProfile::Gpu);
            t.check(gpu.limits()).unwrap();
        }
    });
    let gpu = gpu();
    gpu.set_kernel_profile(fido::gpu::KernelProfile::Gpu);
    let tuned = TILE_SETS[1];
    gpu.set_tuning(Some(tuned));
    assert_eq!(MatmulTiles::for_gpu(&gpu), MatmulTiles::Shared(tuned));
}

#[test]
fn matmul_accumulates_and_scales() {
    for_each_profile(|gpu| {
        let a = Tensor::from_slice(gpu, &[2, 2], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        let b = Tensor::from_slice(gpu, &[2, 4], &[1.0, 0.0, 2.0, 1.0, 0.0, 1.0, 1.0, -1.0]).unwrap();
        let out = Tensor::full(gpu, &[2, 4], 10.0).unwrap();
        matmul::matmul_into(&a, &b, false, false, &out, 0.5, true, MatmulTiles::for_gpu(gpu)).unwrap();
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
    });
}

#[test]
fn matmul_rejects_mismatched_shapes() {
    for_each_profile(|gpu| {
        let a = Tensor::zeros(gpu, &[3, 4]).unwrap();
        let b = Tensor::zeros(gpu, &[5, 6]).unwrap();
        let err = matmul::matmul(&a, &b, false, false).unwrap_err().to_string();
        assert!(err.contains("inner sizes differ"), "{err}");
        let c = Tensor::zeros(gpu, &[2, 4, 6]).unwrap();
        let d = Tensor::zeros(gpu, &[3, 6, 2]).unwrap();
        assert!(matmul::matmul(&c, &d, false, false).is_err());
        assert!(matmul::matmul(&Tensor::zeros(gpu, &[4]).unwrap(), &b, false, false).is_err());
    });
}

// Gradients of f32 kernels against f64 finite differences: f32 rounding in the forward pass
// gives relative errors near 1e-6; 1e-4 leaves room for sums over a few hundred terms.
const GRAD_RTOL: f64 = 1e-4;
const GRAD_ATOL: f64 = 1e-5;

#[test]
fn matmul_rule_matches_finite_differences_for_every_transpose_and_broadcast() {
    for_each_profile(|gpu| {
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
                let av = tape.param(Tensor::from_slice(gpu, &a_shape, &a).unwrap());
                let bv = tape.param(Tensor::from_slice(gpu, &b_shape, &b).unwrap());
                let y = av.matmul(&bv, ta, tb).unwrap();
                let r = rng.vec(y.value().numel(), -1.0, 1.0);
                let grads = tape
                    .backward_from(&y, Tensor::from_slice(gpu, y.shape(), &r).unwrap())
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
    });
}
