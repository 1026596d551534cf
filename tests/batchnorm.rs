//! Inference batch norm: the kernel against its f64 reference, its gradient on the tape
//! against finite differences, and the fold into a preceding convolution.

mod common;

use common::{assert_close, fd_gradient, gpu, rand_tensor, to_f64, Rng};
use fido::models::fold_batch_norm;
use fido::ops::batchnorm::{self, reference};
use fido::ops::conv::{self, Conv2dOptions, Padding};
use fido::{Tape, Tensor};

fn bn_params(rng: &mut Rng, c: usize) -> [Vec<f32>; 4] {
    [
        rng.vec(c, 0.5, 1.5),
        rng.vec(c, -0.5, 0.5),
        rng.vec(c, -0.3, 0.3),
        rng.vec(c, 0.2, 2.0),
    ]
}

fn reference_batch_norm(x: &[f64], shape: &[usize], [g, b, m, v]: [&[f32]; 4], eps: f64) -> Vec<f64> {
    reference::batch_norm(x, shape, &to_f64(g), &to_f64(b), &to_f64(m), &to_f64(v), eps)
}

#[test]
fn batch_norm_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(32);
    for shape in [[2usize, 5, 7, 3], [1, 3, 1, 1], [3, 16, 9, 9]] {
        let c = shape[1];
        let (x, xv) = rand_tensor(&gpu, &mut rng, &shape);
        let [g, b, m, v] = bn_params(&mut rng, c);
        let t = |d: &[f32]| Tensor::from_slice(&gpu, &[c], d).unwrap();
        let y = batchnorm::batch_norm(&x, &t(&g), &t(&b), &t(&m), &t(&v), 1e-5).unwrap();
        let want = reference_batch_norm(&to_f64(&xv), &shape, [&g, &b, &m, &v], 1e-5);
        // One division and a square root: a few ulp.
        assert_close(
            &format!("batch_norm {shape:?}"),
            &y.to_vec().unwrap(),
            &want,
            1e-6,
            1e-5,
        );
    }
}

#[test]
fn batch_norm_rule_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(34);
    let shape = [2usize, 3, 5, 3];
    let (x, xv) = rand_tensor(&gpu, &mut rng, &shape);
    let [g, b, m, v] = bn_params(&mut rng, 3);
    let t = |d: &[f32]| Tensor::from_slice(&gpu, &[3], d).unwrap();
    let r = rng.vec(x.numel(), -1.0, 1.0);
    let tape = Tape::new();
    let xp = tape.param(x);
    let y = xp.batch_norm(&t(&g), &t(&b), &t(&m), &t(&v), 1e-5).unwrap();
    let rv = tape.constant(Tensor::from_slice(&gpu, &shape, &r).unwrap());
    let loss = y.mul(&rv).unwrap().sum().unwrap();
    let grads = tape.backward(&loss).unwrap();
    let reference_of = |xs: &[f64]| reference_batch_norm(xs, &shape, [&g, &b, &m, &v], 1e-5);
    let want = fd_gradient(reference_of, &xv, &r, 1e-4);
    // Linear in x: the difference quotient is exact up to f64 rounding; f32 scale ~1e-7.
    assert_close(
        "batch_norm dx",
        &grads.get(&xp).unwrap().to_vec().unwrap(),
        &want,
        1e-5,
        1e-5,
    );
}

#[test]
fn folded_batch_norm_equals_conv_then_batch_norm() {
    let gpu = gpu();
    let mut rng = Rng::new(33);
    for (with_bias, groups) in [(true, 1usize), (false, 1), (true, 4)] {
        let (xs, ws) = ([2usize, 4, 9, 8], [8usize, 4 / groups, 3, 3]);
        let opts = Conv2dOptions::new()
            .padding(Padding::symmetric(1, 1))
            .groups(groups);
        let (x, _) = rand_tensor(&gpu, &mut rng, &xs);
        let (w, wv) = rand_tensor(&gpu, &mut rng, &ws);
        let (b, bv) = rand_tensor(&gpu, &mut rng, &[8]);
        let [g, be, m, v] = bn_params(&mut rng, 8);
        let t = |d: &[f32]| Tensor::from_slice(&gpu, &[d.len()], d).unwrap();
        let conv_out = conv::conv2d(&x, &w, with_bias.then_some(&b), &opts).unwrap();
        let bn = batchnorm::batch_norm(&conv_out, &t(&g), &t(&be), &t(&m), &t(&v), 1e-3)
            .unwrap()
            .to_vec()
            .unwrap();
        let (fw, fb) = fold_batch_norm(&wv, with_bias.then_some(&bv[..]), 8, &g, &be, &m, &v, 1e-3).unwrap();
        let folded = conv::conv2d(
            &x,
            &Tensor::from_slice(&gpu, &ws, &fw).unwrap(),
            Some(&t(&fb)),
            &opts,
        )
        .unwrap()
        .to_vec()
        .unwrap();
        // Both are f32 computations of the same value in a different order (scale applied
        // before or after the sum); outputs reach ~10, so 1e-4 absolute.
        let bn64 = to_f64(&bn);
        assert_close("folded vs conv+bn", &folded, &bn64, 1e-4, 1e-4);
    }
    assert!(fold_batch_norm(&[1.0; 10], None, 3, &[1.0; 3], &[0.0; 3], &[0.0; 3], &[1.0; 3], 1e-5).is_err());
    assert!(fold_batch_norm(&[1.0; 9], None, 3, &[1.0; 2], &[0.0; 3], &[0.0; 3], &[1.0; 3], 1e-5).is_err());
}

#[test]
fn batch_norm_rejects_parameters_of_the_wrong_length() {
    let gpu = gpu();
    let z = |s: &[usize]| Tensor::zeros(&gpu, s).unwrap();
    let c3 = z(&[3]);
    let err = batchnorm::batch_norm(&z(&[1, 4, 2, 2]), &c3, &c3, &c3, &c3, 1e-5).unwrap_err();
    assert!(err.to_string().contains("expected [4]"), "{err}");
    assert!(batchnorm::batch_norm(&z(&[4]), &c3, &c3, &c3, &c3, 1e-5).is_err());
}
