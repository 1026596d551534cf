//! CPU reference for the optimiser updates, in f64.

/// One PyTorch Adam step in place; `step` counts from 1.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    param: &mut [f64],
    grad: &[f64],
    m: &mut [f64],
    v: &mut [f64],
    step: u32,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
) {
    let bc1 = 1.0 - beta1.powi(step as i32);
    let bc2 = 1.0 - beta2.powi(step as i32);
    for i in 0..param.len() {
        m[i] = beta1 * m[i] + (1.0 - beta1) * grad[i];
        v[i] = beta2 * v[i] + (1.0 - beta2) * grad[i] * grad[i];
        param[i] -= lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + eps);
    }
}

pub fn clamp(x: &[f32], lo: f32, hi: f32) -> Vec<f64> {
    x.iter()
        .map(|&v| (v as f64).clamp(lo as f64, hi as f64))
        .collect()
}
