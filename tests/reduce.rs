//! Reductions: sums, means and maxima over an axis or everything, against the f64
//! reference; their rules on the tape against finite differences.

mod common;

use common::{assert_close, fd_gradient, for_each_profile, gpu, Rng};
use fido::gpu::KernelProfile;
use fido::ops::reduce::{self, reference as rref, LaneCombine, Reduction};
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
fn axis_reductions_match_reference() {
    for_each_variant(|gpu| {
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
            let t = Tensor::from_slice(gpu, shape, &x).unwrap();
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
    });
}

#[test]
fn full_reductions_are_accurate_on_large_inputs() {
    for_each_variant(|gpu| {
        let mut rng = Rng::new(21);
        // Several passes of the chunked reduction, and a length that is no multiple of anything.
        for &n in &[1usize, 5, 8191, 8193, 3_000_017] {
            // Positive values make naive f32 accumulation drift; the result must not.
            let x = rng.vec(n, 0.0, 1.0);
            let t = Tensor::from_slice(gpu, &[n], &x).unwrap();
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
    });
}

#[test]
fn max_handles_all_negative_values() {
    for_each_variant(|gpu| {
        let t = Tensor::from_slice(gpu, &[2, 3], &[-5.0, -7.0, -6.0, -1e30, -2e30, -3e30]).unwrap();
        let y = reduce::reduce_axis(&t, 1, Reduction::Max, true).unwrap();
        assert_eq!(y.shape(), &[2, 1]);
        assert_eq!(y.to_vec().unwrap(), vec![-5.0, -1e30]);
    });
}

#[test]
fn reductions_reject_bad_axes() {
    for_each_variant(|gpu| {
        let t = Tensor::zeros(gpu, &[2, 3]).unwrap();
        assert!(reduce::reduce_axis(&t, 2, Reduction::Sum, false).is_err());
        let empty = Tensor::zeros(gpu, &[2, 0]).unwrap();
        assert!(reduce::sum(&empty).is_err());
    });
}

#[test]
fn reduction_rules_match_finite_differences() {
    for_each_variant(|gpu| {
        let mut rng = Rng::new(33);
        let shape = [3usize, 4, 5];
        let x = rng.vec(60, -2.0, 2.0);
        let xt = Tensor::from_slice(gpu, &shape, &x).unwrap();
        for axis in 0..3 {
            for op in [Reduction::Sum, Reduction::Mean] {
                let tape = Tape::new();
                let xv = tape.param(xt.clone());
                let y = xv.reduce_axis(axis, op, false).unwrap();
                let r = rng.vec(y.value().numel(), -1.0, 1.0);
                let grads = tape
                    .backward_from(&y, Tensor::from_slice(gpu, y.shape(), &r).unwrap())
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
                    GRAD_ATOL,
                    GRAD_RTOL,
                );
            }
        }
        // The mean of everything.
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
    });
}

#[test]
fn row_reductions_handle_odd_lengths_and_row_counts() {
    for_each_variant(|gpu| {
        let mut rng = Rng::new(22);
        // Rows shorter than a subgroup, than the workgroup, and several workgroup strides
        // long; row counts past one dimension of the grid (70,000 > 65,535) fold into two.
        let shapes: &[[usize; 2]] = &[[1, 1], [3, 7], [33, 257], [5, 1000], [7, 4099], [70_000, 3]];
        for &shape in shapes {
            let x = rng.vec(shape.iter().product(), -2.0, 2.0);
            let t = Tensor::from_slice(gpu, &shape, &x).unwrap();
            for op in [Reduction::Sum, Reduction::Mean, Reduction::Max] {
                let y = reduce::reduce_axis(&t, 1, op, false).unwrap();
                let want = rref::reduce_axis(&x, &shape, 1, op);
                // Compensated sums of ≤ 4099 values of magnitude ≤ 2 stay within a few ulp
                // of sums below ~100, so 1e-5 absolute and relative.
                assert_close(
                    &format!("{op:?} rows of {shape:?}"),
                    &y.to_vec().unwrap(),
                    &want,
                    1e-5,
                    1e-5,
                );
            }
        }
    });
}

#[test]
fn the_gpu_profile_combines_lanes_by_subgroups_exactly_where_the_adapter_has_them() {
    let gpu = gpu();
    let has = gpu.features().contains(wgpu::Features::SUBGROUP);
    eprintln!("adapter reports SUBGROUP: {has}");
    let want = if has {
        LaneCombine::Subgroups
    } else {
        LaneCombine::WorkgroupTree
    };
    assert_eq!(LaneCombine::for_gpu(&gpu).unwrap(), want);
    assert_eq!(
        LaneCombine::available(&gpu).contains(&LaneCombine::Subgroups),
        has
    );
    if !has {
        gpu.set_tuning(Some(LaneCombine::Subgroups));
        gpu.set_kernel_profile(KernelProfile::Gpu);
        let t = Tensor::zeros(&gpu, &[4]).unwrap();
        let err = reduce::sum(&t).unwrap_err().to_string();
        assert!(err.contains("SUBGROUP"), "{err}");
    }
}

/// The maximum over `axis` in f64, for finite differences.
fn max_axis_f64(xs: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let (outer, len, inner) = (
        shape[..axis].iter().product::<usize>(),
        shape[axis],
        shape[axis + 1..].iter().product::<usize>(),
    );
    let mut out = vec![];
    for o in 0..outer {
        for i in 0..inner {
            out.push(
                (0..len)
                    .map(|l| xs[(o * len + l) * inner + i])
                    .fold(f64::NEG_INFINITY, f64::max),
            );
        }
    }
    out
}

#[test]
fn max_rule_matches_finite_differences_without_ties() {
    for_each_variant(|gpu| {
        let mut rng = Rng::new(34);
        let shape = [3usize, 5, 7];
        // Distinct values on a grid 0.01 apart, shuffled: the step of 1e-5 never changes which
        // element is the maximum, so the difference quotient is exactly 0 or the weight.
        let mut x: Vec<f32> = (0..105).map(|i| (i as f32 - 52.0) * 0.01).collect();
        for i in (1..x.len()).rev() {
            x.swap(i, rng.below(i + 1));
        }
        let xt = Tensor::from_slice(gpu, &shape, &x).unwrap();
        for axis in 0..3 {
            for keep_dim in [false, true] {
                let tape = Tape::new();
                let xv = tape.param(xt.clone());
                let y = xv.reduce_max_axis(axis, keep_dim).unwrap();
                let mut want_shape = shape.to_vec();
                if keep_dim {
                    want_shape[axis] = 1;
                } else {
                    want_shape.remove(axis);
                }
                assert_eq!(y.shape(), &want_shape[..]);
                assert_close(
                    "max forward",
                    &y.value().to_vec().unwrap(),
                    &rref::reduce_axis(&x, &shape, axis, Reduction::Max),
                    0.0,
                    0.0,
                );
                let r = rng.vec(y.value().numel(), -1.0, 1.0);
                let grads = tape
                    .backward_from(&y, Tensor::from_slice(gpu, y.shape(), &r).unwrap())
                    .unwrap();
                let want = fd_gradient(|xs| max_axis_f64(xs, &shape, axis), &x, &r, 1e-5);
                assert_close(
                    &format!("max axis {axis} keep_dim {keep_dim}"),
                    &grads.get(&xv).unwrap().to_vec().unwrap(),
                    &want,
                    GRAD_ATOL,
                    GRAD_RTOL,
                );
            }
        }
    });
}

#[test]
fn max_rule_shares_the_gradient_among_ties() {
    for_each_variant(|gpu| {
        let mut rng = Rng::new(35);
        // Values drawn from five levels, so most rows of length 7 tie at their maximum; one
        // row is all equal and one holds infinities.
        let shape = [4usize, 7, 3];
        let mut x: Vec<f32> = (0..84).map(|_| rng.below(5) as f32 - 2.0).collect();
        for l in 0..7 {
            x[l * 3] = 1.5; // row (0, ·, 0): seven ties
        }
        x[(7 + 2) * 3 + 1] = f32::INFINITY; // row (1, ·, 1): one infinite maximum
        x[(7 + 5) * 3 + 1] = f32::INFINITY; // ... and a second tying it
        x[(14 + 3) * 3 + 2] = f32::NEG_INFINITY;
        let axis = 1;
        let tape = Tape::new();
        let xv = tape.param(Tensor::from_slice(gpu, &shape, &x).unwrap());
        let y = xv.reduce_max_axis(axis, false).unwrap();
        let r = rng.vec(12, -1.0, 1.0);
        let grads = tape
            .backward_from(&y, Tensor::from_slice(gpu, &[4, 3], &r).unwrap())
            .unwrap();
        // By hand from the reference maxima: each element equal to its row's maximum gets
        // the row's weight divided by the number of such elements, every other element 0.
        let max = rref::reduce_axis(&x, &shape, axis, Reduction::Max);
        let mut want = vec![0.0f64; 84];
        for o in 0..4 {
            for i in 0..3 {
                let at = |l: usize| (o * 7 + l) * 3 + i;
                let ties: Vec<usize> = (0..7).filter(|&l| x[at(l)] as f64 == max[o * 3 + i]).collect();
                for &l in &ties {
                    want[at(l)] = r[o * 3 + i] as f64 / ties.len() as f64;
                }
            }
        }
        // Division by a small integer count: within one rounding.
        assert_close(
            "max ties",
            &grads.get(&xv).unwrap().to_vec().unwrap(),
            &want,
            0.0,
            1e-7,
        );
        let t = Tensor::zeros(gpu, &[2, 3]).unwrap();
        let tape = Tape::new();
        assert!(tape.param(t).reduce_max_axis(2, true).is_err());
    });
}
