//! Counter-based random numbers (Philox4x32-10) and the Concrete (relaxed Bernoulli) sampler.
//!
//! Word `w` of the stream `(seed, stream)` is word `w % 4` of
//! `philox4x32_10(counter = [w / 4, 0, stream, 0], key = [seed_lo, seed_hi])`. The generator
//! keeps no state: the seed and stream are kernel parameters, so drawing with a new seed every
//! optimisation step reuses the same pipeline. [`reference`] produces the same words on the CPU.

pub mod reference;

use crate::gpu::{groups_for, Gpu, Grid, Kernel};
use crate::ops::Cost;
use crate::tensor::{numel, DType, Tensor};
use crate::{Error, Result};

pub const KERNEL: Kernel = crate::wgsl_kernel!("random");

const WG: usize = 256;
/// Outputs per invocation: one Philox block.
const PER_INVOCATION: usize = 4;
/// Outputs are indexed with u32 words, with room for the last partial block.
const MAX_ELEMENTS: usize = (u32::MAX - 4) as usize;

crate::kernel_params! {
    /// The stream `(seed, stream)` and what one launch draws from it.
    pub struct RandomParams as "Params" {
        /// Output elements.
        n: u32,
        seed_lo: u32,
        seed_hi: u32,
        stream: u32,
        /// Normal: the mean.
        mean: f32,
        /// Normal: the standard deviation.
        std_dev: f32,
        /// Concrete: 1 / temperature.
        inv_temperature: f32,
        /// Concrete: elements per sample (the logits' size).
        inner: u32,
        /// Concrete backward: the number of samples.
        samples: u32,
    }
}

/// `n` raw 32-bit words of the stream `(seed, stream)`, as a `U32` tensor of shape `[n]`.
pub fn random_bits(gpu: &Gpu, n: usize, seed: u64, stream: u32) -> Result<Tensor> {
    check_count("random_bits", &[n])?;
    let out = Tensor::empty(gpu, &[n], DType::U32)?;
    launch_draw(gpu, "draw_bits", "bits_out", &out, stream_params(seed, stream))?;
    Ok(out)
}

/// Uniform numbers on the open interval (0, 1): `(k + 0.5)·2⁻²³` for the top 23 bits `k`
/// of each word, so neither 0 nor 1 (nor a value that rounds to them) ever occurs.
pub fn uniform(gpu: &Gpu, shape: &[usize], seed: u64, stream: u32) -> Result<Tensor> {
    check_count("uniform", shape)?;
    let out = Tensor::empty(gpu, shape, DType::F32)?;
    launch_draw(gpu, "draw_uniform", "out", &out, stream_params(seed, stream))?;
    Ok(out)
}

/// Normal numbers `mean + std·N(0, 1)` by Box–Muller on pairs of open uniforms
/// (words 4b, 4b+1 give outputs 4b, 4b+1; words 4b+2, 4b+3 give the next two).
pub fn normal(gpu: &Gpu, shape: &[usize], seed: u64, stream: u32, mean: f32, std: f32) -> Result<Tensor> {
    check_count("normal", shape)?;
    if !mean.is_finite() || !std.is_finite() || std < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "normal: mean {mean} and std {std} must be finite with std ≥ 0"
        )));
    }
    let out = Tensor::empty(gpu, shape, DType::F32)?;
    let params = RandomParams {
        mean,
        std_dev: std,
        ..stream_params(seed, stream)
    };
    launch_draw(gpu, "draw_normal", "out", &out, params)?;
    Ok(out)
}

/// The shape of `samples` Concrete draws from logits of shape `logit_shape`: a leading axis
/// of length 1 (the batch axis of `[1, 1, H, W]`) becomes `samples`; otherwise `samples` is
/// prepended (`[H, W]` gives `[samples, H, W]`). Either way sample `s` occupies the
/// contiguous block `s·numel(logits) ..` of the output.
pub fn concrete_output_shape(logit_shape: &[usize], samples: usize) -> Vec<usize> {
    match logit_shape.first() {
        Some(1) => {
            let mut shape = logit_shape.to_vec();
            shape[0] = samples;
            shape
        }
        _ => std::iter::once(samples)
            .chain(logit_shape.iter().copied())
            .collect(),
    }
}

/// Relaxed Bernoulli draws `z = sigmoid((logit_p + log u − log(1 − u)) / temperature)`, one
/// uniform per sample and logit element (output element `o` uses word `o` of the stream).
/// The logistic noise `log u − log(1 − u)` is computed from exact numerators, so it lies in
/// ±16.7 and `z` stays finite (0 or 1 at worst) for any finite logit.
pub fn concrete_sample(
    logit_p: &Tensor,
    samples: usize,
    temperature: f32,
    seed: u64,
    stream: u32,
) -> Result<Tensor> {
    logit_p.expect_f32("concrete_sample")?;
    check_temperature("concrete_sample", temperature)?;
    if samples == 0 || logit_p.numel() == 0 {
        return Err(Error::Shape {
            op: "concrete_sample",
            detail: format!(
                "{samples} samples of logits {:?}: both must be non-empty",
                logit_p.shape()
            ),
        });
    }
    let shape = concrete_output_shape(logit_p.shape(), samples);
    check_count("concrete_sample", &shape)?;
    let gpu = logit_p.gpu();
    let out = Tensor::empty(gpu, &shape, DType::F32)?;
    let n = out.numel();
    let params = RandomParams {
        n: n as u32,
        inv_temperature: 1.0 / temperature,
        inner: logit_p.numel() as u32,
        samples: samples as u32,
        ..stream_params(seed, stream)
    };
    gpu.launch(
        &KERNEL,
        "concrete_forward",
        &[],
        &params,
        &[("logits", logit_p), ("out", &out)],
        Grid::Linear(groups_for(n.div_ceil(PER_INVOCATION), WG)),
    )?;
    Ok(out)
}

/// Gradient of [`concrete_sample`] with respect to the logits, from the saved draws `z` and
/// the cotangent `dy` (both shaped like the output): `Σ_s dy·z(1 − z)/t`, one invocation per
/// logit gathering over the samples. Returns a tensor of shape `logit_shape`.
/// Where f32 rounds `z` to exactly 0 or 1 the term is 0; the true slope there is below
/// 6e-8/t, so the absolute error stays negligible.
pub fn concrete_backward(z: &Tensor, dy: &Tensor, temperature: f32, logit_shape: &[usize]) -> Result<Tensor> {
    z.expect_f32("concrete_backward")?;
    dy.expect_f32("concrete_backward")?;
    z.same_gpu(dy, "concrete_backward")?;
    check_temperature("concrete_backward", temperature)?;
    let inner = numel(logit_shape);
    if z.shape() != dy.shape() || inner == 0 || z.numel() % inner != 0 || z.numel() == 0 {
        return Err(Error::Shape {
            op: "concrete_backward",
            detail: format!(
                "z {:?} and dy {:?} must be equal and hold whole samples of logits {logit_shape:?}",
                z.shape(),
                dy.shape()
            ),
        });
    }
    let samples = z.numel() / inner;
    if concrete_output_shape(logit_shape, samples) != z.shape() {
        return Err(Error::Shape {
            op: "concrete_backward",
            detail: format!(
                "z {:?} is not the shape of {samples} samples of logits {logit_shape:?}",
                z.shape()
            ),
        });
    }
    check_count("concrete_backward", z.shape())?;
    let gpu = z.gpu();
    let out = Tensor::empty(gpu, logit_shape, DType::F32)?;
    let params = RandomParams {
        inv_temperature: 1.0 / temperature,
        inner: inner as u32,
        samples: samples as u32,
        ..Default::default()
    };
    gpu.launch(
        &KERNEL,
        "concrete_backward",
        &[],
        &params,
        &[("z", z), ("dy", dy), ("out", &out)],
        Grid::Linear(groups_for(inner, WG)),
    )?;
    Ok(out)
}

/// Ten Philox rounds of two 32×32-bit products and a few xors each, per four outputs.
pub fn draw_cost(n: usize) -> Cost {
    Cost {
        flops: 10.0 * 8.0 * n.div_ceil(PER_INVOCATION) as f64,
        bytes: 4.0 * n as f64,
    }
}

/// Concrete forward: the draw, a log, a sigmoid; reads the logits once per sample.
pub fn concrete_cost(logits: usize, samples: usize) -> Cost {
    let n = logits * samples;
    Cost {
        flops: draw_cost(n).flops + 6.0 * n as f64,
        bytes: 8.0 * n as f64,
    }
}

pub fn concrete_backward_cost(logits: usize, samples: usize) -> Cost {
    let n = logits * samples;
    Cost {
        flops: 4.0 * n as f64,
        bytes: 8.0 * n as f64 + 4.0 * logits as f64,
    }
}

/// The block of the stream `(seed, stream)` with nothing else set.
fn stream_params(seed: u64, stream: u32) -> RandomParams {
    RandomParams {
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        stream,
        ..Default::default()
    }
}

/// Fill `out`, bound as the buffer `name`, with one draw per element.
fn launch_draw(gpu: &Gpu, entry: &str, name: &str, out: &Tensor, params: RandomParams) -> Result<()> {
    let n = out.numel();
    if n == 0 {
        return Ok(());
    }
    let params = RandomParams {
        n: n as u32,
        ..params
    };
    gpu.launch(
        &KERNEL,
        entry,
        &[],
        &params,
        &[(name, out)],
        Grid::Linear(groups_for(n.div_ceil(PER_INVOCATION), WG)),
    )
}

fn check_count(op: &'static str, shape: &[usize]) -> Result<()> {
    if numel(shape) > MAX_ELEMENTS {
        return Err(Error::Shape {
            op,
            detail: format!(
                "shape {shape:?} has {} elements, more than {MAX_ELEMENTS}",
                numel(shape)
            ),
        });
    }
    Ok(())
}

fn check_temperature(op: &'static str, temperature: f32) -> Result<()> {
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "{op}: temperature {temperature} must be finite and positive"
        )));
    }
    Ok(())
}
