//! A small network through the tape: conv → batch norm → relu → max pool → depthwise conv →
//! global average pool → linear → log-softmax. The gradient with respect to the input is
//! checked against central finite differences of an f64 CPU composition of the references,
//! and against PyTorch (tests/fixtures/composite.safetensors, made by tools/golden_composite.py).

mod common;

use common::{assert_close, fd_gradient, gpu};
use fido::ops::conv::{reference as conv_ref, Conv2dOptions, Padding};
use fido::ops::pool::{reference as pool_ref, PoolGeometry};
use fido::{Gpu, Tape, Tensor};
use safetensors::SafeTensors;

struct Fixture {
    tensors: std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Fixture {
    fn load() -> Fixture {
        let bytes = std::fs::read(common::repo_path("tests/fixtures/composite.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                (
                    name.to_string(),
                    (view.shape().to_vec(), bytemuck::pod_collect_to_vec(view.data())),
                )
            })
            .collect();
        Fixture { tensors }
    }
    fn get(&self, name: &str) -> &[f32] {
        &self.tensors[name].1
    }
    fn shape(&self, name: &str) -> &[usize] {
        &self.tensors[name].0
    }
    fn tensor(&self, gpu: &Gpu, name: &str) -> Tensor {
        Tensor::from_slice(gpu, self.shape(name), self.get(name)).unwrap()
    }
    fn f64(&self, name: &str) -> Vec<f64> {
        self.get(name).iter().map(|&v| v as f64).collect()
    }
}

const EPS: f32 = 1e-5;

fn same() -> Conv2dOptions {
    Conv2dOptions::new().padding(Padding::symmetric(1, 1))
}

/// The network in f64 on the CPU references.
fn reference_forward(f: &Fixture, x: &[f64]) -> Vec<f64> {
    let xs = f.shape("input");
    let (s1, h) = conv_ref::conv2d(
        x,
        xs,
        &f.f64("conv1.weight"),
        f.shape("conv1.weight"),
        Some(&f.f64("conv1.bias")),
        &same(),
    );
    let h = fido::ops::batchnorm::reference::batch_norm(
        &h,
        &s1,
        &f.f64("bn.weight"),
        &f.f64("bn.bias"),
        &f.f64("bn.running_mean"),
        &f.f64("bn.running_var"),
        EPS as f64,
    );
    let h: Vec<f64> = h.into_iter().map(|v| v.max(0.0)).collect();
    let g = PoolGeometry::new("max_pool2d", s1[2], s1[3], [2, 2], [2, 2], [0, 0]).unwrap();
    let h = pool_ref::max_pool2d(&h, s1[0] * s1[1], &g);
    let s2 = [s1[0], s1[1], g.out_h, g.out_w];
    let (s3, h) = conv_ref::conv2d(
        &h,
        &s2,
        &f.f64("dw.weight"),
        f.shape("dw.weight"),
        Some(&f.f64("dw.bias")),
        &same().groups(4),
    );
    let plane = s3[2] * s3[3];
    let pooled: Vec<f64> = h
        .chunks(plane)
        .map(|p| p.iter().sum::<f64>() / plane as f64)
        .collect();
    let (fw, fb) = (f.f64("fc.weight"), f.f64("fc.bias"));
    let (k, c) = (f.shape("fc.weight")[0], f.shape("fc.weight")[1]);
    let mut out = vec![];
    for row in pooled.chunks(c) {
        let logits: Vec<f64> = (0..k)
            .map(|j| fb[j] + (0..c).map(|i| row[i] * fw[j * c + i]).sum::<f64>())
            .collect();
        let m = logits.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + logits.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        out.extend(logits.iter().map(|v| v - lse));
    }
    out
}

#[test]
fn composite_gradient_matches_finite_differences_and_pytorch() {
    let gpu = gpu();
    let f = Fixture::load();
    let tape = Tape::new();
    let x = tape.param(f.tensor(&gpu, "input"));
    let weight = |name: &str| tape.constant(f.tensor(&gpu, name));
    let (w1, b1, wd, bd) = (
        weight("conv1.weight"),
        weight("conv1.bias"),
        weight("dw.weight"),
        weight("dw.bias"),
    );
    let (fw, fb) = (weight("fc.weight"), weight("fc.bias"));
    let h = x.conv2d(&w1, Some(&b1), &same()).unwrap();
    let h = h
        .batch_norm(
            &f.tensor(&gpu, "bn.weight"),
            &f.tensor(&gpu, "bn.bias"),
            &f.tensor(&gpu, "bn.running_mean"),
            &f.tensor(&gpu, "bn.running_var"),
            EPS,
        )
        .unwrap();
    let h = h.relu().unwrap().max_pool2d([2, 2], [2, 2], [0, 0]).unwrap();
    let h = h.conv2d(&wd, Some(&bd), &same().groups(4)).unwrap();
    let h = h.global_avg_pool().unwrap().reshape(&[2, 4]).unwrap();
    let logits = h.matmul(&fw, false, true).unwrap().add(&fb).unwrap();
    let y = logits.log_softmax().unwrap();
    let out = y.value().to_vec().unwrap();
    let grads = tape.backward_from(&y, f.tensor(&gpu, "cotangent")).unwrap();
    let dx = grads.get(&x).unwrap().to_vec().unwrap();

    // Forward: f32 kernels vs PyTorch's f64 rounded to f32.
    let torch_out: Vec<f64> = f.f64("log_softmax");
    assert_close("forward vs PyTorch", &out, &torch_out, 1e-5, 1e-5);
    let torch_dx = f.f64("grad_input");
    assert_close("input gradient vs PyTorch", &dx, &torch_dx, 1e-6, 1e-4);

    // Finite differences of the f64 reference composition. The step must not carry an input
    // across a relu kink or change a max-pool argmax; 1e-6 is far below the gaps here, and
    // f64 leaves ~1e-10 of rounding in the quotient.
    let want = fd_gradient(
        |xs| reference_forward(&f, xs),
        f.get("input"),
        f.get("cotangent"),
        1e-6,
    );
    assert_close("input gradient vs finite differences", &dx, &want, 1e-6, 1e-4);
    // The reference agrees with PyTorch too, so all three meet.
    assert_close(
        "reference forward vs PyTorch",
        &reference_forward(&f, &f.f64("input"))
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<_>>(),
        &torch_out,
        1e-5,
        1e-5,
    );
}
