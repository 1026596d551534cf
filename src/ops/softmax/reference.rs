//! CPU reference for softmax-family ops over the last axis, in f64.

use super::SoftmaxKind;

pub fn softmax_like(x: &[f32], len: usize, kind: SoftmaxKind) -> Vec<f64> {
    let mut out = Vec::new();
    for row in x.chunks(len) {
        let m = row.iter().map(|&v| v as f64).fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        match kind {
            SoftmaxKind::Softmax => out.extend(row.iter().map(|&v| (v as f64 - m).exp() / s)),
            SoftmaxKind::LogSoftmax => out.extend(row.iter().map(|&v| v as f64 - m - s.ln())),
            SoftmaxKind::LogSumExp => out.push(m + s.ln()),
        }
    }
    out
}
