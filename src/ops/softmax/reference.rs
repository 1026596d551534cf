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

/// Log-odds of each row's label: `x_c − log Σ_{k≠c} exp(x_k)`.
pub fn log_odds(x: &[f32], len: usize, labels: &[usize]) -> Vec<f64> {
    x.chunks(len)
        .zip(labels)
        .map(|(row, &c)| {
            let others = row
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != c)
                .map(|(_, &v)| v as f64);
            let m = others.clone().fold(f64::NEG_INFINITY, f64::max);
            row[c] as f64 - (m + others.map(|v| (v - m).exp()).sum::<f64>().ln())
        })
        .collect()
}
