//! Batch normalisation in inference mode over the channel axis of `x: [N, C, …]`, with frozen
//! statistics and affine parameters. Models fold it into the preceding convolution where they
//! can (`models::layers::fold_batch_norm`); this kernel serves the rest.

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::ops::elementwise;
use crate::ops::Cost;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("batchnorm");

const WG: usize = 256;

crate::kernel_params! {
    /// `y = (x − mean[c]) / √(var[c] + eps) · gamma[c] + beta[c]` over `items` elements.
    pub struct BatchNormParams as "Params" {
        items: u32,
        channels: u32,
        plane: u32,
        eps: f32,
    }
}

/// `(x − mean) / √(var + eps) · gamma + beta` per channel of `x: [N, C, …]`.
pub fn batch_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    const OP: &str = "batch_norm";
    for t in [x, gamma, beta, mean, var] {
        t.expect_f32(OP)?;
        t.same_gpu(x, OP)?;
    }
    if x.rank() < 2 {
        return Err(Error::Shape {
            op: OP,
            detail: format!("input {:?} has no channel axis", x.shape()),
        });
    }
    let c = x.shape()[1];
    for (name, t) in [("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)] {
        if t.shape() != [c] {
            return Err(Error::Shape {
                op: OP,
                detail: format!("{name} {:?} vs input {:?}: expected [{c}]", t.shape(), x.shape()),
            });
        }
    }
    let out = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let n = x.numel();
    if n == 0 {
        return Ok(out);
    }
    let params = BatchNormParams {
        items: n as u32,
        channels: c as u32,
        plane: x.shape()[2..].iter().product::<usize>().max(1) as u32,
        eps,
    };
    x.gpu().launch(
        &KERNEL,
        "batch_norm",
        &[],
        &params,
        &[
            ("x", x),
            ("gamma", gamma),
            ("beta", beta),
            ("mean", mean),
            ("variance", var),
            ("y", &out),
        ],
        Grid::Linear(groups_for(n, WG)),
    )?;
    Ok(out)
}

/// The input gradient with frozen statistics: `dy · gamma / √(var + eps)` per channel.
pub fn batch_norm_backward(dy: &Tensor, gamma: &Tensor, var: &Tensor, eps: f32) -> Result<Tensor> {
    let mut scale_shape = vec![1; dy.rank()];
    scale_shape[1] = gamma.numel();
    let scale = elementwise::div(gamma, &elementwise::sqrt(&elementwise::add_scalar(var, eps)?)?)?;
    elementwise::mul(dy, &scale.reshape(&scale_shape)?)
}

/// Work of one forward call on `x_shape`: four FLOPs per element (the scale is recomputed).
pub fn batch_norm_cost(x_shape: &[usize]) -> Cost {
    let n: usize = x_shape.iter().product();
    let c = x_shape.get(1).copied().unwrap_or(0);
    Cost {
        flops: 4.0 * n as f64,
        bytes: 4.0 * (2 * n + 4 * c) as f64,
    }
}
