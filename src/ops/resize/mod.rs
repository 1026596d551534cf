//! Bilinear and nearest resizing of NCHW tensors, with their backward passes.
//!
//! Bilinear follows PyTorch `F.interpolate(mode="bilinear")` for both `align_corners`
//! values (no antialiasing). Nearest offers PyTorch's `"nearest"` rule and TF1's
//! `align_corners=True` rule, which the in-painting network was trained with.

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::ops::Cost;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("resize");

const WG: usize = 256;

crate::kernel_params! {
    /// One resize launch over NCHW planes.
    pub struct ResizeParams as "Params" {
        /// Invocations: outputs (forward) or inputs (backward).
        total: u32,
        in_h: u32,
        in_w: u32,
        out_h: u32,
        out_w: u32,
        /// Source step per output step, in f32 as the reference library computes it.
        scale_h: f32,
        scale_w: f32,
        /// Bilinear: 1 = align_corners; nearest: 0 = torch, 1 = TF align_corners.
        mode: u32,
    }
}

/// How nearest resizing maps an output index to a source index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NearestMode {
    /// PyTorch `"nearest"`: `min(floor(dst · f32(in / out)), in − 1)`.
    Torch,
    /// TF1 `align_corners=True`: `min(roundf(dst · f32((in − 1) / (out − 1))), in − 1)`,
    /// rounding half away from zero.
    TfAlignCorners,
}

impl NearestMode {
    /// The f32 scale the source index is computed with, as the originating library does.
    pub fn scale(self, n_in: usize, n_out: usize) -> f32 {
        match self {
            NearestMode::Torch => n_in as f32 / n_out as f32,
            NearestMode::TfAlignCorners if n_out > 1 => (n_in - 1) as f32 / (n_out - 1) as f32,
            NearestMode::TfAlignCorners => 0.0,
        }
    }

    fn code(self) -> u32 {
        match self {
            NearestMode::Torch => 0,
            NearestMode::TfAlignCorners => 1,
        }
    }
}

/// PyTorch's f32 bilinear scale: `(in − 1) / (out − 1)` aligned (0 for one output), else `in / out`.
pub fn bilinear_scale(n_in: usize, n_out: usize, align_corners: bool) -> f32 {
    if align_corners {
        if n_out > 1 {
            (n_in - 1) as f32 / (n_out - 1) as f32
        } else {
            0.0
        }
    } else {
        n_in as f32 / n_out as f32
    }
}

/// Bilinear resize of `[N, C, H, W]` to `[N, C, out_h, out_w]`.
pub fn resize_bilinear(x: &Tensor, out_h: usize, out_w: usize, align_corners: bool) -> Result<Tensor> {
    let (h, w) = spatial("resize_bilinear", x)?;
    let plan = Plan::bilinear("resize_bilinear", x, [h, w], [out_h, out_w], align_corners)?;
    run(x, "x", [out_h, out_w], "bilinear_forward", plan, 4)
}

/// Gradient of [`resize_bilinear`] with respect to its `in_h`×`in_w` input.
pub fn resize_bilinear_backward(
    dy: &Tensor,
    in_h: usize,
    in_w: usize,
    align_corners: bool,
) -> Result<Tensor> {
    let op = "resize_bilinear_backward";
    let (out_h, out_w) = spatial(op, dy)?;
    let plan = Plan::bilinear(op, dy, [in_h, in_w], [out_h, out_w], align_corners)?;
    run(dy, "dy", [in_h, in_w], "bilinear_backward", plan, 1)
}

/// Nearest resize of `[N, C, H, W]` to `[N, C, out_h, out_w]`.
pub fn resize_nearest(x: &Tensor, out_h: usize, out_w: usize, mode: NearestMode) -> Result<Tensor> {
    let (h, w) = spatial("resize_nearest", x)?;
    let plan = Plan::nearest("resize_nearest", x, [h, w], [out_h, out_w], mode)?;
    run(x, "x", [out_h, out_w], "nearest_forward", plan, 1)
}

/// Gradient of [`resize_nearest`]: each input sums the `dy` of the outputs that picked it.
pub fn resize_nearest_backward(dy: &Tensor, in_h: usize, in_w: usize, mode: NearestMode) -> Result<Tensor> {
    let op = "resize_nearest_backward";
    let (out_h, out_w) = spatial(op, dy)?;
    let plan = Plan::nearest(op, dy, [in_h, in_w], [out_h, out_w], mode)?;
    run(dy, "dy", [in_h, in_w], "nearest_backward", plan, 1)
}

/// Bilinear forward over `planes` = N·C planes: four taps and three lerps per output.
pub fn resize_bilinear_cost(planes: usize, in_hw: [usize; 2], out_hw: [usize; 2]) -> Cost {
    let outputs = (planes * out_hw[0] * out_hw[1]) as f64;
    Cost {
        flops: 9.0 * outputs,
        bytes: 4.0 * (outputs + (planes * in_hw[0] * in_hw[1]) as f64),
    }
}

/// Bilinear gather backward: each input visits about (2·out/in + 3)² outputs per plane.
pub fn resize_bilinear_backward_cost(planes: usize, in_hw: [usize; 2], out_hw: [usize; 2]) -> Cost {
    let inputs = (planes * in_hw[0] * in_hw[1]) as f64;
    let visits = |i: usize, o: usize| 2.0 * o as f64 / i as f64 + 3.0;
    Cost {
        flops: 4.0 * inputs * visits(in_hw[0], out_hw[0]) * visits(in_hw[1], out_hw[1]),
        bytes: 4.0 * (inputs + (planes * out_hw[0] * out_hw[1]) as f64),
    }
}

/// Nearest forward or backward: pure data movement.
pub fn resize_nearest_cost(planes: usize, in_hw: [usize; 2], out_hw: [usize; 2]) -> Cost {
    Cost {
        flops: 0.0,
        bytes: 4.0 * (planes * (in_hw[0] * in_hw[1] + out_hw[0] * out_hw[1])) as f64,
    }
}

fn spatial(op: &'static str, x: &Tensor) -> Result<(usize, usize)> {
    x.expect_f32(op)?;
    if x.rank() != 4 {
        return Err(Error::Shape {
            op,
            detail: format!("expected an NCHW tensor, got shape {:?}", x.shape()),
        });
    }
    Ok((x.shape()[2], x.shape()[3]))
}

struct Plan {
    in_hw: [usize; 2],
    out_hw: [usize; 2],
    scale: [f32; 2],
    mode: u32,
}

impl Plan {
    fn bilinear(
        op: &'static str,
        t: &Tensor,
        in_hw: [usize; 2],
        out_hw: [usize; 2],
        align_corners: bool,
    ) -> Result<Plan> {
        check_sizes(op, t, in_hw, out_hw)?;
        Ok(Plan {
            in_hw,
            out_hw,
            scale: [
                bilinear_scale(in_hw[0], out_hw[0], align_corners),
                bilinear_scale(in_hw[1], out_hw[1], align_corners),
            ],
            mode: align_corners as u32,
        })
    }

    fn nearest(
        op: &'static str,
        t: &Tensor,
        in_hw: [usize; 2],
        out_hw: [usize; 2],
        mode: NearestMode,
    ) -> Result<Plan> {
        check_sizes(op, t, in_hw, out_hw)?;
        Ok(Plan {
            in_hw,
            out_hw,
            scale: [mode.scale(in_hw[0], out_hw[0]), mode.scale(in_hw[1], out_hw[1])],
            mode: mode.code(),
        })
    }
}

fn check_sizes(op: &'static str, t: &Tensor, in_hw: [usize; 2], out_hw: [usize; 2]) -> Result<()> {
    if in_hw.contains(&0) || out_hw.contains(&0) {
        return Err(Error::Shape {
            op,
            detail: format!(
                "tensor {:?}: resizing {}×{} to {}×{} needs non-empty sizes",
                t.shape(),
                in_hw[0],
                in_hw[1],
                out_hw[0],
                out_hw[1]
            ),
        });
    }
    Ok(())
}

/// Launch over the `[N, C, result_hw]` result, reading `src` bound as the buffer `name`
/// (`x` forward, `dy` backward); each invocation writes `per_row_block` adjacent outputs of a row.
fn run(
    src: &Tensor,
    name: &str,
    result_hw: [usize; 2],
    entry: &str,
    plan: Plan,
    per_row_block: usize,
) -> Result<Tensor> {
    let shape = [src.shape()[0], src.shape()[1], result_hw[0], result_hw[1]];
    let out = Tensor::empty(src.gpu(), &shape, DType::F32)?;
    if out.numel() == 0 {
        return Ok(out);
    }
    let total = shape[0] * shape[1] * shape[2] * shape[3].div_ceil(per_row_block);
    let params = ResizeParams {
        total: total as u32,
        in_h: plan.in_hw[0] as u32,
        in_w: plan.in_hw[1] as u32,
        out_h: plan.out_hw[0] as u32,
        out_w: plan.out_hw[1] as u32,
        scale_h: plan.scale[0],
        scale_w: plan.scale[1],
        mode: plan.mode,
    };
    src.gpu().launch(
        &KERNEL,
        entry,
        &[("WG", WG as f64)],
        &params,
        &[(name, src), ("out", &out)],
        Grid::Linear(groups_for(total, WG)),
    )?;
    Ok(out)
}
