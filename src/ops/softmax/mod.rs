//! Softmax, log-softmax and logsumexp over the last axis.

pub mod reference;
pub mod subgroup;

use crate::gpu::{Gpu, Grid, Kernel, KernelProfile};
use crate::ops::reduce::LaneCombine;
use crate::ops::Cost;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("softmax");

crate::kernel_params! {
    /// `rows` rows of `len` values, one workgroup per row.
    pub struct SoftmaxParams as "Params" {
        rows: u32,
        len: u32,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SoftmaxKind {
    Softmax = 0,
    LogSoftmax = 1,
    LogSumExp = 2,
}

/// Workgroup width of the `gpu` kernel profile's row kernels; the `cpu` profile keeps the
/// kernel's default of 64.
const GPU_WG: f64 = 256.0;

/// The row kernels of `gpu`'s profile: `softmax.wgsl` as it always ran under `cpu`; under
/// `gpu`, 256 wide with the one-pass `*_online` forward entries, from
/// `softmax_subgroup.wgsl` when lanes combine by subgroups.
struct RowKernels {
    kernel: &'static Kernel,
    online: bool,
    width: Option<f64>,
}

impl RowKernels {
    fn for_gpu(gpu: &Gpu) -> Result<RowKernels> {
        Ok(match gpu.kernel_profile() {
            KernelProfile::Cpu => RowKernels {
                kernel: &KERNEL,
                online: false,
                width: None,
            },
            KernelProfile::Gpu => RowKernels {
                kernel: match LaneCombine::for_gpu(gpu)? {
                    LaneCombine::Subgroups => &subgroup::KERNEL,
                    LaneCombine::WorkgroupTree => &KERNEL,
                },
                online: true,
                width: Some(GPU_WG),
            },
        })
    }

    /// The forward entry `name`, or its one-pass form.
    fn forward(&self, name: &str) -> String {
        if self.online {
            format!("{name}_online")
        } else {
            name.to_string()
        }
    }

    fn constants(&self, mode: Option<SoftmaxKind>) -> Vec<(&'static str, f64)> {
        let mut c = Vec::new();
        if let Some(kind) = mode {
            c.push(("MODE", kind as u32 as f64));
        }
        if let Some(width) = self.width {
            c.push(("WG", width));
        }
        c
    }
}

fn rows_and_len(x: &Tensor) -> Result<(usize, usize)> {
    x.expect_f32("softmax")?;
    let len = *x.shape().last().ok_or_else(|| Error::Shape {
        op: "softmax",
        detail: "a scalar has no last axis".into(),
    })?;
    if len == 0 {
        return Err(Error::Shape {
            op: "softmax",
            detail: format!("last axis of {:?} is empty", x.shape()),
        });
    }
    Ok((x.numel() / len, len))
}

/// Softmax or log-softmax along the last axis; same shape as `x`.
/// For logsumexp use [`logsumexp`], which drops the last axis.
pub fn softmax_like(x: &Tensor, kind: SoftmaxKind) -> Result<Tensor> {
    let (rows, len) = rows_and_len(x)?;
    let out_shape = if kind == SoftmaxKind::LogSumExp {
        x.shape()[..x.rank() - 1].to_vec()
    } else {
        x.shape().to_vec()
    };
    let out = Tensor::empty(x.gpu(), &out_shape, DType::F32)?;
    let params = SoftmaxParams {
        rows: rows as u32,
        len: len as u32,
    };
    let rk = RowKernels::for_gpu(x.gpu())?;
    x.gpu().launch(
        rk.kernel,
        &rk.forward("softmax_rows"),
        &rk.constants(Some(kind)),
        &params,
        &[("x", x), ("out", &out)],
        Grid::Linear(rows as u32),
    )?;
    Ok(out)
}

pub fn softmax(x: &Tensor) -> Result<Tensor> {
    softmax_like(x, SoftmaxKind::Softmax)
}
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    softmax_like(x, SoftmaxKind::LogSoftmax)
}
pub fn logsumexp(x: &Tensor) -> Result<Tensor> {
    softmax_like(x, SoftmaxKind::LogSumExp)
}

/// Gradient of softmax or log-softmax given its output `y` and the output gradient `dy`.
pub fn softmax_backward(y: &Tensor, dy: &Tensor, kind: SoftmaxKind) -> Result<Tensor> {
    let (rows, len) = rows_and_len(y)?;
    if y.shape() != dy.shape() {
        return Err(Error::Shape {
            op: "softmax_backward",
            detail: format!("output {:?} vs gradient {:?}", y.shape(), dy.shape()),
        });
    }
    let entry = match kind {
        SoftmaxKind::Softmax => "softmax_backward",
        SoftmaxKind::LogSoftmax => "log_softmax_backward",
        SoftmaxKind::LogSumExp => {
            return Err(Error::InvalidArgument(
                "logsumexp backward is softmax(x)·dy".into(),
            ))
        }
    };
    let dx = Tensor::empty(y.gpu(), y.shape(), DType::F32)?;
    let params = SoftmaxParams {
        rows: rows as u32,
        len: len as u32,
    };
    let rk = RowKernels::for_gpu(y.gpu())?;
    y.gpu().launch(
        rk.kernel,
        entry,
        &rk.constants(None),
        &params,
        &[("x", y), ("dy", dy), ("dx", &dx)],
        Grid::Linear(rows as u32),
    )?;
    Ok(dx)
}

fn check_labels(op: &'static str, logits: &Tensor, labels: &Tensor) -> Result<(usize, usize)> {
    let (rows, len) = rows_and_len(logits)?;
    if labels.dtype() != DType::U32 || labels.numel() != rows {
        return Err(Error::Shape {
            op,
            detail: format!(
                "{rows} rows of logits {:?} need {rows} u32 labels, got {:?} {:?}",
                logits.shape(),
                labels.dtype(),
                labels.shape()
            ),
        });
    }
    Ok((rows, len))
}

/// Per-row log-odds of the labelled class, `log p_c − log(1 − p_c)`, from logits `[rows, classes]`
/// and u32 `labels` `[rows]`; returns `[rows]`. Labels must be below the class count (checked
/// by the caller, who knows them on the host).
pub fn log_odds(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (rows, len) = check_labels("log_odds", logits, labels)?;
    if len < 2 {
        return Err(Error::Shape {
            op: "log_odds",
            detail: "log-odds need at least two classes".into(),
        });
    }
    let out = Tensor::empty(logits.gpu(), &[rows], DType::F32)?;
    let params = SoftmaxParams {
        rows: rows as u32,
        len: len as u32,
    };
    let t = [("x", logits), ("labels", labels), ("scores", &out)];
    let rk = RowKernels::for_gpu(logits.gpu())?;
    logits.gpu().launch(
        rk.kernel,
        &rk.forward("log_odds_rows"),
        &rk.constants(None),
        &params,
        &t,
        Grid::Linear(rows as u32),
    )?;
    Ok(out)
}

/// Gradient of [`log_odds`] with respect to the logits, given `dy` of shape `[rows]`.
pub fn log_odds_backward(logits: &Tensor, labels: &Tensor, dy: &Tensor) -> Result<Tensor> {
    let (rows, len) = check_labels("log_odds_backward", logits, labels)?;
    if dy.numel() != rows {
        return Err(Error::Shape {
            op: "log_odds_backward",
            detail: format!("{rows} rows but gradient {:?}", dy.shape()),
        });
    }
    let dx = Tensor::empty(logits.gpu(), logits.shape(), DType::F32)?;
    let params = SoftmaxParams {
        rows: rows as u32,
        len: len as u32,
    };
    let t = [("x", logits), ("dx", &dx), ("labels", labels), ("dscores", dy)];
    let rk = RowKernels::for_gpu(logits.gpu())?;
    logits.gpu().launch(
        rk.kernel,
        &rk.forward("log_odds_backward"),
        &rk.constants(None),
        &params,
        &t,
        Grid::Linear(rows as u32),
    )?;
    Ok(dx)
}

pub fn cost(n: usize) -> Cost {
    Cost {
        flops: 4.0 * n as f64,
        bytes: 8.0 * n as f64,
    }
}
