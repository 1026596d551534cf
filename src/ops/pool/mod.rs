//! 2-D pooling over NCHW tensors: max, average, global average and adaptive average,
//! each with its backward. PyTorch semantics (floor mode, padding at most half the kernel).

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::ops::Cost;
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("pool");

const WG: usize = 256;

crate::kernel_params! {
    /// Window geometry of one pooling launch over NCHW planes.
    pub struct PoolParams as "Params" {
        /// Invocations: outputs (forward) or inputs (backward).
        total: u32,
        in_h: u32,
        in_w: u32,
        out_h: u32,
        out_w: u32,
        kh: u32,
        kw: u32,
        sh: u32,
        sw: u32,
        ph: u32,
        pw: u32,
        /// Average pooling: 1 divides by the padded window size.
        include_pad: u32,
    }
}

/// Window geometry of one pooling op, checked against an input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl PoolGeometry {
    /// Output size `floor((in + 2·pad − k) / stride) + 1`, with PyTorch's argument rules.
    pub fn new(
        op: &'static str,
        in_h: usize,
        in_w: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Result<Self> {
        let bad = |detail: String| Err(Error::Shape { op, detail });
        if kernel.contains(&0) || stride.contains(&0) {
            return bad(format!(
                "kernel {kernel:?} and stride {stride:?} must be positive"
            ));
        }
        if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
            return bad(format!("padding {padding:?} exceeds half the kernel {kernel:?}"));
        }
        if in_h == 0 || in_w == 0 {
            return bad(format!("input plane {in_h}×{in_w} is empty"));
        }
        let padded = [in_h + 2 * padding[0], in_w + 2 * padding[1]];
        if kernel[0] > padded[0] || kernel[1] > padded[1] {
            return bad(format!(
                "kernel {kernel:?} is larger than the padded input {}×{}",
                padded[0], padded[1]
            ));
        }
        Ok(Self {
            in_h,
            in_w,
            out_h: (padded[0] - kernel[0]) / stride[0] + 1,
            out_w: (padded[1] - kernel[1]) / stride[1] + 1,
            kernel,
            stride,
            padding,
        })
    }

    fn params(&self, total: usize, include_pad: bool) -> PoolParams {
        PoolParams {
            total: total as u32,
            in_h: self.in_h as u32,
            in_w: self.in_w as u32,
            out_h: self.out_h as u32,
            out_w: self.out_w as u32,
            kh: self.kernel[0] as u32,
            kw: self.kernel[1] as u32,
            sh: self.stride[0] as u32,
            sw: self.stride[1] as u32,
            ph: self.padding[0] as u32,
            pw: self.padding[1] as u32,
            include_pad: include_pad as u32,
        }
    }

    /// Output windows that contain one input element, at most, along each axis.
    fn windows_per_input(&self) -> usize {
        self.kernel[0].div_ceil(self.stride[0]) * self.kernel[1].div_ceil(self.stride[1])
    }
}

/// Max pooling; padding counts as −inf and ties go to the first maximum in row-major order.
pub fn max_pool2d(x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Tensor> {
    let (planes, g) = geometry("max_pool2d", x, kernel, stride, padding)?;
    forward(x, planes, &g, "max_forward", false)
}

/// Gradient of [`max_pool2d`] with respect to `x`: each `dy` element goes to its window's argmax.
pub fn max_pool2d_backward(
    x: &Tensor,
    dy: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<Tensor> {
    let op = "max_pool2d_backward";
    let (_, g) = geometry(op, x, kernel, stride, padding)?;
    backward(op, Some(x), dy, &g, "max_backward", false)
}

/// Average pooling; with `count_include_pad` the divisor counts padded positions too.
pub fn avg_pool2d(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
) -> Result<Tensor> {
    let (planes, g) = geometry("avg_pool2d", x, kernel, stride, padding)?;
    forward(x, planes, &g, "avg_forward", count_include_pad)
}

/// Gradient of [`avg_pool2d`] with respect to its input of spatial size `in_h`×`in_w`.
pub fn avg_pool2d_backward(
    dy: &Tensor,
    in_h: usize,
    in_w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
) -> Result<Tensor> {
    let op = "avg_pool2d_backward";
    let g = PoolGeometry::new(op, in_h, in_w, kernel, stride, padding)?;
    backward(op, None, dy, &g, "avg_backward", count_include_pad)
}

/// Mean over each plane: `[N, C, H, W] -> [N, C, 1, 1]`.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let (h, w) = spatial("global_avg_pool", x)?;
    avg_pool2d(x, [h, w], [1, 1], [0, 0], false)
}

/// Gradient of [`global_avg_pool`]: `dy / (H·W)` spread over each plane.
pub fn global_avg_pool_backward(dy: &Tensor, in_h: usize, in_w: usize) -> Result<Tensor> {
    expect_spatial("global_avg_pool_backward", dy, 1, 1)?;
    avg_pool2d_backward(dy, in_h, in_w, [in_h, in_w], [1, 1], [0, 0], false)
}

/// Adaptive average pooling to `out_h`×`out_w`, for outputs that divide the input evenly,
/// where it equals average pooling with kernel = stride = input / output. For any sizes
/// (PyTorch's uneven or overlapping windows, or an output larger than the input) use
/// [`adaptive_avg_pool2d_general`].
pub fn adaptive_avg_pool2d(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    let (h, w) = spatial("adaptive_avg_pool2d", x)?;
    let k = adaptive_kernel("adaptive_avg_pool2d", h, w, out_h, out_w)?;
    avg_pool2d(x, k, k, [0, 0], false)
}

/// Gradient of [`adaptive_avg_pool2d`] with respect to its `in_h`×`in_w` input.
pub fn adaptive_avg_pool2d_backward(dy: &Tensor, in_h: usize, in_w: usize) -> Result<Tensor> {
    let op = "adaptive_avg_pool2d_backward";
    let (out_h, out_w) = spatial(op, dy)?;
    let k = adaptive_kernel(op, in_h, in_w, out_h, out_w)?;
    avg_pool2d_backward(dy, in_h, in_w, k, k, [0, 0], false)
}

/// Adaptive average pooling to `out_h`×`out_w` for any input size, as PyTorch's
/// `AdaptiveAvgPool2d`: output `(i, j)` averages input rows `floor(i·H/out_h)` up to
/// `ceil((i+1)·H/out_h)` (exclusive), and likewise for columns. An output larger than the
/// input repeats input elements (VGG pools a 1×1 map to 7×7 at small inputs).
pub fn adaptive_avg_pool2d_general(x: &Tensor, out_h: usize, out_w: usize) -> Result<Tensor> {
    const OP: &str = "adaptive_avg_pool2d_general";
    let (h, w) = spatial(OP, x)?;
    check_adaptive_sizes(OP, h, w, out_h, out_w)?;
    let shape = [x.shape()[0], x.shape()[1], out_h, out_w];
    let out = Tensor::empty(x.gpu(), &shape, DType::F32)?;
    let total = out.numel();
    if total == 0 {
        return Ok(out);
    }
    x.gpu().launch(
        &KERNEL,
        "adaptive_forward",
        &[("WG", WG as f64)],
        &adaptive_params(total, h, w, out_h, out_w),
        &[("x", x), ("out", &out)],
        Grid::Linear(groups_for(total, WG)),
    )?;
    Ok(out)
}

/// Gradient of [`adaptive_avg_pool2d_general`] with respect to its `in_h`×`in_w` input: a
/// gather in which each input element sums `dy / window size` over the windows holding it.
pub fn adaptive_avg_pool2d_general_backward(dy: &Tensor, in_h: usize, in_w: usize) -> Result<Tensor> {
    const OP: &str = "adaptive_avg_pool2d_general_backward";
    let (out_h, out_w) = spatial(OP, dy)?;
    check_adaptive_sizes(OP, in_h, in_w, out_h, out_w)?;
    let shape = [dy.shape()[0], dy.shape()[1], in_h, in_w];
    let out = Tensor::empty(dy.gpu(), &shape, DType::F32)?;
    let total = out.numel();
    if total == 0 {
        return Ok(out);
    }
    dy.gpu().launch(
        &KERNEL,
        "adaptive_backward",
        &[("WG", WG as f64)],
        &adaptive_params(total, in_h, in_w, out_h, out_w),
        &[("dy", dy), ("out", &out)],
        Grid::Linear(groups_for(total, WG)),
    )?;
    Ok(out)
}

/// Cost of [`adaptive_avg_pool2d_general`] or its backward over `planes` = N·C planes: every
/// window tap is read once (forward) or gathered once (backward).
pub fn adaptive_avg_pool2d_general_cost(planes: usize, in_hw: [usize; 2], out_hw: [usize; 2]) -> Cost {
    let taps = |n_in: usize, n_out: usize| -> usize {
        (0..n_out).map(|o| adaptive_window(o, n_in, n_out).len()).sum()
    };
    let per_plane_taps = taps(in_hw[0], out_hw[0]) * taps(in_hw[1], out_hw[1]);
    Cost {
        flops: (planes * per_plane_taps) as f64,
        bytes: 4.0 * (planes * (in_hw[0] * in_hw[1] + out_hw[0] * out_hw[1])) as f64,
    }
}

/// The input indices `[start, end)` that adaptive pooling averages for output index `o`.
pub fn adaptive_window(o: usize, n_in: usize, n_out: usize) -> std::ops::Range<usize> {
    (o * n_in) / n_out..((o + 1) * n_in).div_ceil(n_out)
}

/// Cost of a pooling forward over `planes` = N·C planes: one read per window tap.
pub fn pool2d_cost(planes: usize, g: &PoolGeometry) -> Cost {
    let outputs = (planes * g.out_h * g.out_w) as f64;
    let taps = (g.kernel[0] * g.kernel[1]) as f64;
    Cost {
        flops: outputs * taps,
        bytes: 4.0 * (outputs + (planes * g.in_h * g.in_w) as f64),
    }
}

/// Cost of the gather backward of max pooling, which recomputes each covering window's argmax.
pub fn max_pool2d_backward_cost(planes: usize, g: &PoolGeometry) -> Cost {
    let inputs = (planes * g.in_h * g.in_w) as f64;
    let windows = g.windows_per_input() as f64;
    let taps = (g.kernel[0] * g.kernel[1]) as f64;
    Cost {
        flops: inputs * windows * taps,
        bytes: 4.0 * (2.0 * inputs + (planes * g.out_h * g.out_w) as f64),
    }
}

/// Cost of the gather backward of average pooling (global and adaptive included).
pub fn avg_pool2d_backward_cost(planes: usize, g: &PoolGeometry) -> Cost {
    let inputs = (planes * g.in_h * g.in_w) as f64;
    Cost {
        flops: inputs * g.windows_per_input() as f64 * 2.0,
        bytes: 4.0 * (inputs + (planes * g.out_h * g.out_w) as f64),
    }
}

fn adaptive_kernel(
    op: &'static str,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
) -> Result<[usize; 2]> {
    if out_h == 0 || out_w == 0 || in_h % out_h != 0 || in_w % out_w != 0 {
        return Err(Error::Shape {
            op,
            detail: format!(
                "output {out_h}×{out_w} must be non-empty and divide the input {in_h}×{in_w}; \
                 uneven adaptive windows are not supported"
            ),
        });
    }
    Ok([in_h / out_h, in_w / out_w])
}

fn check_adaptive_sizes(
    op: &'static str,
    in_h: usize,
    in_w: usize,
    out_h: usize,
    out_w: usize,
) -> Result<()> {
    if in_h == 0 || in_w == 0 || out_h == 0 || out_w == 0 {
        return Err(Error::Shape {
            op,
            detail: format!("input {in_h}×{in_w} and output {out_h}×{out_w} must be non-empty"),
        });
    }
    // The kernel forms (o + 1)·in and (i + 1)·out in 32 bits.
    let largest = (in_h.max(in_w) + 1) * out_h.max(out_w).max(1) + in_h.max(in_w);
    if u32::try_from(largest).is_err() {
        return Err(Error::Shape {
            op,
            detail: format!(
                "input {in_h}×{in_w} with output {out_h}×{out_w} overflows 32-bit window arithmetic"
            ),
        });
    }
    Ok(())
}

/// The windowed entries' block; kernel, stride and padding are unused.
fn adaptive_params(total: usize, in_h: usize, in_w: usize, out_h: usize, out_w: usize) -> PoolParams {
    PoolParams {
        total: total as u32,
        in_h: in_h as u32,
        in_w: in_w as u32,
        out_h: out_h as u32,
        out_w: out_w as u32,
        ..Default::default()
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

fn expect_spatial(op: &'static str, t: &Tensor, h: usize, w: usize) -> Result<()> {
    let (th, tw) = spatial(op, t)?;
    if (th, tw) != (h, w) {
        return Err(Error::Shape {
            op,
            detail: format!("gradient {:?} should have spatial size {h}×{w}", t.shape()),
        });
    }
    Ok(())
}

fn geometry(
    op: &'static str,
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
) -> Result<(usize, PoolGeometry)> {
    let (h, w) = spatial(op, x)?;
    let g = PoolGeometry::new(op, h, w, kernel, stride, padding)?;
    Ok((x.shape()[0] * x.shape()[1], g))
}

fn forward(x: &Tensor, planes: usize, g: &PoolGeometry, entry: &str, include_pad: bool) -> Result<Tensor> {
    let shape = [x.shape()[0], x.shape()[1], g.out_h, g.out_w];
    let out = Tensor::empty(x.gpu(), &shape, DType::F32)?;
    let total = planes * g.out_h * g.out_w;
    if total == 0 {
        return Ok(out);
    }
    x.gpu().launch(
        &KERNEL,
        entry,
        &[("WG", WG as f64)],
        &g.params(total, include_pad),
        &[("x", x), ("out", &out)],
        Grid::Linear(groups_for(total, WG)),
    )?;
    Ok(out)
}

/// `x` is the forward input, which only the max entry reads.
fn backward(
    op: &'static str,
    x: Option<&Tensor>,
    dy: &Tensor,
    g: &PoolGeometry,
    entry: &str,
    include_pad: bool,
) -> Result<Tensor> {
    spatial(op, dy)?;
    let (n, c) = (dy.shape()[0], dy.shape()[1]);
    let want = [n, c, g.out_h, g.out_w];
    let input_shape = x.map_or(vec![n, c, g.in_h, g.in_w], |x| x.shape().to_vec());
    if dy.shape() != want || input_shape[..2] != dy.shape()[..2] {
        return Err(Error::Shape {
            op,
            detail: format!(
                "gradient {:?} does not match the pooled output {want:?} of input {input_shape:?}",
                dy.shape()
            ),
        });
    }
    if let Some(x) = x {
        x.same_gpu(dy, op)?;
    }
    let out = Tensor::empty(dy.gpu(), &input_shape, DType::F32)?;
    let total = n * c * g.in_h * g.in_w;
    if total == 0 {
        return Ok(out);
    }
    // Only the max entry reads the forward input.
    let mut bindings = vec![("dy", dy), ("out", &out)];
    bindings.extend(x.map(|x| ("x", x)));
    dy.gpu().launch(
        &KERNEL,
        entry,
        &[("WG", WG as f64)],
        &g.params(total, include_pad),
        &bindings,
        Grid::Linear(groups_for(total, WG)),
    )?;
    Ok(out)
}
