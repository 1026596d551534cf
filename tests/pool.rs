mod common;

use common::{assert_close, fd_gradient, gpu, to_f64, Rng};
use fido::ops::pool::{self, reference, PoolGeometry};
use fido::Tensor;

/// The finite-difference step: small enough that no argmax changes (see [`tie_free`]).
const FD_EPS: f64 = 1e-4;

/// Distinct values at least 0.01 apart, shuffled, so no window has a tie and a
/// finite-difference step of 1e-4 never changes an argmax.
fn tie_free(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 1.0).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.below(i + 1));
    }
    v
}

struct Case {
    shape: [usize; 4],
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
}

/// Odd planes, length-1 axes, padding, strides above and below the kernel size.
fn cases() -> Vec<Case> {
    let c = |shape, kernel, stride, padding| Case {
        shape,
        kernel,
        stride,
        padding,
    };
    vec![
        c([2, 3, 9, 11], [3, 3], [2, 2], [1, 1]),
        c([1, 2, 7, 5], [2, 3], [1, 2], [1, 1]),
        c([3, 1, 1, 6], [1, 3], [1, 2], [0, 1]),
        c([1, 1, 13, 13], [3, 3], [2, 2], [1, 1]),
        c([1, 2, 8, 9], [2, 2], [3, 3], [0, 0]),
        c([2, 1, 10, 7], [5, 4], [2, 1], [2, 2]),
    ]
}

fn geometry(c: &Case) -> (usize, PoolGeometry) {
    let g = PoolGeometry::new("test", c.shape[2], c.shape[3], c.kernel, c.stride, c.padding).unwrap();
    (c.shape[0] * c.shape[1], g)
}

#[test]
fn max_pool_matches_reference_with_padding_and_stride() {
    let gpu = gpu();
    let mut rng = Rng::new(10);
    for c in cases() {
        let (planes, g) = geometry(&c);
        let x = rng.vec(c.shape.iter().product(), -3.0, 3.0);
        let xt = Tensor::from_slice(&gpu, &c.shape, &x).unwrap();
        let y = pool::max_pool2d(&xt, c.kernel, c.stride, c.padding).unwrap();
        assert_eq!(
            y.shape(),
            &[c.shape[0], c.shape[1], g.out_h, g.out_w],
            "{:?}",
            c.shape
        );
        // Max selects an input value: exact.
        let want = reference::max_pool2d(&to_f64(&x), planes, &g);
        assert_close(
            &format!("max_pool2d {:?}", c.shape),
            &y.to_vec().unwrap(),
            &want,
            0.0,
            0.0,
        );
    }
}

#[test]
fn max_pool_ties_go_to_the_first_maximum() {
    let gpu = gpu();
    // All equal: every window's gradient lands on its first in-bounds element.
    let shape = [1, 1, 5, 6];
    let x = vec![1.0f32; 30];
    let dy_shape = [1, 1, 3, 3];
    let dy: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let xt = Tensor::from_slice(&gpu, &shape, &x).unwrap();
    let dyt = Tensor::from_slice(&gpu, &dy_shape, &dy).unwrap();
    let dx = pool::max_pool2d_backward(&xt, &dyt, [3, 3], [2, 2], [1, 1]).unwrap();
    let g = PoolGeometry::new("test", 5, 6, [3, 3], [2, 2], [1, 1]).unwrap();
    let want = reference::max_pool2d_backward(&to_f64(&x), &to_f64(&dy), 1, &g);
    assert_close("max ties", &dx.to_vec().unwrap(), &want, 0.0, 0.0);
}

#[test]
fn max_pool_backward_matches_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(11);
    for c in cases() {
        let (planes, g) = geometry(&c);
        let x = tie_free(&mut rng, c.shape.iter().product());
        let r = rng.vec(planes * g.out_h * g.out_w, -1.0, 1.0);
        let xt = Tensor::from_slice(&gpu, &c.shape, &x).unwrap();
        let rt = Tensor::from_slice(&gpu, &[c.shape[0], c.shape[1], g.out_h, g.out_w], &r).unwrap();
        let dx = pool::max_pool2d_backward(&xt, &rt, c.kernel, c.stride, c.padding)
            .unwrap()
            .to_vec()
            .unwrap();
        let fd = fd_gradient(|x| reference::max_pool2d(x, planes, &g), &x, &r, FD_EPS);
        assert_close(&format!("max_pool2d grad {:?}", c.shape), &dx, &fd, 1e-6, 1e-3);
    }
}

#[test]
fn avg_pool_matches_reference_and_finite_differences() {
    let gpu = gpu();
    let mut rng = Rng::new(12);
    for c in cases() {
        for include_pad in [false, true] {
            let (planes, g) = geometry(&c);
            let x = rng.vec(c.shape.iter().product(), -3.0, 3.0);
            let xt = Tensor::from_slice(&gpu, &c.shape, &x).unwrap();
            let y = pool::avg_pool2d(&xt, c.kernel, c.stride, c.padding, include_pad).unwrap();
            let want = reference::avg_pool2d(&to_f64(&x), planes, &g, include_pad);
            // f32 sums of at most 20 values of magnitude ≤ 3.
            let what = format!("avg_pool2d {:?} include_pad={include_pad}", c.shape);
            assert_close(&what, &y.to_vec().unwrap(), &want, 1e-5, 1e-5);

            let r = rng.vec(want.len(), -1.0, 1.0);
            let rt = Tensor::from_slice(&gpu, y.shape(), &r).unwrap();
            let dx = pool::avg_pool2d_backward(
                &rt,
                c.shape[2],
                c.shape[3],
                c.kernel,
                c.stride,
                c.padding,
                include_pad,
            )
            .unwrap();
            assert_eq!(dx.shape(), &c.shape);
            let fd = fd_gradient(
                |x| reference::avg_pool2d(x, planes, &g, include_pad),
                &x,
                &r,
                FD_EPS,
            );
            assert_close(&format!("{what} grad"), &dx.to_vec().unwrap(), &fd, 1e-6, 1e-3);
        }
    }
}

#[test]
fn global_avg_pool_and_its_gradient() {
    let gpu = gpu();
    let mut rng = Rng::new(13);
    for shape in [[2usize, 3, 7, 5], [1, 1, 1, 1], [3, 2, 1, 9], [1, 4, 16, 16]] {
        let (planes, hw) = (shape[0] * shape[1], shape[2] * shape[3]);
        let x = rng.vec(shape.iter().product(), -2.0, 2.0);
        let xt = Tensor::from_slice(&gpu, &shape, &x).unwrap();
        let y = pool::global_avg_pool(&xt).unwrap();
        assert_eq!(y.shape(), &[shape[0], shape[1], 1, 1]);
        let mean = |x: &[f64]| -> Vec<f64> {
            (0..planes)
                .map(|p| x[p * hw..(p + 1) * hw].iter().sum::<f64>() / hw as f64)
                .collect()
        };
        // An f32 running sum of up to 256 values.
        assert_close(
            &format!("global_avg_pool {shape:?}"),
            &y.to_vec().unwrap(),
            &mean(&to_f64(&x)),
            1e-5,
            1e-5,
        );
        let r = rng.vec(planes, -1.0, 1.0);
        let rt = Tensor::from_slice(&gpu, y.shape(), &r).unwrap();
        let dx = pool::global_avg_pool_backward(&rt, shape[2], shape[3]).unwrap();
        assert_eq!(dx.shape(), &shape);
        let fd = fd_gradient(mean, &x, &r, FD_EPS);
        assert_close(
            &format!("global_avg_pool grad {shape:?}"),
            &dx.to_vec().unwrap(),
            &fd,
            1e-7,
            1e-3,
        );
    }
}

/// PyTorch's adaptive windows: `[floor(i·in/out), ceil((i+1)·in/out))`, written out
/// independently of the average-pooling path the GPU takes.
fn adaptive_reference(x: &[f64], planes: usize, hw: [usize; 2], out: [usize; 2]) -> Vec<f64> {
    let mut y = Vec::new();
    for p in 0..planes {
        for oh in 0..out[0] {
            let (h0, h1) = (oh * hw[0] / out[0], ((oh + 1) * hw[0]).div_ceil(out[0]));
            for ow in 0..out[1] {
                let (w0, w1) = (ow * hw[1] / out[1], ((ow + 1) * hw[1]).div_ceil(out[1]));
                let mut s = 0.0;
                for h in h0..h1 {
                    for w in w0..w1 {
                        s += x[(p * hw[0] + h) * hw[1] + w];
                    }
                }
                y.push(s / ((h1 - h0) * (w1 - w0)) as f64);
            }
        }
    }
    y
}

#[test]
fn adaptive_avg_pool_and_its_gradient() {
    let gpu = gpu();
    let mut rng = Rng::new(14);
    for (shape, out) in [
        ([2usize, 3, 9, 15], [3usize, 5]),
        ([1, 2, 7, 7], [7, 1]),
        ([1, 1, 12, 8], [4, 8]),
    ] {
        let planes = shape[0] * shape[1];
        let hw = [shape[2], shape[3]];
        let x = rng.vec(shape.iter().product(), -2.0, 2.0);
        let xt = Tensor::from_slice(&gpu, &shape, &x).unwrap();
        let y = pool::adaptive_avg_pool2d(&xt, out[0], out[1]).unwrap();
        assert_eq!(y.shape(), &[shape[0], shape[1], out[0], out[1]]);
        let want = adaptive_reference(&to_f64(&x), planes, hw, out);
        let what = format!("adaptive {shape:?} -> {out:?}");
        assert_close(&what, &y.to_vec().unwrap(), &want, 1e-5, 1e-5);
        let r = rng.vec(want.len(), -1.0, 1.0);
        let rt = Tensor::from_slice(&gpu, y.shape(), &r).unwrap();
        let dx = pool::adaptive_avg_pool2d_backward(&rt, hw[0], hw[1]).unwrap();
        let fd = fd_gradient(|x| adaptive_reference(x, planes, hw, out), &x, &r, FD_EPS);
        assert_close(&format!("{what} grad"), &dx.to_vec().unwrap(), &fd, 1e-7, 1e-3);
    }
}

#[test]
fn bad_arguments_are_errors() {
    let gpu = gpu();
    let x = Tensor::zeros(&gpu, &[1, 2, 5, 6]).unwrap();
    let msg = |e: fido::Error| e.to_string();
    // Kernel larger than the padded input.
    let e = msg(pool::max_pool2d(&x, [8, 3], [1, 1], [1, 1]).unwrap_err());
    assert!(e.contains("larger than the padded input"), "{e}");
    assert!(pool::avg_pool2d(&x, [3, 9], [1, 1], [1, 1], true).is_err());
    // Padding beyond half the kernel, zero stride, zero kernel.
    assert!(pool::max_pool2d(&x, [3, 3], [1, 1], [2, 0]).is_err());
    assert!(pool::max_pool2d(&x, [3, 3], [0, 1], [0, 0]).is_err());
    assert!(pool::avg_pool2d(&x, [0, 3], [1, 1], [0, 0], false).is_err());
    // Adaptive sizes that do not divide, or are zero.
    let e = msg(pool::adaptive_avg_pool2d(&x, 2, 4).unwrap_err());
    assert!(e.contains("divide"), "{e}");
    assert!(pool::adaptive_avg_pool2d(&x, 0, 3).is_err());
    // Not NCHW.
    let flat = Tensor::zeros(&gpu, &[5, 6]).unwrap();
    assert!(pool::global_avg_pool(&flat).is_err());
    // Gradient of the wrong shape.
    let dy = Tensor::zeros(&gpu, &[1, 2, 4, 3]).unwrap();
    let e = msg(pool::max_pool2d_backward(&x, &dy, [3, 3], [2, 2], [1, 1]).unwrap_err());
    assert!(e.contains("[1, 2, 3, 3]"), "{e}");
    assert!(pool::avg_pool2d_backward(&dy, 5, 6, [3, 3], [2, 2], [1, 1], false).is_err());
    assert!(pool::global_avg_pool_backward(&dy, 5, 6).is_err());
}
