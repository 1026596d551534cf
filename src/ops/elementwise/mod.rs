//! Elementwise unary and binary ops with NumPy-style broadcasting.

pub mod reference;

use crate::gpu::{groups_for, Grid, Kernel};
use crate::ops::{broadcast_shapes, contiguous_strides, Cost};
use crate::tensor::{DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("elementwise");

crate::kernel_params! {
    /// `n` items; the scalars `s0`, `s1` of the op; for broadcasting entries the output's
    /// shape and each operand's element strides (0 on broadcast axes), innermost last.
    pub struct ElementwiseParams as "Params" {
        n: u32,
        s0: f32,
        s1: f32,
        rank: u32,
        out_shape: [[u32; 4]; 2],
        a_strides: [[u32; 4]; 2],
        b_strides: [[u32; 4]; 2],
    }
}

/// Largest rank the broadcasting kernel accepts.
pub use super::MAX_RANK;
const WG: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sigmoid,
    Relu,
    Relu6,
    Elu {
        alpha: f32,
    },
    Clamp {
        lo: f32,
        hi: f32,
    },
    AddScalar(f32),
    MulScalar(f32),
    /// `s − x`
    RsubScalar(f32),
    /// `s / x`
    RdivScalar(f32),
    /// `x·scale + shift`
    Affine {
        scale: f32,
        shift: f32,
    },
    Square,
    Sqrt,
    Abs,
    Tanh,
    PowScalar(f32),
    /// 1 where `x > s`, else 0 (a hard threshold; its gradient is zero).
    Step(f32),
    /// `x` where positive, else `alpha·x` (ONNX LeakyRelu).
    LeakyRelu {
        alpha: f32,
    },
    /// `max(0, min(1, alpha·x + beta))` (ONNX HardSigmoid, whose defaults are 0.2 and 0.5).
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `x·max(0, min(1, x/6 + 1/2))` (ONNX HardSwish).
    HardSwish,
    /// The error function; WGSL has none, so the kernel evaluates an approximation within
    /// 1e-7 absolute (see `erf_approx` in shaders/elementwise.wgsl).
    Erf,
    /// Exact GELU, `0.5·x·(1 + erf(x/√2))`.
    Gelu,
    /// GELU's tanh approximation, `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
    GeluTanh,
}

impl UnaryOp {
    /// The op's name, for the tape and error messages.
    pub fn name(self) -> &'static str {
        use UnaryOp::*;
        match self {
            Neg => "neg",
            Exp => "exp",
            Log => "log",
            Sigmoid => "sigmoid",
            Relu => "relu",
            Relu6 => "relu6",
            Elu { .. } => "elu",
            Clamp { .. } => "clamp",
            AddScalar(_) => "add_scalar",
            MulScalar(_) => "mul_scalar",
            RsubScalar(_) => "rsub_scalar",
            RdivScalar(_) => "rdiv_scalar",
            Affine { .. } => "affine",
            Square => "square",
            Sqrt => "sqrt",
            Abs => "abs",
            Tanh => "tanh",
            PowScalar(_) => "pow_scalar",
            Step(_) => "step",
            LeakyRelu { .. } => "leaky_relu",
            HardSigmoid { .. } => "hard_sigmoid",
            HardSwish => "hard_swish",
            Erf => "erf",
            Gelu => "gelu",
            GeluTanh => "gelu_tanh",
        }
    }

    fn code_and_scalars(self) -> (u32, f32, f32) {
        use UnaryOp::*;
        match self {
            Neg => (0, 0.0, 0.0),
            Exp => (1, 0.0, 0.0),
            Log => (2, 0.0, 0.0),
            Sigmoid => (3, 0.0, 0.0),
            Relu => (4, 0.0, 0.0),
            Relu6 => (5, 0.0, 0.0),
            Elu { alpha } => (6, alpha, 0.0),
            Clamp { lo, hi } => (7, lo, hi),
            AddScalar(s) => (8, s, 0.0),
            MulScalar(s) => (9, s, 0.0),
            RsubScalar(s) => (10, s, 0.0),
            RdivScalar(s) => (11, s, 0.0),
            Affine { scale, shift } => (12, scale, shift),
            Square => (13, 0.0, 0.0),
            Sqrt => (14, 0.0, 0.0),
            Abs => (15, 0.0, 0.0),
            Tanh => (16, 0.0, 0.0),
            PowScalar(s) => (17, s, 0.0),
            Step(s) => (18, s, 0.0),
            LeakyRelu { alpha } => (19, alpha, 0.0),
            HardSigmoid { alpha, beta } => (20, alpha, beta),
            HardSwish => (21, 0.0, 0.0),
            Erf => (22, 0.0, 0.0),
            Gelu => (23, 0.0, 0.0),
            GeluTanh => (24, 0.0, 0.0),
        }
    }

    /// Transcendental ops (erf and GELU among them, a dozen fmas and an exp) cost more than
    /// one FLOP; count them as one for simplicity, as the bytes moved dominate.
    pub fn cost(self, n: usize) -> Cost {
        Cost {
            flops: n as f64,
            bytes: 8.0 * n as f64,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
}

impl BinaryOp {
    fn code(self) -> u32 {
        self as u32
    }
}

/// `op(a)` elementwise, into a new tensor.
pub fn unary(a: &Tensor, op: UnaryOp) -> Result<Tensor> {
    a.expect_f32("unary")?;
    let out = Tensor::empty(a.gpu(), a.shape(), DType::F32)?;
    unary_into(a, op, &out)?;
    Ok(out)
}

/// `out = op(a)`; `out` may be `a` itself for an in-place update.
pub fn unary_into(a: &Tensor, op: UnaryOp, out: &Tensor) -> Result<()> {
    if a.shape() != out.shape() {
        return Err(Error::Shape {
            op: "unary",
            detail: format!("input {:?} vs output {:?}", a.shape(), out.shape()),
        });
    }
    a.same_gpu(out, "unary")?;
    let (code, s0, s1) = op.code_and_scalars();
    let n = a.numel();
    if n == 0 {
        return Ok(());
    }
    let constants = [("OP", code as f64)];
    let vec4 = n % 4 == 0;
    let items = if vec4 { n / 4 } else { n };
    let params = ElementwiseParams {
        n: items as u32,
        s0,
        s1,
        ..Default::default()
    };
    let in_place = a.aliases(out);
    let entry = match (vec4, in_place) {
        (true, false) => "unary_vec4",
        (false, false) => "unary_scalar",
        (true, true) => "unary_vec4_inplace",
        (false, true) => "unary_scalar_inplace",
    };
    a.gpu().launch(
        &KERNEL,
        entry,
        &constants,
        &params,
        &[("a", a), ("out", out), ("a4", a), ("out4", out)],
        Grid::Linear(groups_for(items, WG)),
    )
}

/// `op(a, b)` with broadcasting; the output has the broadcast shape.
pub fn binary(a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Tensor> {
    let shape = broadcast_shapes(a.shape(), b.shape()).ok_or_else(|| Error::Shape {
        op: "binary",
        detail: format!("shapes {:?} and {:?} do not broadcast", a.shape(), b.shape()),
    })?;
    let out = Tensor::empty(a.gpu(), &shape, DType::F32)?;
    binary_into(a, b, op, &out)?;
    Ok(out)
}

/// `out = op(a, b)`; `out` must have the broadcast shape. It may be `a` itself (an in-place
/// update such as gradient accumulation) but not `b`.
pub fn binary_into(a: &Tensor, b: &Tensor, op: BinaryOp, out: &Tensor) -> Result<()> {
    a.expect_f32("binary")?;
    b.expect_f32("binary")?;
    a.same_gpu(b, "binary")?;
    a.same_gpu(out, "binary")?;
    let shape = broadcast_shapes(a.shape(), b.shape()).ok_or_else(|| Error::Shape {
        op: "binary",
        detail: format!("shapes {:?} and {:?} do not broadcast", a.shape(), b.shape()),
    })?;
    if shape != out.shape() {
        return Err(Error::Shape {
            op: "binary",
            detail: format!("output {:?}, broadcast shape {shape:?}", out.shape()),
        });
    }
    if shape.len() > MAX_RANK {
        return Err(Error::Shape {
            op: "binary",
            detail: format!("rank {} exceeds {MAX_RANK}", shape.len()),
        });
    }
    let n = out.numel();
    if n == 0 {
        return Ok(());
    }
    if b.aliases(out) {
        return Err(Error::InvalidArgument(
            "binary: the output may alias the first operand, not the second".into(),
        ));
    }
    let in_place = a.aliases(out);
    let constants = [("OP", op.code() as f64)];
    let gpu = a.gpu();
    if a.shape() == b.shape() && n % 4 == 0 {
        let params = ElementwiseParams {
            n: (n / 4) as u32,
            ..Default::default()
        };
        return gpu.launch(
            &KERNEL,
            if in_place {
                "binary_vec4_inplace"
            } else {
                "binary_vec4"
            },
            &constants,
            &params,
            &[("a4", a), ("b4", b), ("out4", out)],
            Grid::Linear(groups_for(n / 4, WG)),
        );
    }
    let params = ElementwiseParams {
        n: n as u32,
        rank: shape.len() as u32,
        out_shape: packed_dims(&shape),
        a_strides: packed_dims(&broadcast_strides(a.shape(), &shape)),
        b_strides: packed_dims(&broadcast_strides(b.shape(), &shape)),
        ..Default::default()
    };
    gpu.launch(
        &KERNEL,
        if in_place {
            "binary_broadcast_inplace"
        } else {
            "binary_broadcast"
        },
        &constants,
        &params,
        &[("a", a), ("b", b), ("out", out)],
        Grid::Linear(groups_for(n, WG)),
    )
}

/// `a` repeated along broadcast axes to `shape`.
pub fn broadcast_to(a: &Tensor, shape: &[usize]) -> Result<Tensor> {
    a.expect_f32("broadcast_to")?;
    if broadcast_shapes(a.shape(), shape).as_deref() != Some(shape) || shape.len() > MAX_RANK {
        return Err(Error::Shape {
            op: "broadcast_to",
            detail: format!("{:?} does not broadcast to {shape:?}", a.shape()),
        });
    }
    let out = Tensor::empty(a.gpu(), shape, DType::F32)?;
    let n = out.numel();
    if n == 0 {
        return Ok(out);
    }
    let strides = packed_dims(&broadcast_strides(a.shape(), shape));
    let params = ElementwiseParams {
        n: n as u32,
        rank: shape.len() as u32,
        out_shape: packed_dims(shape),
        a_strides: strides,
        b_strides: strides,
        ..Default::default()
    };
    a.gpu().launch(
        &KERNEL,
        "broadcast_to",
        &[],
        &params,
        &[("a", a), ("out", &out)],
        Grid::Linear(groups_for(n, WG)),
    )?;
    Ok(out)
}

/// Gradient of `y = op(x)`: `dx = dy · op'(x)`, from the saved input and output.
pub fn unary_backward(x: &Tensor, y: &Tensor, dy: &Tensor, op: UnaryOp) -> Result<Tensor> {
    if x.shape() != y.shape() || x.shape() != dy.shape() {
        return Err(Error::Shape {
            op: "unary_backward",
            detail: format!("x {:?}, y {:?}, dy {:?}", x.shape(), y.shape(), dy.shape()),
        });
    }
    let (code, s0, s1) = op.code_and_scalars();
    let out = Tensor::empty(x.gpu(), x.shape(), DType::F32)?;
    let n = x.numel();
    if n == 0 {
        return Ok(out);
    }
    let params = ElementwiseParams {
        n: n as u32,
        s0,
        s1,
        ..Default::default()
    };
    // The rule reads the saved input as `a` and the saved output as `b`.
    x.gpu().launch(
        &KERNEL,
        "unary_backward",
        &[("OP", code as f64)],
        &params,
        &[("a", x), ("b", y), ("out", &out), ("dy", dy)],
        Grid::Linear(groups_for(n, WG)),
    )?;
    Ok(out)
}

/// Strides of `shape` read as `target` (right-aligned), with 0 on broadcast axes.
/// Sizes or strides as the WGSL `array<vec4<u32>, 2>`, 1 on unused axes.
fn packed_dims(list: &[usize]) -> [[u32; 4]; 2] {
    super::pack_axes(list.iter().map(|&v| v as u32), 1)
}

pub fn broadcast_strides(shape: &[usize], target: &[usize]) -> Vec<usize> {
    let own = contiguous_strides(shape);
    let offset = target.len() - shape.len();
    (0..target.len())
        .map(|d| {
            if d < offset || shape[d - offset] == 1 {
                0
            } else {
                own[d - offset]
            }
        })
        .collect()
}

pub fn binary_cost(n: usize) -> Cost {
    Cost {
        flops: n as f64,
        bytes: 12.0 * n as f64,
    }
}

macro_rules! unary_fns {
    ($($name:ident => $op:expr),* $(,)?) => {
        $(pub fn $name(a: &Tensor) -> Result<Tensor> { unary(a, $op) })*
    };
}
unary_fns!(neg => UnaryOp::Neg, exp => UnaryOp::Exp, log => UnaryOp::Log, sigmoid => UnaryOp::Sigmoid,
    relu => UnaryOp::Relu, relu6 => UnaryOp::Relu6, square => UnaryOp::Square, sqrt => UnaryOp::Sqrt,
    abs => UnaryOp::Abs, tanh => UnaryOp::Tanh, hard_swish => UnaryOp::HardSwish, erf => UnaryOp::Erf,
    gelu => UnaryOp::Gelu, gelu_tanh => UnaryOp::GeluTanh);

pub fn elu(a: &Tensor, alpha: f32) -> Result<Tensor> {
    unary(a, UnaryOp::Elu { alpha })
}
pub fn leaky_relu(a: &Tensor, alpha: f32) -> Result<Tensor> {
    unary(a, UnaryOp::LeakyRelu { alpha })
}
pub fn clamp(a: &Tensor, lo: f32, hi: f32) -> Result<Tensor> {
    if lo.is_nan() || hi.is_nan() || lo > hi {
        return Err(Error::InvalidArgument(format!(
            "clamp bounds [{lo}, {hi}] are empty"
        )));
    }
    unary(a, UnaryOp::Clamp { lo, hi })
}
pub fn add_scalar(a: &Tensor, s: f32) -> Result<Tensor> {
    unary(a, UnaryOp::AddScalar(s))
}
pub fn mul_scalar(a: &Tensor, s: f32) -> Result<Tensor> {
    unary(a, UnaryOp::MulScalar(s))
}

pub fn add(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Add)
}
pub fn sub(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Sub)
}
pub fn mul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Mul)
}
pub fn div(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Div)
}
pub fn maximum(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Max)
}
pub fn minimum(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    binary(a, b, BinaryOp::Min)
}
