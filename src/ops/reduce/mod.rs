//! Sum, mean and max over one axis or over all elements.

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::ops::Cost;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("reduce");

crate::kernel_params! {
    /// `rows × len × inner` values reduced along `len`; `total` bounds a short last row and
    /// `scale` multiplies sums (1/len for a mean).
    pub struct ReduceParams as "Params" {
        rows: u32,
        len: u32,
        inner: u32,
        total: u32,
        scale: f32,
    }
}

const WG: usize = 128;
/// Elements each workgroup folds in one pass of a full reduction.
const CHUNK: usize = WG * 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Mean,
    Max,
}

impl Reduction {
    fn code(self) -> u32 {
        match self {
            Reduction::Sum | Reduction::Mean => 0,
            Reduction::Max => 1,
        }
    }
}

/// Reduce `axis`, keeping it as a length-1 axis when `keep_dim`.
pub fn reduce_axis(x: &Tensor, axis: usize, op: Reduction, keep_dim: bool) -> Result<Tensor> {
    x.expect_f32("reduce")?;
    if axis >= x.rank() {
        return Err(Error::Shape {
            op: "reduce",
            detail: format!("axis {axis} out of range for shape {:?}", x.shape()),
        });
    }
    let shape = x.shape();
    let outer: usize = shape[..axis].iter().product();
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    if len == 0 {
        return Err(Error::Shape {
            op: "reduce",
            detail: format!("axis {axis} of {shape:?} is empty"),
        });
    }
    let mut out_shape = shape.to_vec();
    if keep_dim {
        out_shape[axis] = 1;
    } else {
        out_shape.remove(axis);
    }
    let out = Tensor::empty(x.gpu(), &out_shape, DType::F32)?;
    let scale = if op == Reduction::Mean {
        1.0 / len as f32
    } else {
        1.0
    };
    let constants = [("OP", op.code() as f64)];
    if inner == 1 {
        let params = ReduceParams {
            rows: outer as u32,
            len: len as u32,
            inner: 1,
            total: (outer * len) as u32,
            scale,
        };
        x.gpu().launch(
            &KERNEL,
            "reduce_rows",
            &constants,
            &params,
            &[("x", x), ("out", &out)],
            Grid::Linear(outer as u32),
        )?;
    } else {
        let params = ReduceParams {
            rows: outer as u32,
            len: len as u32,
            inner: inner as u32,
            total: x.numel() as u32,
            scale,
        };
        x.gpu().launch(
            &KERNEL,
            "reduce_strided",
            &constants,
            &params,
            &[("x", x), ("out", &out)],
            Grid::Linear(groups_for(outer * inner, WG)),
        )?;
    }
    Ok(out)
}

/// Reduce every element to a tensor of shape `[1]`, in passes of `CHUNK`-element rows.
pub fn reduce_all(x: &Tensor, op: Reduction) -> Result<Tensor> {
    x.expect_f32("reduce")?;
    let n = x.numel();
    if n == 0 {
        return Err(Error::Shape {
            op: "reduce",
            detail: "cannot reduce an empty tensor".into(),
        });
    }
    let constants = [("OP", op.code() as f64)];
    let mut current = x.reshape(&[n])?;
    loop {
        let len = current.numel();
        let rows = len.div_ceil(CHUNK);
        let last = rows == 1;
        let scale = if last && op == Reduction::Mean {
            1.0 / n as f32
        } else {
            1.0
        };
        let out = Tensor::empty(x.gpu(), &[rows], DType::F32)?;
        let params = ReduceParams {
            rows: rows as u32,
            len: CHUNK as u32,
            inner: 1,
            total: len as u32,
            scale,
        };
        x.gpu().launch(
            &KERNEL,
            "reduce_rows",
            &constants,
            &params,
            &[("x", &current), ("out", &out)],
            Grid::Linear(rows as u32),
        )?;
        current = out;
        if last {
            return Ok(current);
        }
    }
}

pub fn sum(x: &Tensor) -> Result<Tensor> {
    reduce_all(x, Reduction::Sum)
}
pub fn mean(x: &Tensor) -> Result<Tensor> {
    reduce_all(x, Reduction::Mean)
}
pub fn max(x: &Tensor) -> Result<Tensor> {
    reduce_all(x, Reduction::Max)
}

pub fn cost(n: usize) -> Cost {
    Cost {
        flops: n as f64,
        bytes: 4.0 * n as f64,
    }
}
