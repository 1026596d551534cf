mod common;

use common::{assert_close, fd_gradient, gpu, to_f64, Rng};
use fido::ops::layout::{self as lay, reference};
use fido::{Error, Tape, Tensor};

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// The finite-difference step. The layout ops are linear, so central differences are exact
/// up to rounding.
const FD_EPS: f64 = 1e-3;

#[test]
fn pad_and_crop_match_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(1);
    let cases: &[(&[usize], [usize; 4])] = &[
        (&[2, 3, 5, 7], [1, 2, 3, 0]),
        (&[1, 1, 1, 1], [0, 0, 0, 0]),
        (&[3, 1], [2, 1, 0, 4]),
        (&[2, 1, 3, 9, 11], [4, 4, 4, 4]),
        (&[1, 3, 17, 13], [0, 5, 1, 0]),
    ];
    for &(shape, pads) in cases {
        let x = rng.vec(numel(shape), -5.0, 5.0);
        let t = Tensor::from_slice(&gpu, shape, &x).unwrap();
        for value in [0.0f32, -1.5] {
            let y = lay::pad(&t, pads, value).unwrap();
            let (want_shape, want) = reference::pad(&to_f64(&x), shape, pads, value as f64);
            assert_eq!(y.shape(), &want_shape[..]);
            // A copy: exact.
            assert_close(
                &format!("pad {shape:?} {pads:?}"),
                &y.to_vec().unwrap(),
                &want,
                0.0,
                0.0,
            );
        }
        let rank = shape.len();
        let (h, w) = (shape[rank - 2], shape[rank - 1]);
        let (top, left) = (rng.below(h), rng.below(w));
        let (ch, cw) = (1 + rng.below(h - top), 1 + rng.below(w - left));
        let y = lay::crop(&t, top, left, ch, cw).unwrap();
        let (want_shape, want) = reference::crop(&to_f64(&x), shape, top, left, ch, cw);
        assert_eq!(y.shape(), &want_shape[..]);
        assert_close("crop", &y.to_vec().unwrap(), &want, 0.0, 0.0);
    }
}

#[test]
fn slice_matches_reference_on_every_axis() {
    let gpu = gpu();
    let mut rng = Rng::new(2);
    for shape in [
        vec![5usize],
        vec![3, 1, 7],
        vec![2, 5, 3, 4],
        vec![1, 2, 1, 3, 1, 5],
    ] {
        let x = rng.vec(numel(&shape), -5.0, 5.0);
        let t = Tensor::from_slice(&gpu, &shape, &x).unwrap();
        for axis in 0..shape.len() {
            let start = rng.below(shape[axis]);
            let end = start + 1 + rng.below(shape[axis] - start);
            for (s, e) in [(start, end), (0, shape[axis]), (start, start)] {
                let y = lay::slice(&t, axis, s, e).unwrap();
                let (want_shape, want) = reference::slice(&to_f64(&x), &shape, axis, s, e);
                assert_eq!(y.shape(), &want_shape[..]);
                assert_close(
                    &format!("slice {shape:?} axis {axis} {s}..{e}"),
                    &y.to_vec().unwrap(),
                    &want,
                    0.0,
                    0.0,
                );
            }
        }
    }
}

#[test]
fn concat_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(3);
    let cases: &[(&[&[usize]], usize)] = &[
        (&[&[2, 3, 5, 7], &[2, 1, 5, 7], &[2, 4, 5, 7]], 1),
        (&[&[1, 5, 3, 3]], 1),
        (&[&[3, 2], &[3, 5]], 1),
        (&[&[3, 2], &[1, 2], &[4, 2]], 0),
        (&[&[2, 3, 4], &[2, 3, 1]], 2),
        (&[&[1, 2, 9, 11], &[1, 0, 9, 11], &[1, 3, 9, 11]], 1),
    ];
    for &(shapes, axis) in cases {
        let data: Vec<Vec<f32>> = shapes.iter().map(|s| rng.vec(numel(s), -5.0, 5.0)).collect();
        let tensors: Vec<Tensor> = shapes
            .iter()
            .zip(&data)
            .map(|(s, d)| Tensor::from_slice(&gpu, s, d).unwrap())
            .collect();
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let y = if axis == 1 {
            lay::concat_channels(&refs).unwrap()
        } else {
            lay::concat(&refs, axis).unwrap()
        };
        let data64: Vec<Vec<f64>> = data.iter().map(|d| to_f64(d)).collect();
        let parts: Vec<(&[f64], &[usize])> = data64.iter().zip(shapes).map(|(d, s)| (&d[..], *s)).collect();
        let (want_shape, want) = reference::concat(&parts, axis);
        assert_eq!(y.shape(), &want_shape[..]);
        assert_close(
            &format!("concat {shapes:?}"),
            &y.to_vec().unwrap(),
            &want,
            0.0,
            0.0,
        );
    }
}

#[test]
fn pad_and_crop_backward_match_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(4);
    let shape = [2usize, 3, 4, 5];
    let pads = [1, 2, 0, 3];
    let x = rng.vec(numel(&shape), -1.0, 1.0);
    let (out_shape, _) = reference::pad(&to_f64(&x), &shape, pads, 0.7);
    let r = rng.vec(numel(&out_shape), -1.0, 1.0);
    let dy = Tensor::from_slice(&gpu, &out_shape, &r).unwrap();
    let dx = lay::pad_backward(&dy, pads).unwrap();
    assert_eq!(dx.shape(), &shape);
    let fd = fd_gradient(|x| reference::pad(x, &shape, pads, 0.7).1, &x, &r, FD_EPS);
    assert_close("pad backward", &dx.to_vec().unwrap(), &fd, 1e-6, 1e-3);

    let (top, left, h, w) = (1, 2, 2, 3);
    let r = rng.vec(numel(&[2, 3, h, w]), -1.0, 1.0);
    let dy = Tensor::from_slice(&gpu, &[2, 3, h, w], &r).unwrap();
    let dx = lay::crop_backward(&dy, &shape, top, left).unwrap();
    assert_eq!(dx.shape(), &shape);
    let fd = fd_gradient(|x| reference::crop(x, &shape, top, left, h, w).1, &x, &r, FD_EPS);
    assert_close("crop backward", &dx.to_vec().unwrap(), &fd, 1e-6, 1e-3);
}

#[test]
fn slice_backward_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(5);
    let shape = [3usize, 4, 1, 5];
    let x = rng.vec(numel(&shape), -1.0, 1.0);
    for (axis, start, end) in [(0, 1, 3), (1, 0, 1), (2, 0, 1), (3, 2, 5)] {
        let mut out_shape = shape.to_vec();
        out_shape[axis] = end - start;
        let r = rng.vec(numel(&out_shape), -1.0, 1.0);
        let dy = Tensor::from_slice(&gpu, &out_shape, &r).unwrap();
        let dx = lay::slice_backward(&dy, &shape, axis, start).unwrap();
        assert_eq!(dx.shape(), &shape);
        let fd = fd_gradient(
            |x| reference::slice(x, &shape, axis, start, end).1,
            &x,
            &r,
            FD_EPS,
        );
        assert_close(
            &format!("slice backward axis {axis}"),
            &dx.to_vec().unwrap(),
            &fd,
            1e-6,
            1e-3,
        );
    }
}

#[test]
fn concat_backward_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(6);
    let shapes: [&[usize]; 3] = [&[2, 3, 2, 3], &[2, 1, 2, 3], &[2, 2, 2, 3]];
    let xs32: Vec<Vec<f32>> = shapes.iter().map(|s| rng.vec(numel(s), -1.0, 1.0)).collect();
    let xs: Vec<Vec<f64>> = xs32.iter().map(|x| to_f64(x)).collect();
    let out_shape = [2usize, 6, 2, 3];
    let r = rng.vec(numel(&out_shape), -1.0, 1.0);
    let dy = Tensor::from_slice(&gpu, &out_shape, &r).unwrap();
    let grads = lay::concat_channels_backward(&dy, &[3, 1, 2]).unwrap();
    assert_eq!(grads.len(), 3);
    for (k, grad) in grads.iter().enumerate() {
        assert_eq!(grad.shape(), shapes[k]);
        let concat_with = |x: &[f64]| {
            let parts: Vec<(&[f64], &[usize])> = (0..3)
                .map(|j| (if j == k { x } else { &xs[j][..] }, shapes[j]))
                .collect();
            reference::concat(&parts, 1).1
        };
        let fd = fd_gradient(concat_with, &xs32[k], &r, FD_EPS);
        assert_close(
            &format!("concat backward part {k}"),
            &grad.to_vec().unwrap(),
            &fd,
            1e-6,
            1e-3,
        );
    }
}

#[test]
fn bad_inputs_are_errors() {
    let gpu = gpu();
    let x = Tensor::zeros(&gpu, &[2, 3, 4, 5]).unwrap();
    let v = Tensor::zeros(&gpu, &[5]).unwrap();
    let shape_err = |r: fido::Result<_>| matches!(r, Err(Error::Shape { .. }));
    assert!(shape_err(lay::pad(&v, [1, 1, 1, 1], 0.0)));
    assert!(shape_err(lay::crop(&x, 2, 0, 3, 5)));
    assert!(shape_err(lay::crop(&x, 0, 1, 4, 5)));
    assert!(shape_err(lay::slice(&x, 4, 0, 1)));
    assert!(shape_err(lay::slice(&x, 1, 2, 1)));
    assert!(shape_err(lay::slice(&x, 3, 0, 6)));
    assert!(shape_err(lay::slice_backward(&x, &[2, 3, 4, 6], 2, 0)));
    assert!(shape_err(lay::slice_backward(&x, &[2, 3, 4, 5, 1], 2, 0)));
    assert!(shape_err(lay::crop_backward(&x, &[2, 3, 5, 5], 2, 0)));
    assert!(shape_err(lay::pad_backward(&x, [3, 2, 0, 0])));
    let y = Tensor::zeros(&gpu, &[2, 3, 4, 6]).unwrap();
    assert!(shape_err(lay::concat_channels(&[&x, &y])));
    assert!(shape_err(lay::concat_channels(&[&x, &v])));
    assert!(shape_err(lay::concat_channels(&[])));
    assert!(matches!(
        lay::concat_channels_backward(&x, &[1, 1]),
        Err(Error::Shape { .. })
    ));
    let deep = Tensor::zeros(&gpu, &[1; 9]).unwrap();
    assert!(shape_err(lay::slice(&deep, 0, 0, 1)));
}

/// Every permutation of `0..rank`, by Heap's algorithm.
fn permutations(rank: usize) -> Vec<Vec<usize>> {
    fn heap(k: usize, perm: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(perm.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, perm, out);
            perm.swap(if k % 2 == 0 { i } else { 0 }, k - 1);
        }
    }
    let mut out = vec![];
    heap(rank, &mut (0..rank).collect(), &mut out);
    out
}

/// A random shape of `rank` odd extents in 1..=7.
fn odd_shape(rng: &mut Rng, rank: usize) -> Vec<usize> {
    (0..rank).map(|_| 1 + 2 * rng.below(4)).collect()
}

#[test]
fn permute_matches_reference() {
    let gpu = gpu();
    let mut rng = Rng::new(7);
    let mut cases: Vec<(Vec<usize>, Vec<usize>)> = vec![];
    for rank in [3, 4] {
        let all = permutations(rank);
        assert_eq!(all.len(), if rank == 3 { 6 } else { 24 });
        for perm in all {
            cases.push((odd_shape(&mut rng, rank), perm));
        }
    }
    cases.extend([
        (vec![9], vec![0]),
        (vec![5, 3], vec![1, 0]),
        (vec![3, 5, 1, 7, 3], vec![4, 2, 0, 3, 1]),
        (vec![3, 5, 1, 7, 3], vec![1, 0, 3, 4, 2]),
        (vec![2, 3, 5, 1, 3, 7], vec![5, 4, 3, 2, 1, 0]),
        (vec![3, 1, 2, 5, 3, 3], vec![2, 0, 5, 1, 4, 3]),
        (vec![3, 1, 2, 5, 3, 3], vec![0, 1, 2, 3, 4, 5]),
        // A 1-sized axis moved to the front and to the back.
        (vec![7, 1, 5], vec![1, 0, 2]),
        (vec![1, 7, 5], vec![1, 2, 0]),
        // Enough elements for several workgroups.
        (vec![33, 17, 9], vec![2, 0, 1]),
    ]);
    for (shape, perm) in cases {
        let x = rng.vec(numel(&shape), -5.0, 5.0);
        let t = Tensor::from_slice(&gpu, &shape, &x).unwrap();
        let y = lay::permute(&t, &perm).unwrap();
        let (want_shape, want) = reference::permute(&to_f64(&x), &shape, &perm);
        assert_eq!(y.shape(), &want_shape[..]);
        // A copy: exact.
        assert_close(
            &format!("permute {shape:?} by {perm:?}"),
            &y.to_vec().unwrap(),
            &want,
            0.0,
            0.0,
        );
    }
}

#[test]
fn permute_of_the_identity_and_its_inverse_give_the_input_back() {
    let gpu = gpu();
    let mut rng = Rng::new(8);
    let shape = [3usize, 5, 1, 7];
    let x = rng.vec(numel(&shape), -5.0, 5.0);
    let t = Tensor::from_slice(&gpu, &shape, &x).unwrap();
    assert_eq!(lay::permute(&t, &[0, 1, 2, 3]).unwrap().to_vec().unwrap(), x);
    for perm in permutations(4) {
        let inverse = lay::inverse_permutation(&perm).unwrap();
        let back = lay::permute(&lay::permute(&t, &perm).unwrap(), &inverse).unwrap();
        assert_eq!(back.shape(), &shape);
        assert_eq!(back.to_vec().unwrap(), x, "{perm:?} then {inverse:?}");
    }
}

#[test]
fn permute_rejects_bad_permutations_and_ranks() {
    let gpu = gpu();
    let x = Tensor::zeros(&gpu, &[2, 3, 4]).unwrap();
    let message = |r: fido::Result<Tensor>| match r {
        Err(e @ Error::Shape { .. }) => e.to_string(),
        other => panic!(
            "expected a shape error, got {:?}",
            other.map(|t| t.shape().to_vec())
        ),
    };
    assert!(message(lay::permute(&x, &[0, 1])).contains("has 2 axes but the input has 3"));
    assert!(message(lay::permute(&x, &[0, 1, 2, 3])).contains("has 4 axes"));
    assert!(message(lay::permute(&x, &[0, 3, 1])).contains("axis 3, out of range"));
    assert!(message(lay::permute(&x, &[1, 1, 0])).contains("axis 1 twice"));
    let deep = Tensor::zeros(&gpu, &[1; 7]).unwrap();
    assert!(message(lay::permute(&deep, &[0, 1, 2, 3, 4, 5, 6])).contains("between 1 and 6"));
    assert!(lay::inverse_permutation(&[0, 0]).is_err());
    let tape = Tape::new();
    assert!(tape.param(x).permute(&[2, 2, 0]).is_err());
}

#[test]
fn permute_rule_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(9);
    let shape = [3usize, 1, 5, 2];
    let x = rng.vec(numel(&shape), -1.0, 1.0);
    for perm in [[3, 0, 2, 1], [1, 2, 3, 0], [0, 1, 2, 3], [2, 3, 1, 0]] {
        let tape = Tape::new();
        let xv = tape.param(Tensor::from_slice(&gpu, &shape, &x).unwrap());
        let y = xv.permute(&perm).unwrap();
        let r = rng.vec(y.value().numel(), -1.0, 1.0);
        let grads = tape
            .backward_from(&y, Tensor::from_slice(&gpu, y.shape(), &r).unwrap())
            .unwrap();
        let dx = grads.get(&xv).unwrap();
        assert_eq!(dx.shape(), &shape);
        let fd = fd_gradient(|x| reference::permute(x, &shape, &perm).1, &x, &r, FD_EPS);
        assert_close(
            &format!("permute backward {perm:?}"),
            &dx.to_vec().unwrap(),
            &fd,
            1e-6,
            1e-3,
        );
    }
}
