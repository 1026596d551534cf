//! The gradient baselines FIDO is compared with: vanilla gradients (Simonyan, Vedaldi &
//! Zisserman 2014) and integrated gradients (Sundararajan, Taly & Yan 2017) of the target's
//! log-odds `s = log p_c − log(1 − p_c)` with respect to the normalised model input.
//!
//! - **Gradient**: `∂s/∂x` at the input, one forward and backward pass.
//! - **Integrated gradients**: from the zero baseline `x0 = 0` (the normalised input, so for
//!   mean/std normalisation the dataset mean colour), with the **midpoint Riemann rule**:
//!   for S steps, `α_k = (k + ½)/S` and the attribution is
//!   `(x − x0) · (1/S) Σ_k ∂s/∂x(x0 + α_k·(x − x0))`. Its sum approaches `s(x) − s(x0)`
//!   (completeness) with an error of `O(1/S²)` for a smooth score.
//!
//! Both give an attribution of the input's shape (3×H×W) and an importance map (H×W): the
//! largest `|attribution|` over the channels, divided by its maximum over the image so it
//! lies in [0, 1]. [`super::Explainer`] runs them in chunks of `batch` path points, so a
//! host sees their progress as it sees FIDO's.

use super::Model;
use crate::autodiff::{Tape, Var};
use crate::models;
use crate::ops::elementwise;
use crate::ops::reduce::{self, Reduction};
use crate::tensor::Tensor;
use crate::{Error, Result};

/// The midpoint rule's points on the path from the baseline to the input: `(k + ½)/steps`.
pub fn path_points(steps: usize) -> Vec<f32> {
    (0..steps)
        .map(|k| ((k as f64 + 0.5) / steps as f64) as f32)
        .collect()
}

/// The mean log-odds of `target` over the inputs `α·image` and the sum of their gradients
/// `Σ_α ∂s/∂x(α·image)`, shaped like `image` `[1, 3, H, W]`.
pub fn gradient_sum(
    model: &dyn Model,
    image: &Tensor,
    target: usize,
    alphas: &[f32],
) -> Result<(Tensor, Tensor)> {
    if alphas.is_empty() {
        return Err(Error::InvalidArgument("no points to take gradients at".into()));
    }
    let tape = Tape::new();
    let points = if alphas == [1.0] {
        image.clone()
    } else {
        let scaled: Vec<Var> = alphas
            .iter()
            .map(|&a| Ok(tape.constant(elementwise::mul_scalar(image, a)?)))
            .collect::<Result<_>>()?;
        Var::concat(&scaled.iter().collect::<Vec<_>>(), 0)?.into_value()
    };
    let x = tape.param(points);
    let logits = model.forward(&tape, &x)?;
    let scores = models::log_odds(&logits, &vec![target; alphas.len()])?;
    let mean = scores.mean()?.into_value();
    let mut grads = tape.backward(&scores.sum()?)?;
    let grad = grads
        .take(&x)
        .ok_or_else(|| Error::Gpu("no gradient reached the input".into()))?;
    let sum = if alphas.len() == 1 {
        grad
    } else {
        reduce::reduce_axis(&grad, 0, Reduction::Sum, true)?
    };
    Ok((mean, sum))
}

/// The attribution from the gradients summed over `points` path points: the mean gradient
/// for vanilla gradients (one point), `image · mean gradient` for integrated gradients
/// (the baseline is 0, so `x − x0 = x`).
pub fn attribution(integrated: bool, image: &Tensor, grad_sum: &Tensor, points: usize) -> Result<Tensor> {
    let mean = elementwise::mul_scalar(grad_sum, 1.0 / points.max(1) as f32)?;
    if integrated {
        elementwise::mul(image, &mean)
    } else {
        Ok(mean)
    }
}

/// The importance map of a 3×H×W attribution: `max_c |a[c]|` per pixel, scaled so the
/// largest is 1 (all 0 when the attribution is 0).
pub fn importance(attribution: &[f32], height: usize, width: usize) -> Vec<f32> {
    let plane = height * width;
    let mut out: Vec<f32> = (0..plane)
        .map(|i| {
            (0..3)
                .map(|c| attribution[c * plane + i].abs())
                .fold(0.0, f32::max)
        })
        .collect();
    let top = out.iter().copied().fold(0.0, f32::max);
    if top > 0.0 && top.is_finite() {
        out.iter_mut().for_each(|v| *v /= top);
    }
    out
}
