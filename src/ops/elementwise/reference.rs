//! CPU reference for the elementwise family, in f64.

use super::{broadcast_strides, BinaryOp, UnaryOp};
use crate::ops::broadcast_shapes;

pub fn unary(x: &[f32], op: UnaryOp) -> Vec<f64> {
    x.iter().map(|&v| unary_one(v as f64, op)).collect()
}

pub fn unary_one(x: f64, op: UnaryOp) -> f64 {
    use UnaryOp::*;
    match op {
        Neg => -x,
        Exp => x.exp(),
        Log => x.ln(),
        Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Relu => x.max(0.0),
        Relu6 => x.clamp(0.0, 6.0),
        Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha as f64 * (x.exp() - 1.0)
            }
        }
        Clamp { lo, hi } => x.clamp(lo as f64, hi as f64),
        AddScalar(s) => x + s as f64,
        MulScalar(s) => x * s as f64,
        RsubScalar(s) => s as f64 - x,
        RdivScalar(s) => s as f64 / x,
        Affine { scale, shift } => x * scale as f64 + shift as f64,
        Square => x * x,
        Sqrt => x.sqrt(),
        Abs => x.abs(),
        Tanh => x.tanh(),
        PowScalar(s) => x.powf(s as f64),
        Step(s) => {
            if x > s as f64 {
                1.0
            } else {
                0.0
            }
        }
    }
}

pub fn binary_one(x: f64, y: f64, op: BinaryOp) -> f64 {
    match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Max => x.max(y),
        BinaryOp::Min => x.min(y),
    }
}

/// Broadcasting binary op; returns the output shape and values.
pub fn binary(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    op: BinaryOp,
) -> (Vec<usize>, Vec<f64>) {
    let shape = broadcast_shapes(a_shape, b_shape).expect("shapes broadcast");
    let sa = broadcast_strides(a_shape, &shape);
    let sb = broadcast_strides(b_shape, &shape);
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (mut rest, mut ia, mut ib) = (i, 0, 0);
        for d in (0..shape.len()).rev() {
            let c = rest % shape[d];
            rest /= shape[d];
            ia += c * sa[d];
            ib += c * sb[d];
        }
        out.push(binary_one(a[ia] as f64, b[ib] as f64, op));
    }
    (shape, out)
}
