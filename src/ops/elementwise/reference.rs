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
        LeakyRelu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha as f64 * x
            }
        }
        HardSigmoid { alpha, beta } => (alpha as f64 * x + beta as f64).clamp(0.0, 1.0),
        HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        Erf => erf(x),
        // 1 + erf(x/√2) as erfc(−x/√2), which keeps the lower tail's relative accuracy.
        Gelu => 0.5 * x * erfc(-x * std::f64::consts::FRAC_1_SQRT_2),
        GeluTanh => {
            let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
            0.5 * x * (1.0 + u.tanh())
        }
    }
}

/// Below this |x| erf is summed from its Maclaurin series, whose terms stay under
/// e^{x²} ≈ 520 times the result, so cancellation costs at most ~1e-13; above it erfc comes
/// from its continued fraction, which 60 terms converge to within 1e-15 relative there.
const ERF_SERIES_LIMIT: f64 = 2.5;

/// The error function in f64, within 1e-14 absolute of the true value (checked against
/// tabulated values in tests/elementwise.rs).
pub fn erf(x: f64) -> f64 {
    if x.abs() < ERF_SERIES_LIMIT {
        let s = x * x;
        let (mut term, mut total) = (x, x);
        let mut n = 0.0;
        // term = (−1)ⁿ x^(2n+1) / n!, summed as term/(2n+1).
        while term.abs() > 1e-17 * total.abs() {
            n += 1.0;
            term *= -s / n;
            total += term / (2.0 * n + 1.0);
        }
        std::f64::consts::FRAC_2_SQRT_PI * total
    } else {
        x.signum() * (1.0 - erfc_continued_fraction(x.abs()))
    }
}

/// `1 − erf(x)` in f64, accurate in relative terms on the upper tail.
pub fn erfc(x: f64) -> f64 {
    if x >= ERF_SERIES_LIMIT {
        erfc_continued_fraction(x)
    } else {
        1.0 - erf(x)
    }
}

/// erfc(z) = exp(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + …)))), for z ≥ 2.5,
/// evaluated from the 60th level up.
fn erfc_continued_fraction(z: f64) -> f64 {
    let mut k = z;
    for n in (1..=60).rev() {
        k = z + (n as f64 / 2.0) / k;
    }
    (-z * z).exp() / (std::f64::consts::PI.sqrt() * k)
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
