//! Sum, mean and max over one axis or over all elements.

pub mod reference;
pub mod subgroup;

use crate::gpu::{groups_for, Gpu, Grid, Kernel, KernelProfile};
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

/// Invocations per workgroup under the `cpu` kernel profile (the kernel's default) and the
/// `gpu` one, where wider workgroups keep more loads in flight.
const CPU_WG: usize = 128;
const GPU_WG: usize = 256;
/// Elements each invocation folds in one pass of a full reduction.
const CHUNK_PER_INVOCATION: usize = 64;

/// How the `gpu` kernel profile's row kernels (here and in `ops::softmax`) combine the
/// partial results of a workgroup's invocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneCombine {
    /// `subgroupAdd`/`subgroupMax`, then one partial per subgroup through workgroup memory
    /// (the `*_subgroup` kernels); needs `wgpu::Features::SUBGROUP`.
    Subgroups,
    /// A tree in workgroup memory, which every device runs.
    WorkgroupTree,
}

impl LaneCombine {
    /// The combine set with `gpu.set_tuning(Some(LaneCombine::..))`, else subgroups where the
    /// device has them. Asking for subgroups on a device without them is an error.
    pub fn for_gpu(gpu: &Gpu) -> Result<LaneCombine> {
        let has_subgroups = gpu.features().contains(wgpu::Features::SUBGROUP);
        match gpu.tuning::<LaneCombine>() {
            Some(LaneCombine::Subgroups) if !has_subgroups => Err(Error::InvalidArgument(
                "LaneCombine::Subgroups needs a device with wgpu::Features::SUBGROUP; use LaneCombine::WorkgroupTree".into(),
            )),
            Some(chosen) => Ok(chosen),
            None if has_subgroups => Ok(LaneCombine::Subgroups),
            None => Ok(LaneCombine::WorkgroupTree),
        }
    }

    /// Every combine `gpu` can run, for tests and benchmarks that cover each.
    pub fn available(gpu: &Gpu) -> Vec<LaneCombine> {
        let mut all = vec![LaneCombine::WorkgroupTree];
        if gpu.features().contains(wgpu::Features::SUBGROUP) {
            all.insert(0, LaneCombine::Subgroups);
        }
        all
    }
}

/// The row kernel for `gpu`'s profile and its workgroup size: `reduce_rows` from
/// `reduce.wgsl` with the kernel's default width under `cpu`; 256 wide under `gpu`, from
/// `reduce_subgroup.wgsl` when lanes combine by subgroups.
fn rows_kernel(gpu: &Gpu) -> Result<(&'static Kernel, usize)> {
    let kernel = match gpu.kernel_profile() {
        KernelProfile::Cpu => &KERNEL,
        KernelProfile::Gpu => match LaneCombine::for_gpu(gpu)? {
            LaneCombine::Subgroups => &subgroup::KERNEL,
            LaneCombine::WorkgroupTree => &KERNEL,
        },
    };
    Ok((kernel, workgroup_width(gpu)))
}

/// The workgroup width of `gpu`'s profile.
fn workgroup_width(gpu: &Gpu) -> usize {
    match gpu.kernel_profile() {
        KernelProfile::Cpu => CPU_WG,
        KernelProfile::Gpu => GPU_WG,
    }
}

/// Override constants for reduction `op` at workgroup width `wg`; the `cpu` width is the
/// kernel's default, so its pipelines are the ones it always had.
fn constants(op: Reduction, wg: usize) -> Vec<(&'static str, f64)> {
    let mut c = vec![("OP", op.code() as f64)];
    if wg != CPU_WG {
        c.push(("WG", wg as f64));
    }
    c
}

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
    let gpu = x.gpu();
    if inner == 1 {
        let (kernel, wg) = rows_kernel(gpu)?;
        let params = ReduceParams {
            rows: outer as u32,
            len: len as u32,
            inner: 1,
            total: (outer * len) as u32,
            scale,
        };
        gpu.launch(
            kernel,
            "reduce_rows",
            &constants(op, wg),
            &params,
            &[("x", x), ("out", &out)],
            Grid::Linear(outer as u32),
        )?;
    } else {
        let wg = workgroup_width(gpu);
        let params = ReduceParams {
            rows: outer as u32,
            len: len as u32,
            inner: inner as u32,
            total: x.numel() as u32,
            scale,
        };
        gpu.launch(
            &KERNEL,
            "reduce_strided",
            &constants(op, wg),
            &params,
            &[("x", x), ("out", &out)],
            Grid::Linear(groups_for(outer * inner, wg)),
        )?;
    }
    Ok(out)
}

/// Reduce every element to a tensor of shape `[1]`, in passes of rows of
/// `CHUNK_PER_INVOCATION` elements per invocation of the row kernel.
pub fn reduce_all(x: &Tensor, op: Reduction) -> Result<Tensor> {
    x.expect_f32("reduce")?;
    let n = x.numel();
    if n == 0 {
        return Err(Error::Shape {
            op: "reduce",
            detail: "cannot reduce an empty tensor".into(),
        });
    }
    let (kernel, wg) = rows_kernel(x.gpu())?;
    let constants = constants(op, wg);
    let chunk = wg * CHUNK_PER_INVOCATION;
    let mut current = x.reshape(&[n])?;
    loop {
        let len = current.numel();
        let rows = len.div_ceil(chunk);
        let last = rows == 1;
        let scale = if last && op == Reduction::Mean {
            1.0 / n as f32
        } else {
            1.0
        };
        let out = Tensor::empty(x.gpu(), &[rows], DType::F32)?;
        let params = ReduceParams {
            rows: rows as u32,
            len: chunk as u32,
            inner: 1,
            total: len as u32,
            scale,
        };
        x.gpu().launch(
            kernel,
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
