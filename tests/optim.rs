mod common;

use common::{assert_close, gpu, to_f64, Rng};
use fido::ops::optim::{self, reference, Adam, AdamConfig};
use fido::{Error, Tensor};

#[test]
fn adam_matches_reference_over_steps_with_changing_lr() {
    let gpu = gpu();
    let mut rng = Rng::new(1);
    for &n in &[1usize, 7, 257, 3136] {
        let c = AdamConfig::default();
        let start = rng.vec(n, -2.0, 2.0);
        let param = Tensor::from_slice(&gpu, &[n], &start).unwrap();
        let mut adam = Adam::new(&param, c).unwrap();
        let (mut p, mut m, mut v) = (to_f64(&start), vec![0.0; n], vec![0.0; n]);
        let steps = 12u32;
        for step in 1..=steps {
            // FIDO's linearly decaying schedule; gradients of mixed scale, some tiny.
            let lr = 0.05 * (1.0 - (step - 1) as f32 / steps as f32);
            let scale = if step % 3 == 0 { 1e-4 } else { 3.0 };
            let g = rng.vec(n, -scale, scale);
            let grad = Tensor::from_slice(&gpu, &[n], &g).unwrap();
            adam.step(&param, &grad, lr).unwrap();
            reference::adam_step(
                &mut p,
                &to_f64(&g),
                &mut m,
                &mut v,
                step,
                lr as f64,
                c.beta1 as f64,
                c.beta2 as f64,
                c.eps as f64,
            );
        }
        assert_eq!(adam.steps(), steps);
        // Each step moves a parameter by at most about lr; f32 rounding of m, v and the
        // update gives a relative error of a few 1e-7 per step on values of order 1.
        assert_close(&format!("param n={n}"), &param.to_vec().unwrap(), &p, 1e-5, 1e-5);
        assert_close("m", &adam.first_moment().to_vec().unwrap(), &m, 1e-6, 1e-5);
        assert_close("v", &adam.second_moment().to_vec().unwrap(), &v, 1e-9, 1e-5);
    }
}

#[test]
fn adam_step_function_with_custom_betas() {
    let gpu = gpu();
    let mut rng = Rng::new(2);
    let shape = [3, 5, 7];
    let n = 105;
    let start = rng.vec(n, -1.0, 1.0);
    let param = Tensor::from_slice(&gpu, &shape, &start).unwrap();
    let m = Tensor::zeros(&gpu, &shape).unwrap();
    let v = Tensor::zeros(&gpu, &shape).unwrap();
    let (mut pr, mut mr, mut vr) = (to_f64(&start), vec![0.0; n], vec![0.0; n]);
    let (b1, b2, eps) = (0.5f32, 0.9f32, 1e-3f32);
    for step in 1..=5u32 {
        let g = rng.vec(n, -1.0, 1.0);
        let grad = Tensor::from_slice(&gpu, &shape, &g).unwrap();
        let lr = 0.1 / step as f32;
        optim::adam_step(&param, &grad, &m, &v, step, lr, b1, b2, eps).unwrap();
        reference::adam_step(
            &mut pr,
            &to_f64(&g),
            &mut mr,
            &mut vr,
            step,
            lr as f64,
            b1 as f64,
            b2 as f64,
            eps as f64,
        );
    }
    assert_close("param", &param.to_vec().unwrap(), &pr, 1e-6, 1e-5);
}

#[test]
fn clamp_in_place_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(3);
    for &n in &[1usize, 5, 1023] {
        let x = rng.vec(n, -3.0, 3.0);
        let t = Tensor::from_slice(&gpu, &[n], &x).unwrap();
        optim::clamp_in_place(&t, 0.0, 1.0).unwrap();
        // Clamping is exact.
        assert_close(
            "clamp",
            &t.to_vec().unwrap(),
            &reference::clamp(&x, 0.0, 1.0),
            0.0,
            0.0,
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    let gpu = gpu();
    let p = Tensor::zeros(&gpu, &[4]).unwrap();
    let g = Tensor::zeros(&gpu, &[4]).unwrap();
    let m = Tensor::zeros(&gpu, &[4]).unwrap();
    let v = Tensor::zeros(&gpu, &[4]).unwrap();
    let short = Tensor::zeros(&gpu, &[3]).unwrap();
    assert!(matches!(
        optim::adam_step(&p, &short, &m, &v, 1, 0.1, 0.9, 0.999, 1e-8),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        optim::adam_step(&p, &g, &m, &v, 0, 0.1, 0.9, 0.999, 1e-8),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        optim::adam_step(&p, &g, &m, &v, 1, 0.1, 1.0, 0.999, 1e-8),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        optim::adam_step(&p, &g, &m, &m, 1, 0.1, 0.9, 0.999, 1e-8),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        optim::clamp_in_place(&p, 1.0, 0.0),
        Err(Error::InvalidArgument(_))
    ));
    let mut adam = Adam::new(&p, AdamConfig::default()).unwrap();
    assert!(matches!(adam.step(&short, &short, 0.1), Err(Error::Shape { .. })));
    assert_eq!(adam.steps(), 0);
}
