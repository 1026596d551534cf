//! Layout ops and their backward passes: constant padding and cropping of the last two axes,
//! slicing along any axis, concatenation, and permutation of axes. All are index maps over a
//! contiguous tensor.

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::ops::{contiguous_strides, pack_axes, Cost};
use crate::tensor::{numel, DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("layout");

/// Largest rank the layout kernels accept.
pub use super::MAX_RANK;
const WG: usize = 256;

crate::kernel_params! {
    /// One index map over up to [`MAX_RANK`] axes, innermost last; unused axes hold extent 1
    /// and offset 0.
    pub struct LayoutParams as "Params" {
        /// Invocations: output elements (`window`, `permute`) or input elements (`place`).
        n: u32,
        rank: u32,
        /// `window`: the fill outside the input.
        value: f32,
        _pad0: u32,
        /// The shape iterated over: the output's (`window`, `permute`) or the input's (`place`).
        iter_shape: [[u32; 4]; 2],
        /// `window`: the input shape.
        other_shape: [[u32; 4]; 2],
        /// `window`: the input strides; `place`: the output strides; `permute`: the input
        /// stride of the axis each output axis takes.
        other_strides: [[u32; 4]; 2],
        offset: [[i32; 4]; 2],
    }
}

/// Constant padding of the last two axes by `[top, bottom, left, right]`.
pub fn pad(x: &Tensor, pads: [usize; 4], value: f32) -> Result<Tensor> {
    let rank = need_rank(x, 2, "pad")?;
    let [top, bottom, left, right] = pads;
    let mut shape = x.shape().to_vec();
    shape[rank - 2] += top + bottom;
    shape[rank - 1] += left + right;
    let mut offsets = vec![0i64; rank];
    offsets[rank - 2] = top as i64;
    offsets[rank - 1] = left as i64;
    window(x, &shape, &offsets, value, "pad")
}

/// Gradient of [`pad`]: the cotangent cropped back to the unpadded size.
pub fn pad_backward(dy: &Tensor, pads: [usize; 4]) -> Result<Tensor> {
    let rank = need_rank(dy, 2, "pad_backward")?;
    let [top, bottom, left, right] = pads;
    let (h, w) = (dy.shape()[rank - 2], dy.shape()[rank - 1]);
    if top + bottom > h || left + right > w {
        return Err(Error::Shape {
            op: "pad_backward",
            detail: format!("cotangent {:?} is smaller than the padding {pads:?}", dy.shape()),
        });
    }
    crop(dy, top, left, h - top - bottom, w - left - right)
}

/// The `height × width` window of the last two axes starting at `(top, left)`.
pub fn crop(x: &Tensor, top: usize, left: usize, height: usize, width: usize) -> Result<Tensor> {
    let rank = need_rank(x, 2, "crop")?;
    let (h, w) = (x.shape()[rank - 2], x.shape()[rank - 1]);
    if top + height > h || left + width > w {
        return Err(Error::Shape {
            op: "crop",
            detail: format!(
                "window {height}×{width} at ({top}, {left}) leaves input {:?}",
                x.shape()
            ),
        });
    }
    let mut shape = x.shape().to_vec();
    shape[rank - 2] = height;
    shape[rank - 1] = width;
    let mut offsets = vec![0i64; rank];
    offsets[rank - 2] = -(top as i64);
    offsets[rank - 1] = -(left as i64);
    window(x, &shape, &offsets, 0.0, "crop")
}

/// Gradient of [`crop`]: the cotangent placed at `(top, left)` in zeros of `input_shape`.
pub fn crop_backward(dy: &Tensor, input_shape: &[usize], top: usize, left: usize) -> Result<Tensor> {
    let rank = need_rank(dy, 2, "crop_backward")?;
    let fits = input_shape.len() == rank
        && input_shape[..rank - 2] == dy.shape()[..rank - 2]
        && top + dy.shape()[rank - 2] <= input_shape[rank - 2]
        && left + dy.shape()[rank - 1] <= input_shape[rank - 1];
    if !fits {
        return Err(Error::Shape {
            op: "crop_backward",
            detail: format!(
                "cotangent {:?} at ({top}, {left}) does not fit input {input_shape:?}",
                dy.shape()
            ),
        });
    }
    let mut offsets = vec![0i64; rank];
    offsets[rank - 2] = top as i64;
    offsets[rank - 1] = left as i64;
    window(dy, input_shape, &offsets, 0.0, "crop_backward")
}

/// Elements `start..end` along `axis`.
pub fn slice(x: &Tensor, axis: usize, start: usize, end: usize) -> Result<Tensor> {
    let rank = need_rank(x, 1, "slice")?;
    if axis >= rank || start > end || end > x.shape()[axis] {
        return Err(Error::Shape {
            op: "slice",
            detail: format!("range {start}..{end} on axis {axis} of {:?}", x.shape()),
        });
    }
    let mut shape = x.shape().to_vec();
    shape[axis] = end - start;
    let mut offsets = vec![0i64; rank];
    offsets[axis] = -(start as i64);
    window(x, &shape, &offsets, 0.0, "slice")
}

/// Gradient of [`slice`]: the cotangent at `start` along `axis` in zeros of `input_shape`.
pub fn slice_backward(dy: &Tensor, input_shape: &[usize], axis: usize, start: usize) -> Result<Tensor> {
    let rank = need_rank(dy, 1, "slice_backward")?;
    let fits = input_shape.len() == rank
        && axis < rank
        && (0..rank).all(|d| d == axis || input_shape[d] == dy.shape()[d])
        && start + dy.shape()[axis] <= input_shape[axis];
    if !fits {
        return Err(Error::Shape {
            op: "slice_backward",
            detail: format!(
                "cotangent {:?} at {start} on axis {axis} does not fit input {input_shape:?}",
                dy.shape()
            ),
        });
    }
    let mut offsets = vec![0i64; rank];
    offsets[axis] = start as i64;
    window(dy, input_shape, &offsets, 0.0, "slice_backward")
}

/// Concatenation along axis 1 (channels of NCHW).
pub fn concat_channels(parts: &[&Tensor]) -> Result<Tensor> {
    concat(parts, 1)
}

/// Gradient of [`concat_channels`]: the cotangent split into parts of `channels` channels.
pub fn concat_channels_backward(dy: &Tensor, channels: &[usize]) -> Result<Vec<Tensor>> {
    concat_backward(dy, 1, channels)
}

/// Concatenation along `axis`; all other extents must agree.
pub fn concat(parts: &[&Tensor], axis: usize) -> Result<Tensor> {
    let first = parts.first().ok_or_else(|| Error::Shape {
        op: "concat",
        detail: "no tensors to concatenate".into(),
    })?;
    let rank = need_rank(first, 1, "concat")?;
    let shapes: Vec<_> = parts.iter().map(|t| t.shape().to_vec()).collect();
    let compatible = axis < rank
        && shapes
            .iter()
            .all(|s| s.len() == rank && (0..rank).all(|d| d == axis || s[d] == first.shape()[d]));
    if !compatible {
        return Err(Error::Shape {
            op: "concat",
            detail: format!("shapes {shapes:?} do not concatenate along axis {axis}"),
        });
    }
    for t in parts {
        t.expect_f32("concat")?;
        first.same_gpu(t, "concat")?;
    }
    let mut shape = first.shape().to_vec();
    shape[axis] = shapes.iter().map(|s| s[axis]).sum();
    let out = Tensor::empty(first.gpu(), &shape, DType::F32)?;
    let out_strides = contiguous_strides(&shape);
    let mut start = 0;
    for t in parts {
        let mut offsets = vec![0i64; rank];
        offsets[axis] = start as i64;
        start += t.shape()[axis];
        let n = t.numel();
        if n == 0 {
            continue;
        }
        let params = layout_params(n, t.shape(), &shape, &out_strides, &offsets, 0.0);
        out.gpu().launch(
            &KERNEL,
            "place",
            &[],
            &params,
            &[("src", t), ("dst", &out)],
            Grid::Linear(groups_for(n, WG)),
        )?;
    }
    Ok(out)
}

/// Gradient of [`concat`]: slices of `dy` along `axis` of the given sizes.
pub fn concat_backward(dy: &Tensor, axis: usize, sizes: &[usize]) -> Result<Vec<Tensor>> {
    let rank = need_rank(dy, 1, "concat_backward")?;
    if axis >= rank || sizes.iter().sum::<usize>() != dy.shape()[axis] || sizes.is_empty() {
        return Err(Error::Shape {
            op: "concat_backward",
            detail: format!(
                "sizes {sizes:?} do not split axis {axis} of cotangent {:?}",
                dy.shape()
            ),
        });
    }
    let mut start = 0;
    sizes
        .iter()
        .map(|&size| {
            start += size;
            slice(dy, axis, start - size, start)
        })
        .collect()
}

/// Largest rank [`permute`] accepts: ONNX Transpose in the models we run stays within it,
/// and the tests cover it (every permutation up to rank 4, samples of 5 and 6).
pub const MAX_PERMUTE_RANK: usize = 6;

/// The axes of `x` reordered: output axis `d` is input axis `perm[d]`, as NumPy's
/// `transpose(x, perm)` and ONNX Transpose.
pub fn permute(x: &Tensor, perm: &[usize]) -> Result<Tensor> {
    x.expect_f32("permute")?;
    let rank = x.rank();
    if rank == 0 || rank > MAX_PERMUTE_RANK {
        return Err(Error::Shape {
            op: "permute",
            detail: format!(
                "input {:?} must have between 1 and {MAX_PERMUTE_RANK} axes",
                x.shape()
            ),
        });
    }
    check_permutation(perm, rank)?;
    let shape: Vec<usize> = perm.iter().map(|&a| x.shape()[a]).collect();
    let out = Tensor::empty(x.gpu(), &shape, DType::F32)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    if n > u32::MAX as usize {
        return Err(Error::Shape {
            op: "permute",
            detail: format!("input {:?} is too large to index with 32-bit words", x.shape()),
        });
    }
    let input_strides = contiguous_strides(x.shape());
    let strides: Vec<usize> = perm.iter().map(|&a| input_strides[a]).collect();
    let params = layout_params(n, &shape, &shape, &strides, &[], 0.0);
    x.gpu().launch(
        &KERNEL,
        "permute",
        &[],
        &params,
        &[("src", x), ("dst", &out)],
        Grid::Linear(groups_for(n, WG)),
    )?;
    Ok(out)
}

/// The permutation that undoes `perm`: `permute(permute(x, perm), inverse) == x`, the rule
/// of [`permute`]'s gradient. `perm` must be a permutation.
pub fn inverse_permutation(perm: &[usize]) -> Result<Vec<usize>> {
    check_permutation(perm, perm.len())?;
    let mut inverse = vec![0; perm.len()];
    for (d, &axis) in perm.iter().enumerate() {
        inverse[axis] = d;
    }
    Ok(inverse)
}

/// `perm` must name each of the `rank` axes exactly once.
fn check_permutation(perm: &[usize], rank: usize) -> Result<()> {
    let problem = |detail: String| {
        Err(Error::Shape {
            op: "permute",
            detail,
        })
    };
    if perm.len() != rank {
        return problem(format!(
            "perm {perm:?} has {} axes but the input has {rank}",
            perm.len()
        ));
    }
    let mut seen = vec![false; rank];
    for &axis in perm {
        if axis >= rank {
            return problem(format!(
                "perm {perm:?} names axis {axis}, out of range for rank {rank}"
            ));
        }
        if std::mem::replace(&mut seen[axis], true) {
            return problem(format!("perm {perm:?} names axis {axis} twice"));
        }
    }
    Ok(())
}

/// A pure copy, as every layout op: reads and writes each output element once.
pub fn cost(output_elements: usize) -> Cost {
    Cost {
        flops: 0.0,
        bytes: 8.0 * output_elements as f64,
    }
}

/// `out[c] = x[c − offsets]` where that lies inside `x`, else `value`; `out` has `shape`.
fn window(x: &Tensor, shape: &[usize], offsets: &[i64], value: f32, op: &'static str) -> Result<Tensor> {
    x.expect_f32(op)?;
    let out = Tensor::empty(x.gpu(), shape, DType::F32)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    for (what, s) in [("output", shape), ("input", x.shape())] {
        if numel(s) > i32::MAX as usize {
            return Err(Error::Shape {
                op,
                detail: format!("{what} {s:?} is too large to index with 32-bit words"),
            });
        }
    }
    let params = layout_params(
        n,
        shape,
        x.shape(),
        &contiguous_strides(x.shape()),
        offsets,
        value,
    );
    x.gpu().launch(
        &KERNEL,
        "window",
        &[],
        &params,
        &[("src", x), ("dst", &out)],
        Grid::Linear(groups_for(n, WG)),
    )?;
    Ok(out)
}

fn layout_params(
    n: usize,
    iter_shape: &[usize],
    other_shape: &[usize],
    other_strides: &[usize],
    offsets: &[i64],
    value: f32,
) -> LayoutParams {
    let words = |list: &[usize]| pack_axes(list.iter().map(|&v| v as u32), 1);
    let offset = pack_axes(offsets.iter().map(|&v| v as i32), 0);
    LayoutParams {
        n: n as u32,
        rank: iter_shape.len() as u32,
        value,
        iter_shape: words(iter_shape),
        other_shape: words(other_shape),
        other_strides: words(other_strides),
        offset,
        ..Default::default()
    }
}

fn need_rank(x: &Tensor, min: usize, op: &'static str) -> Result<usize> {
    let rank = x.rank();
    if rank < min || rank > MAX_RANK {
        return Err(Error::Shape {
            op,
            detail: format!(
                "input {:?} must have between {min} and {MAX_RANK} axes",
                x.shape()
            ),
        });
    }
    Ok(rank)
}
