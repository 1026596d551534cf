//! Matmul, elementwise, reductions and softmax at the sizes the issue of record names.

use fido::ops::elementwise::{self, BinaryOp};
use fido::ops::layout;
use fido::ops::matmul::{self, MatmulShape, MatmulTiles};
use fido::ops::{reduce, softmax};
use fido::{DType, Tensor};

use super::{check_close, pseudo_random};
use crate::Bench;

pub fn run(bench: &mut Bench) {
    for &(m, n, k) in &[
        (1024usize, 1024usize, 1024usize),
        (512, 512, 512),
        (8, 1000, 1280),
    ] {
        for (ta, tb) in [(false, false), (false, true)] {
            matmul_case(bench, m, n, k, ta, tb);
        }
    }
    // A size that fills a GPU (137 GFLOP); only when a filter names 4096, as it takes
    // seconds on a CPU adapter.
    if bench.asks_for("4096") {
        matmul_case(bench, 4096, 4096, 4096, false, false);
    }
    let n = 16 << 20;
    let name = "add 16M f32";
    if bench.wants(name) {
        let gpu = bench.gpu.clone();
        let a_host = pseudo_random(n, 1);
        let b_host = pseudo_random(n, 2);
        let a = Tensor::from_slice(&gpu, &[n], &a_host).unwrap();
        let b = Tensor::from_slice(&gpu, &[n], &b_host).unwrap();
        let out = Tensor::empty(&gpu, &[n], DType::F32).unwrap();
        bench.case(
            name,
            elementwise::binary_cost(n),
            |_| {
                elementwise::binary_into(&a, &b, BinaryOp::Add, &out).map_err(|e| e.to_string())?;
                let got = out.to_vec().map_err(|e| e.to_string())?;
                check_close(
                    name,
                    (0..n)
                        .step_by(4099)
                        .map(|i| (got[i], a_host[i] as f64 + b_host[i] as f64)),
                    1e-6,
                    1e-6,
                )
            },
            |_| elementwise::binary_into(&a, &b, BinaryOp::Add, &out),
        );
    }
    let name = "sum 16M f32";
    if bench.wants(name) {
        let gpu = bench.gpu.clone();
        let host = pseudo_random(n, 3);
        let x = Tensor::from_slice(&gpu, &[n], &host).unwrap();
        let want: f64 = host.iter().map(|&v| v as f64).sum();
        let scale: f64 = host.iter().map(|&v| v.abs() as f64).sum();
        bench.case(
            name,
            reduce::cost(n),
            |_| {
                let got = reduce::sum(&x)
                    .and_then(|t| t.item())
                    .map_err(|e| e.to_string())?;
                check_close(
                    name,
                    [(got, want)],
                    4.0 * f32::EPSILON as f64 * scale.sqrt(),
                    1e-6,
                )
            },
            |_| reduce::sum(&x).map(drop),
        );
    }
    let name = "exp 16M f32";
    if bench.wants(name) {
        let gpu = bench.gpu.clone();
        let host = pseudo_random(n, 4);
        let x = Tensor::from_slice(&gpu, &[n], &host).unwrap();
        let out = Tensor::empty(&gpu, &[n], DType::F32).unwrap();
        let op = elementwise::UnaryOp::Exp;
        bench.case(
            name,
            op.cost(n),
            |_| {
                elementwise::unary_into(&x, op, &out).map_err(|e| e.to_string())?;
                let got = out.to_vec().map_err(|e| e.to_string())?;
                check_close(
                    name,
                    (0..n).step_by(7919).map(|i| (got[i], (host[i] as f64).exp())),
                    1e-6,
                    4e-6,
                )
            },
            |_| elementwise::unary_into(&x, op, &out),
        );
    }
    // The ONNX activations: GELU's erf polynomial is the costliest unary op per element.
    let name = "gelu 16M f32";
    if bench.wants(name) {
        let gpu = bench.gpu.clone();
        let host = pseudo_random(n, 6);
        let x = Tensor::from_slice(&gpu, &[n], &host).unwrap();
        let out = Tensor::empty(&gpu, &[n], DType::F32).unwrap();
        let op = elementwise::UnaryOp::Gelu;
        bench.case(
            name,
            op.cost(n),
            |_| {
                elementwise::unary_into(&x, op, &out).map_err(|e| e.to_string())?;
                let got = out.to_vec().map_err(|e| e.to_string())?;
                let gelu =
                    |v: f64| 0.5 * v * (1.0 + elementwise::reference::erf(v / std::f64::consts::SQRT_2));
                check_close(
                    name,
                    (0..n).step_by(7919).map(|i| (got[i], gelu(host[i] as f64))),
                    1e-6,
                    4e-6,
                )
            },
            |_| elementwise::unary_into(&x, op, &out).map(|_| ()),
        );
    }
    // ONNX Transpose as ViTs and ConvNeXts use it: NCHW to NHWC of a B = 8 activation.
    let name = "permute 8x64x56x56 to nhwc";
    if bench.wants(name) {
        let gpu = bench.gpu.clone();
        let shape = [8usize, 64, 56, 56];
        let count: usize = shape.iter().product();
        let host = pseudo_random(count, 7);
        let x = Tensor::from_slice(&gpu, &shape, &host).unwrap();
        let perm = [0usize, 2, 3, 1];
        bench.case(
            name,
            layout::cost(count),
            |_| {
                let got = layout::permute(&x, &perm)
                    .and_then(|t| t.to_vec())
                    .map_err(|e| e.to_string())?;
                // out[b, h, w, c] = x[b, c, h, w]
                let pairs = (0..count).step_by(4099).map(|i| {
                    let (b, h, w, c) = (i / (56 * 56 * 64), (i / (56 * 64)) % 56, (i / 64) % 56, i % 64);
                    (got[i], host[((b * 64 + c) * 56 + h) * 56 + w] as f64)
                });
                check_close(name, pairs, 0.0, 0.0)
            },
            |_| layout::permute(&x, &perm).map(|_| ()),
        );
    }
    let name = "log_softmax 8x1000";
    if bench.wants(name) {
        let gpu = bench.gpu.clone();
        let host = pseudo_random(8000, 5);
        let x = Tensor::from_slice(&gpu, &[8, 1000], &host).unwrap();
        bench.case(
            name,
            softmax::cost(8000),
            |_| {
                let got = softmax::log_softmax(&x)
                    .and_then(|t| t.to_vec())
                    .map_err(|e| e.to_string())?;
                let want = softmax::reference::softmax_like(&host, 1000, softmax::SoftmaxKind::LogSoftmax);
                check_close(name, got.into_iter().zip(want), 1e-5, 1e-5)
            },
            |_| softmax::log_softmax(&x).map(drop),
        );
    }
}

fn matmul_case(bench: &mut Bench, m: usize, n: usize, k: usize, ta: bool, tb: bool) {
    let name = format!(
        "matmul {m}x{n}x{k}{}{}",
        if ta { " Aᵀ" } else { "" },
        if tb { " Bᵀ" } else { "" }
    );
    if !bench.wants(&name) {
        return;
    }
    let gpu = bench.gpu.clone();
    let a_shape = if ta { [k, m] } else { [m, k] };
    let b_shape = if tb { [n, k] } else { [k, n] };
    let a_host = pseudo_random(m * k, 7);
    let b_host = pseudo_random(k * n, 8);
    let a = Tensor::from_slice(&gpu, &a_shape, &a_host).unwrap();
    let b = Tensor::from_slice(&gpu, &b_shape, &b_host).unwrap();
    let out = Tensor::empty(&gpu, &[m, n], DType::F32).unwrap();
    let shape = MatmulShape::infer(&a_shape, &b_shape, ta, tb).unwrap();
    let tiles = MatmulTiles::for_gpu(&gpu);
    bench.case(
        &name,
        shape.cost(),
        |_| {
            matmul::matmul_into(&a, &b, ta, tb, &out, 1.0, false, tiles).map_err(|e| e.to_string())?;
            let got = out.to_vec().map_err(|e| e.to_string())?;
            let samples = (0..256).map(|s| ((s * 7919) % m, (s * 104_729) % n));
            check_close(
                &name,
                samples.map(|(i, j)| {
                    let want: f64 = (0..k)
                        .map(|kk| {
                            let av = if ta {
                                a_host[kk * m + i]
                            } else {
                                a_host[i * k + kk]
                            };
                            let bv = if tb {
                                b_host[j * k + kk]
                            } else {
                                b_host[kk * n + j]
                            };
                            av as f64 * bv as f64
                        })
                        .sum();
                    (got[i * n + j], want)
                }),
                1e-4,
                1e-4,
            )
        },
        |_| matmul::matmul_into(&a, &b, ta, tb, &out, 1.0, false, tiles),
    );
}
