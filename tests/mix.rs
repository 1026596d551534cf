//! The FIDO mix and its gradient with respect to the keep mask, against the f64 reference
//! and central finite differences, on odd shapes, with a shared image and a batched one.

mod common;

use common::{assert_close, fd_scalar, gpu, rand_tensor, to_f64, Rng};
use fido::ops::mix::{self, reference};
use fido::{Tape, Tensor};

#[test]
fn mix_matches_reference_and_its_gradient_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(31);
    // (output shape, image batch, background batch, background per channel only)
    for (shape, image_batch, bg_batch, per_channel) in [
        ([3, 3, 5, 7], 1, 3, false),
        ([2, 1, 3, 9], 2, 2, false),
        ([1, 4, 1, 1], 1, 1, false),
        ([4, 2, 6, 5], 4, 1, false),
        ([3, 3, 5, 7], 1, 1, true),
        ([2, 3, 4, 3], 2, 2, true),
    ] {
        let [b, c, h, w] = shape;
        let bg_shape = if per_channel {
            [bg_batch, c, 1, 1]
        } else {
            [bg_batch, c, h, w]
        };
        let (keep, kv) = rand_tensor(&gpu, &mut rng, &[b, 1, h, w]);
        let (image, iv) = rand_tensor(&gpu, &mut rng, &[image_batch, c, h, w]);
        let (background, bv) = rand_tensor(&gpu, &mut rng, &bg_shape);
        let (k64, i64_, b64) = (to_f64(&kv), to_f64(&iv), to_f64(&bv));
        let out = mix::mix(&keep, &image, &background).unwrap();
        assert_eq!(out.shape(), &shape);
        // One product and two sums of values ≤ 1 in f32.
        let want = reference::mix(&k64, &i64_, image_batch, &b64, bg_shape, shape);
        assert_close(
            &format!("mix {shape:?}"),
            &out.to_vec().unwrap(),
            &want,
            1e-6,
            1e-6,
        );

        // L = Σ r·mix(keep) is linear in keep: central differences are exact up to rounding.
        let (r, rv) = rand_tensor(&gpu, &mut rng, &shape);
        let r64 = to_f64(&rv);
        let loss = |k: &[f64]| -> f64 {
            reference::mix(k, &i64_, image_batch, &b64, bg_shape, shape)
                .iter()
                .zip(&r64)
                .map(|(a, r)| a * r)
                .sum()
        };
        let want = fd_scalar(loss, &k64, 1e-3);
        let got = mix::mix_backward(&r, &keep, &image, &background).unwrap();
        assert_eq!(got.shape(), keep.shape());
        assert_close(
            &format!("dkeep {shape:?}"),
            &got.to_vec().unwrap(),
            &want,
            1e-5,
            1e-5,
        );

        // Through the tape, with the mask used twice (mixed, then scaled by itself).
        let tape = Tape::new();
        let k = tape.param(keep.clone());
        let mixed = k.mix(&image, &background).unwrap();
        let loss_t = mixed
            .mul(&tape.constant(r.clone()))
            .unwrap()
            .sum()
            .unwrap()
            .add(&k.sum().unwrap())
            .unwrap();
        let mut grads = tape.backward(&loss_t).unwrap();
        let want: Vec<f64> = fd_scalar(|k| loss(k) + k.iter().sum::<f64>(), &k64, 1e-3);
        assert_close(
            &format!("tape dkeep {shape:?}"),
            &grads.take(&k).unwrap().to_vec().unwrap(),
            &want,
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn mix_shape_errors_name_the_shapes() {
    let gpu = gpu();
    let z = |s: &[usize]| Tensor::zeros(&gpu, s).unwrap();
    let e = mix::mix(&z(&[2, 1, 4, 4]), &z(&[1, 3, 4, 4]), &z(&[2, 3, 4, 5]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 3, 4, 5]") && e.contains("keep"), "{e}");
    // A background per channel must be 1 × 1.
    assert!(mix::mix(&z(&[2, 1, 4, 4]), &z(&[1, 3, 4, 4]), &z(&[1, 3, 2, 1])).is_err());
    // An image batch that is neither 1 nor the samples'.
    assert!(mix::mix(&z(&[2, 1, 4, 4]), &z(&[3, 3, 4, 4]), &z(&[2, 3, 4, 4])).is_err());
    // A gradient of the wrong shape.
    let e = mix::mix_backward(
        &z(&[2, 3, 4, 5]),
        &z(&[2, 1, 4, 4]),
        &z(&[1, 3, 4, 4]),
        &z(&[2, 3, 4, 4]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("mix_backward"), "{e}");
}
