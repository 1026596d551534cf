//! Optimiser updates applied in place: Adam with PyTorch semantics, and clamping.

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::ops::Cost;
use crate::tensor::Tensor;
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("optim");

const WG: usize = 256;

crate::kernel_params! {
    /// Adam's per-step constants, or the bounds of a clamp, over `n` elements.
    pub struct OptimParams as "Params" {
        n: u32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        /// `lr / (1 − β1^step)`.
        step_size: f32,
        /// `1 / sqrt(1 − β2^step)`.
        inv_sqrt_bc2: f32,
        /// The step, for the record; the corrections above already use it.
        step: u32,
        /// Clamp: the lower bound.
        lo: f32,
        /// Clamp: the upper bound.
        hi: f32,
    }
}

/// Adam's hyper-parameters other than the learning rate, which may change every step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for AdamConfig {
    /// PyTorch's defaults.
    fn default() -> Self {
        AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// One bias-corrected Adam step (PyTorch semantics, no weight decay), in place:
/// `m = β1·m + (1−β1)·g`, `v = β2·v + (1−β2)·g²`,
/// `param −= lr/(1−β1^step) · m / (sqrt(v)/sqrt(1−β2^step) + ε)`.
/// `step` counts from 1. All four tensors must have the same shape.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    param: &Tensor,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    step: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
) -> Result<()> {
    for t in [param, grad, m, v] {
        t.expect_f32("adam_step")?;
        param.same_gpu(t, "adam_step")?;
    }
    if grad.shape() != param.shape() || m.shape() != param.shape() || v.shape() != param.shape() {
        return Err(Error::Shape {
            op: "adam_step",
            detail: format!(
                "param {:?}, grad {:?}, m {:?} and v {:?} must all be equal",
                param.shape(),
                grad.shape(),
                m.shape(),
                v.shape()
            ),
        });
    }
    let distinct = [param, grad, m, v]
        .iter()
        .enumerate()
        .all(|(i, a)| [param, grad, m, v][i + 1..].iter().all(|b| !same_buffer(a, b)));
    if !distinct {
        return Err(Error::InvalidArgument(
            "adam_step: param, grad, m and v must be distinct tensors".into(),
        ));
    }
    if step == 0 {
        return Err(Error::InvalidArgument(
            "adam_step: step counts from 1 (bias correction divides by 1 − β^step)".into(),
        ));
    }
    let valid_beta = |b: f32| (0.0..1.0).contains(&b);
    if !valid_beta(beta1) || !valid_beta(beta2) || eps.is_nan() || eps < 0.0 || !lr.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "adam_step: need 0 ≤ β1, β2 < 1, ε ≥ 0 and a finite lr; got β1 {beta1}, β2 {beta2}, ε {eps}, lr {lr}"
        )));
    }
    let n = param.numel();
    if n == 0 {
        return Ok(());
    }
    let (step_size, inv_sqrt_bc2) = bias_corrections(step, lr, beta1, beta2);
    let params = OptimParams {
        n: n as u32,
        beta1,
        beta2,
        eps,
        step_size,
        inv_sqrt_bc2,
        step,
        ..Default::default()
    };
    param.gpu().launch(
        &KERNEL,
        "adam_step",
        &[],
        &params,
        &[("param", param), ("grad", grad), ("m", m), ("v", v)],
        Grid::Linear(groups_for(n, WG)),
    )
}

/// `lr / (1 − β1^step)` and `1 / sqrt(1 − β2^step)`, in f64 before rounding to f32.
pub fn bias_corrections(step: u32, lr: f32, beta1: f32, beta2: f32) -> (f32, f32) {
    let t = step as i32;
    let bc1 = 1.0 - (beta1 as f64).powi(t);
    let bc2 = 1.0 - (beta2 as f64).powi(t);
    ((lr as f64 / bc1) as f32, (1.0 / bc2.sqrt()) as f32)
}

/// `t = clamp(t, lo, hi)` in place.
pub fn clamp_in_place(t: &Tensor, lo: f32, hi: f32) -> Result<()> {
    t.expect_f32("clamp_in_place")?;
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(Error::InvalidArgument(format!(
            "clamp_in_place: bounds [{lo}, {hi}] are empty"
        )));
    }
    let n = t.numel();
    if n == 0 {
        return Ok(());
    }
    let params = OptimParams {
        n: n as u32,
        lo,
        hi,
        ..Default::default()
    };
    t.gpu().launch(
        &KERNEL,
        "clamp_in_place",
        &[],
        &params,
        &[("param", t)],
        Grid::Linear(groups_for(n, WG)),
    )
}

/// Adam's state for one parameter tensor: the moment buffers and the step counter.
pub struct Adam {
    pub config: AdamConfig,
    m: Tensor,
    v: Tensor,
    step: u32,
}

impl Adam {
    /// Zeroed moments shaped like `param`.
    pub fn new(param: &Tensor, config: AdamConfig) -> Result<Adam> {
        param.expect_f32("Adam::new")?;
        Ok(Adam {
            config,
            m: Tensor::zeros(param.gpu(), param.shape())?,
            v: Tensor::zeros(param.gpu(), param.shape())?,
            step: 0,
        })
    }

    /// Advance the step counter and update `param` in place with learning rate `lr`.
    pub fn step(&mut self, param: &Tensor, grad: &Tensor, lr: f32) -> Result<()> {
        if param.shape() != self.m.shape() {
            return Err(Error::Shape {
                op: "Adam::step",
                detail: format!(
                    "param {:?} but the optimiser state is {:?}",
                    param.shape(),
                    self.m.shape()
                ),
            });
        }
        let c = self.config;
        adam_step(
            param,
            grad,
            &self.m,
            &self.v,
            self.step + 1,
            lr,
            c.beta1,
            c.beta2,
            c.eps,
        )?;
        self.step += 1;
        Ok(())
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u32 {
        self.step
    }
    pub fn first_moment(&self) -> &Tensor {
        &self.m
    }
    pub fn second_moment(&self) -> &Tensor {
        &self.v
    }
}

pub fn adam_cost(n: usize) -> Cost {
    Cost {
        flops: 12.0 * n as f64,
        bytes: 28.0 * n as f64,
    }
}

pub fn clamp_cost(n: usize) -> Cost {
    Cost {
        flops: 2.0 * n as f64,
        bytes: 8.0 * n as f64,
    }
}

fn same_buffer(a: &Tensor, b: &Tensor) -> bool {
    std::ptr::eq(a.buffer(), b.buffer())
}
