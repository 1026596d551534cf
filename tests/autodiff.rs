//! The tape itself: gradients of values used several times (including through rules that
//! hand back shared buffers), error messages that name the op, frozen weights, no-grad
//! scopes and buffer reuse. Each op family's own rules are checked in its `tests/<family>.rs`.

mod common;

use common::{assert_close, fd_gradient, gpu, Rng};
use fido::{Tape, Tensor};

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

// ------------------------------------------------------------------------------------------
// One value used several times. Rules hand back shared buffers (Add passes dy to both
// inputs, reshape returns a view), so these graphs catch a sum that writes into a buffer
// another gradient still holds.
// ------------------------------------------------------------------------------------------

fn vector(gpu: &fido::Gpu, values: &[f32]) -> Tensor {
    Tensor::from_slice(gpu, &[values.len()], values).unwrap()
}

#[test]
fn x_plus_x_has_gradient_two() {
    let gpu = gpu();
    let tape = Tape::new();
    let x = tape.param(vector(&gpu, &[1.0, -2.0, 3.0]));
    let loss = x.add(&x).unwrap().sum().unwrap();
    let grads = tape.backward(&loss).unwrap();
    assert_eq!(grads.get(&x).unwrap().to_vec().unwrap(), vec![2.0; 3]);
}

#[test]
fn p_plus_q_plus_two_p() {
    let gpu = gpu();
    let tape = Tape::new();
    let p = tape.param(vector(&gpu, &[0.5, 1.5]));
    let q = tape.param(vector(&gpu, &[-1.0, 2.0]));
    // L = Σ ((p + q) + 2p): dL/dp = 3, dL/dq = 1.
    let loss = p
        .add(&q)
        .unwrap()
        .add(&p.mul_scalar(2.0).unwrap())
        .unwrap()
        .sum()
        .unwrap();
    let grads = tape.backward(&loss).unwrap();
    assert_eq!(grads.get(&p).unwrap().to_vec().unwrap(), vec![3.0, 3.0]);
    assert_eq!(grads.get(&q).unwrap().to_vec().unwrap(), vec![1.0, 1.0]);
}

#[test]
fn a_shared_gradient_is_not_changed_by_a_later_sum() {
    let gpu = gpu();
    let tape = Tape::new();
    let x = tape.param(vector(&gpu, &[1.0, 2.0]));
    let w = tape.param(vector(&gpu, &[3.0, 4.0]));
    // (x + w) + x: the inner Add hands one buffer to x and w; x's second use must not be
    // summed into it. dL/dx = 2, dL/dw = 1.
    let loss = x.add(&w).unwrap().add(&x).unwrap().sum().unwrap();
    let grads = tape.backward(&loss).unwrap();
    assert_eq!(grads.get(&x).unwrap().to_vec().unwrap(), vec![2.0, 2.0]);
    assert_eq!(grads.get(&w).unwrap().to_vec().unwrap(), vec![1.0, 1.0]);
    assert!(
        !grads.get(&x).unwrap().aliases(grads.get(&w).unwrap()),
        "each leaf's gradient is its own buffer"
    );
}

#[test]
fn a_reshape_of_x_used_beside_x() {
    let gpu = gpu();
    let mut rng = Rng::new(71);
    let xv = rng.vec(6, -1.0, 1.0);
    let r = rng.vec(6, -1.0, 1.0);
    let tape = Tape::new();
    let x = tape.param(Tensor::from_slice(&gpu, &[2, 3], &xv).unwrap());
    let rt = tape.constant(Tensor::from_slice(&gpu, &[2, 3], &r).unwrap());
    // L = Σ r·(x·reshape(reshape(x, [3, 2]), [2, 3]) + x): dL/dx = r·(2x + 1).
    let back = x.reshape(&[3, 2]).unwrap().reshape(&[2, 3]).unwrap();
    let loss = x
        .mul(&back)
        .unwrap()
        .add(&x)
        .unwrap()
        .mul(&rt)
        .unwrap()
        .sum()
        .unwrap();
    let grads = tape.backward(&loss).unwrap();
    let want: Vec<f64> = xv
        .iter()
        .zip(&r)
        .map(|(&x, &r)| r as f64 * (2.0 * x as f64 + 1.0))
        .collect();
    assert_close(
        "reshape beside x",
        &grads.get(&x).unwrap().to_vec().unwrap(),
        &want,
        1e-6,
        1e-6,
    );
}

#[test]
fn s_plus_s_times_a_with_s_a_minus_b() {
    let gpu = gpu();
    let mut rng = Rng::new(72);
    let (av, bv) = (rng.vec(5, -1.0, 1.0), rng.vec(5, -1.0, 1.0));
    let tape = Tape::new();
    let a = tape.param(vector(&gpu, &av));
    let b = tape.param(vector(&gpu, &bv));
    // L = Σ (s + s)·a with s = a − b, i.e. 2(a − b)a: dL/da = 4a − 2b, dL/db = −2a.
    let s = a.sub(&b).unwrap();
    let loss = s.add(&s).unwrap().mul(&a).unwrap().sum().unwrap();
    let grads = tape.backward(&loss).unwrap();
    let da: Vec<f64> = av
        .iter()
        .zip(&bv)
        .map(|(&a, &b)| 4.0 * a as f64 - 2.0 * b as f64)
        .collect();
    let db: Vec<f64> = av.iter().map(|&a| -2.0 * a as f64).collect();
    assert_close("d/da", &grads.get(&a).unwrap().to_vec().unwrap(), &da, 1e-6, 1e-6);
    assert_close("d/db", &grads.get(&b).unwrap().to_vec().unwrap(), &db, 1e-6, 1e-6);
}

#[test]
fn a_value_with_four_consumers_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(73);
    let xv = rng.vec(7, 0.2, 1.5);
    let r = rng.vec(7, -1.0, 1.0);
    let tape = Tape::new();
    let x = tape.param(vector(&gpu, &xv));
    let rt = tape.constant(vector(&gpu, &r));
    // y = x + x·x + exp(x) + x/(x + 1): four ops read x, one of them twice.
    let y = x
        .add(&x.mul(&x).unwrap())
        .unwrap()
        .add(&x.exp().unwrap())
        .unwrap()
        .add(&x.div(&x.add_scalar(1.0).unwrap()).unwrap())
        .unwrap();
    let loss = y.mul(&rt).unwrap().sum().unwrap();
    let grads = tape.backward(&loss).unwrap();
    let f = |xs: &[f64]| -> Vec<f64> { xs.iter().map(|&x| x + x * x + x.exp() + x / (x + 1.0)).collect() };
    let want = fd_gradient(f, &xv, &r, 1e-5);
    assert_close(
        "four consumers",
        &grads.get(&x).unwrap().to_vec().unwrap(),
        &want,
        1e-5,
        1e-4,
    );
}

#[test]
fn a_broadcast_operand_used_twice_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(74);
    let (xv, bv) = (rng.vec(12, -1.0, 1.0), rng.vec(4, -1.0, 1.0));
    let r = rng.vec(12, -1.0, 1.0);
    let tape = Tape::new();
    let x = tape.param(Tensor::from_slice(&gpu, &[3, 4], &xv).unwrap());
    let b = tape.param(Tensor::from_slice(&gpu, &[4], &bv).unwrap());
    let rt = tape.constant(Tensor::from_slice(&gpu, &[3, 4], &r).unwrap());
    // y = (x + b)·b, b broadcast over the rows in both uses.
    let y = x.add(&b).unwrap().mul(&b).unwrap();
    let loss = y.mul(&rt).unwrap().sum().unwrap();
    let grads = tape.backward(&loss).unwrap();
    let f = |bs: &[f64]| -> Vec<f64> { (0..12).map(|i| (xv[i] as f64 + bs[i % 4]) * bs[i % 4]).collect() };
    let want = fd_gradient(f, &bv, &r, 1e-5);
    assert_close(
        "broadcast twice",
        &grads.get(&b).unwrap().to_vec().unwrap(),
        &want,
        1e-5,
        1e-4,
    );
    let dx: Vec<f64> = (0..12).map(|i| r[i] as f64 * bv[i % 4] as f64).collect();
    assert_close("dx", &grads.get(&x).unwrap().to_vec().unwrap(), &dx, 1e-6, 1e-6);
}

#[test]
fn a_failing_rule_is_named_in_the_error() {
    let gpu = gpu();
    let tape = Tape::new();
    let x = tape.param(vector(&gpu, &[1.0, 2.0]));
    let y = x.record_unary("custom_op", x.value().clone(), |_| {
        Err(fido::Error::InvalidArgument("no rule here".into()))
    });
    let err = tape.backward(&y.sum().unwrap()).unwrap_err().to_string();
    assert!(
        err.contains("backward of `custom_op`") && err.contains("no rule here"),
        "{err}"
    );

    let tape = Tape::new();
    let x = tape.param(vector(&gpu, &[1.0, 2.0]));
    let wrong = Tensor::zeros(&gpu, &[3]).unwrap();
    let y = x.record_unary("misshapen", x.value().clone(), move |_| Ok(wrong));
    let err = tape.backward(&y.sum().unwrap()).unwrap_err().to_string();
    assert!(
        err.contains("backward of `misshapen`") && err.contains("[3]"),
        "{err}"
    );
}

#[test]
fn a_second_backward_on_a_consumed_tape_is_an_error_not_a_panic() {
    let gpu = common::gpu();
    let tape = fido::Tape::new();
    let x = tape.param(fido::Tensor::from_slice(&gpu, &[2], &[1.0, 2.0]).unwrap());
    let y = x.mul(&x).unwrap().sum().unwrap();
    tape.backward(&y).unwrap();
    let err = tape.backward(&y).err().expect("the record is gone").to_string();
    assert!(err.contains("consumed by an earlier backward pass"), "{err}");
}
