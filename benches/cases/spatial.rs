//! FIDO's own kernels at their real sizes: mask upsampling, Concrete sampling, blur and box
//! in-fillers, and the Adam update of the 56×56 logits.

use fido::ops::{filter, optim, random, resize};
use fido::Tensor;

use super::{check_close, pseudo_random, to_f64};
use crate::Bench;

pub fn run(bench: &mut Bench) {
    let gpu = bench.gpu.clone();
    let (b, m, s) = (8usize, 56usize, 224usize);

    let name = "bilinear 8x1x56x56 -> 224 fwd";
    if bench.wants(name) {
        let host = pseudo_random(b * m * m, 11);
        let x = Tensor::from_slice(&gpu, &[b, 1, m, m], &host).unwrap();
        bench.case(
            name,
            resize::resize_bilinear_cost(b, [m, m], [s, s]),
            |_| {
                let got = resize::resize_bilinear(&x, s, s, true)
                    .and_then(|t| t.to_vec())
                    .map_err(|e| e.to_string())?;
                let want = resize::reference::resize_bilinear(&to_f64(&host), b, [m, m], [s, s], true);
                check_close(
                    name,
                    (0..got.len()).step_by(97).map(|i| (got[i], want[i])),
                    1e-5,
                    1e-5,
                )
            },
            |_| resize::resize_bilinear(&x, s, s, true).map(drop),
        );
    }
    let name = "bilinear 8x1x56x56 -> 224 bwd";
    if bench.wants(name) {
        let host = pseudo_random(b * s * s, 12);
        let dy = Tensor::from_slice(&gpu, &[b, 1, s, s], &host).unwrap();
        bench.case(
            name,
            resize::resize_bilinear_backward_cost(b, [m, m], [s, s]),
            |_| {
                let got = resize::resize_bilinear_backward(&dy, m, m, true)
                    .and_then(|t| t.to_vec())
                    .map_err(|e| e.to_string())?;
                let want =
                    resize::reference::resize_bilinear_backward(&to_f64(&host), b, [m, m], [s, s], true);
                check_close(
                    name,
                    (0..got.len()).step_by(31).map(|i| (got[i], want[i])),
                    1e-4,
                    1e-4,
                )
            },
            |_| resize::resize_bilinear_backward(&dy, m, m, true).map(drop),
        );
    }
    let name = "concrete sample 8x224x224";
    if bench.wants(name) {
        let host = pseudo_random(s * s, 13);
        let logits = Tensor::from_slice(&gpu, &[1, 1, s, s], &host).unwrap();
        bench.case(
            name,
            random::concrete_cost(s * s, b),
            |_| {
                let z = random::concrete_sample(&logits, b, 0.1, 5, 0)
                    .and_then(|t| t.to_vec())
                    .map_err(|e| e.to_string())?;
                let want = random::reference::concrete_sample(&to_f64(&host), b, 0.1, 5, 0);
                check_close(
                    name,
                    (0..z.len()).step_by(101).map(|i| (z[i], want[i])),
                    1e-4,
                    1e-4,
                )
            },
            |_| random::concrete_sample(&logits, b, 0.1, 5, 0).map(drop),
        );
    }
    let name = "gaussian blur s=10 8x3x224x224";
    if bench.wants(name) {
        let host = pseudo_random(b * 3 * s * s, 14);
        let x = Tensor::from_slice(&gpu, &[b, 3, s, s], &host).unwrap();
        bench.case(
            name,
            filter::gaussian_blur_cost(&[b, 3, s, s], 10.0),
            |_| {
                let got = filter::gaussian_blur(&x, 10.0)
                    .and_then(|t| t.to_vec())
                    .map_err(|e| e.to_string())?;
                let want = filter::reference::gaussian_blur(&to_f64(&host[..s * s]), 1, s, s, 10.0);
                check_close(
                    name,
                    (0..s * s).step_by(53).map(|i| (got[i], want[i])),
                    1e-5,
                    1e-4,
                )
            },
            |_| filter::gaussian_blur(&x, 10.0).map(drop),
        );
    }
    let name = "box sum 15 8x3x224x224";
    if bench.wants(name) {
        let host = pseudo_random(b * 3 * s * s, 15);
        let x = Tensor::from_slice(&gpu, &[b, 3, s, s], &host).unwrap();
        bench.case(
            name,
            filter::box_sum_cost(&[b, 3, s, s], 15),
            |_| {
                let got = filter::box_sum(&x, 15)
                    .and_then(|t| t.to_vec())
                    .map_err(|e| e.to_string())?;
                let want = filter::reference::box_sum(&to_f64(&host[..s * s]), 1, s, s, 15);
                check_close(
                    name,
                    (0..s * s).step_by(53).map(|i| (got[i], want[i])),
                    1e-4,
                    1e-5,
                )
            },
            |_| filter::box_sum(&x, 15).map(drop),
        );
    }
    let name = "adam step 56x56";
    if bench.wants(name) {
        let p = Tensor::from_slice(&gpu, &[m, m], &pseudo_random(m * m, 16)).unwrap();
        let g = Tensor::from_slice(&gpu, &[m, m], &pseudo_random(m * m, 17)).unwrap();
        let mom = Tensor::zeros(&gpu, &[m, m]).unwrap();
        let vel = Tensor::zeros(&gpu, &[m, m]).unwrap();
        bench.case(
            name,
            optim::adam_cost(m * m),
            |_| {
                let before = p.to_vec().map_err(|e| e.to_string())?;
                optim::adam_step(&p, &g, &mom, &vel, 1, 0.05, 0.9, 0.999, 1e-8).map_err(|e| e.to_string())?;
                let after = p.to_vec().map_err(|e| e.to_string())?;
                // The first bias-corrected Adam step moves every parameter by lr·sign(g).
                let grads = g.to_vec().map_err(|e| e.to_string())?;
                check_close(
                    name,
                    (0..m * m).map(|i| (after[i] - before[i], -0.05 * (grads[i] as f64).signum())),
                    1e-5,
                    1e-3,
                )
            },
            |_| optim::adam_step(&p, &g, &mom, &vel, 2, 0.05, 0.9, 0.999, 1e-8),
        );
    }
}
