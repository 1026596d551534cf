//! CPU reference for reductions, in f64.

use super::Reduction;

/// Reduce `axis` of `x` (shape `shape`); the result drops that axis.
pub fn reduce_axis(x: &[f32], shape: &[usize], axis: usize, op: Reduction) -> Vec<f64> {
    let outer: usize = shape[..axis].iter().product();
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let values = (0..len).map(|l| x[(o * len + l) * inner + i] as f64);
            out.push(fold(values, len, op));
        }
    }
    out
}

pub fn reduce_all(x: &[f32], op: Reduction) -> f64 {
    fold(x.iter().map(|&v| v as f64), x.len(), op)
}

fn fold(values: impl Iterator<Item = f64>, len: usize, op: Reduction) -> f64 {
    match op {
        Reduction::Sum => values.sum(),
        Reduction::Mean => values.sum::<f64>() / len as f64,
        Reduction::Max => values.fold(f64::NEG_INFINITY, f64::max),
    }
}
