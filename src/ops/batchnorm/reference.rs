//! CPU reference for inference batch norm, in f64.

/// Inference batch norm over axis 1 of `x: [N, C, …]`.
pub fn batch_norm(
    x: &[f64],
    x_shape: &[usize],
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    var: &[f64],
    eps: f64,
) -> Vec<f64> {
    let c = x_shape[1];
    let plane: usize = x_shape[2..].iter().product();
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / plane) % c;
            (v - mean[ch]) / (var[ch] + eps).sqrt() * gamma[ch] + beta[ch]
        })
        .collect()
}
