//! FIDO and BBMP saliency, and the gradient baselines ([`gradient`]).
//!
//! FIDO learns one dropout logit per cell of an m×m grid. Each step it upsamples the dropout
//! probabilities to the input size, draws B relaxed-Bernoulli masks (Concrete, temperature t),
//! replaces dropped pixels with an in-filler's background, scores the mixed images with the
//! classifier (log-odds of the target class, averaged over the B samples) and takes an Adam
//! step on the logits against SSR (`−s + λ·Σ(1−p)`, keep what matters) or SDR (`s + λ·Σp`,
//! drop what matters). BBMP optimises a continuous keep mask against a fixed reference image.
//!
//! [`Explainer`] records a whole step — sampling, in-filling, forward, backward, Adam — and
//! submits it as one GPU submission; nothing is read back unless the host asks.

pub mod ca_infill;
mod config;
pub mod gradient;
pub mod infill;
pub mod report;

use std::time::Instant;

use crate::autodiff::{Tape, Var};
use crate::imageio::Normalize;
use crate::ops::elementwise::{self, UnaryOp};
use crate::ops::{optim, resize, softmax};
use crate::tensor::Tensor;
use crate::{Error, Gpu, Result};

pub use ca_infill::{CaInfiller, CaSetup};
pub use config::{ExplainConfig, ExplainConfigBuilder, ExplainOverrides, Method, Objective};
pub use infill::{InfillKind, Infiller};

/// A differentiable classifier: images `[N, 3, H, W]` to logits `[N, classes]` on the tape.
pub trait Model {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var>;
}

impl<F: Fn(&Tape, &Var) -> Result<Var>> Model for F {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        self(tape, x)
    }
}

/// The regulariser ramps in linearly over this many steps, as in the reference code.
pub const REGULARISER_RAMP_STEPS: usize = 30;

/// Where one step's GPU time goes, from timing each phase as its own submission.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepProfile {
    /// Mask sampling, in-filling and mixing (ms).
    pub sample_and_mix: f64,
    /// The classifier's forward pass and the score (ms).
    pub forward: f64,
    /// The backward pass to the mask (ms).
    pub backward: f64,
    /// The Adam update (ms).
    pub adam: f64,
}

/// Values read back for a progress display.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub step: usize,
    pub loss: f32,
    /// Mean log-odds of the target over the step's samples.
    pub score: f32,
}

/// A finished explanation.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub config: ExplainConfig,
    pub target: usize,
    /// Importance at the model's input resolution, row-major `height × width`
    /// (SSR: keep probability; SDR: dropout probability).
    pub importance: Vec<f32>,
    pub height: usize,
    pub width: usize,
    /// The m×m parameters: dropout logits (FIDO) or the keep mask (BBMP); empty for the
    /// gradient methods.
    pub mask_logits: Vec<f32>,
    /// The gradient methods' attribution, row-major 3×H×W: `∂s/∂x` (vanilla) or
    /// `x · mean ∂s/∂x` along the path (integrated gradients); None for FIDO and BBMP.
    pub gradient: Option<Vec<f32>>,
    pub prob_before: f32,
    /// Target probability after the MAP mask is applied (SSR: only the important pixels
    /// kept; SDR: the important pixels in-filled).
    pub prob_with_map: f32,
    pub seconds: f64,
    /// Steps taken: the config's `steps` once finished, fewer for a snapshot mid-run.
    pub steps_done: usize,
    /// Progress read back during the run.
    pub history: Vec<Progress>,
}

/// Drives one explanation step by step, so a host can show the mask as it evolves.
pub struct Explainer<'m> {
    gpu: Gpu,
    model: &'m dyn Model,
    config: ExplainConfig,
    image: Tensor,
    target: usize,
    labels: Tensor,
    params: Tensor,
    adam: optim::Adam,
    infiller: Box<dyn Infiller>,
    step: usize,
    last: Option<(Tensor, Tensor)>,
    /// The last step's mixed images `[B, 3, H, W]` (normalised), what the classifier saw.
    last_mixed: Option<Tensor>,
    started: Instant,
    prob_before: f32,
    history: Vec<Progress>,
    /// When profiling, the GPU time of each phase so far in this step.
    profile: Option<Vec<f64>>,
}

impl<'m> Explainer<'m> {
    /// Prepare an explanation of `image` `[1, 3, H, W]` (normalised for `model`). `target`
    /// None picks the model's top-1 class. `infiller` overrides the heuristic in-filler named
    /// in the config (the CA in-painter comes in this way).
    pub fn new(
        model: &'m dyn Model,
        image: &Tensor,
        target: Option<usize>,
        norm: Normalize,
        config: ExplainConfig,
        infiller: Option<Box<dyn Infiller>>,
    ) -> Result<Explainer<'m>> {
        config.validate()?;
        let gpu = image.gpu().clone();
        if image.rank() != 4 || image.shape()[0] != 1 || image.shape()[1] != 3 {
            return Err(Error::Shape {
                op: "explain",
                detail: format!("image must be [1, 3, H, W], got {:?}", image.shape()),
            });
        }
        let (h, w) = (image.shape()[2], image.shape()[3]);
        if !config.method.is_gradient() && config.mask_size > h.min(w) {
            return Err(Error::InvalidArgument(format!(
                "--mask-size {} exceeds the {h}×{w} model input",
                config.mask_size
            )));
        }
        let logits = Tape::new().no_grad_forward(model, image)?;
        let classes = logits.shape()[1];
        let probs = softmax::softmax(&logits)?.to_vec()?;
        let target = match target {
            Some(c) if c >= classes => {
                return Err(Error::InvalidArgument(format!(
                    "--label {c} is out of range: the model has {classes} classes"
                )))
            }
            Some(c) => c,
            None => argmax(&probs),
        };
        let samples = if config.method == Method::Fido {
            config.batch
        } else {
            1
        };
        let labels = Tensor::from_u32(&gpu, &[samples], &vec![target as u32; samples])?;
        let m = config.mask_size;
        let params = match config.method {
            // Dropout logits start at 0: every pixel is dropped with probability ½.
            Method::Fido => Tensor::zeros(&gpu, &[1, 1, m, m])?,
            // BBMP's keep mask starts fully kept.
            Method::Bbmp => Tensor::full(&gpu, &[1, 1, m, m], 1.0)?,
            // The gradient methods sum their gradients here, in the input's shape.
            Method::Gradient | Method::IntegratedGradients => Tensor::zeros(&gpu, &[1, 3, h, w])?,
        };
        let adam = optim::Adam::new(&params, optim::AdamConfig::default())?;
        let infiller = match infiller {
            Some(i) => i,
            None => infill::heuristic(config.infill, image, norm)?,
        };
        Ok(Explainer {
            gpu,
            model,
            config,
            image: image.clone(),
            target,
            labels,
            params,
            adam,
            infiller,
            step: 0,
            last: None,
            last_mixed: None,
            started: Instant::now(),
            prob_before: probs[target],
            history: Vec::new(),
            profile: None,
        })
    }

    pub fn target(&self) -> usize {
        self.target
    }
    pub fn steps_done(&self) -> usize {
        self.step
    }
    pub fn config(&self) -> &ExplainConfig {
        &self.config
    }
    /// The m×m parameters as a GPU tensor (`[1, 1, m, m]`), which a host can bind. For the
    /// gradient methods, the sum of the gradients taken so far (`[1, 3, H, W]`).
    pub fn mask(&self) -> &Tensor {
        &self.params
    }

    /// Record and submit one optimisation step. Reads nothing back.
    pub fn step(&mut self) -> Result<()> {
        if self.step >= self.config.steps {
            return Err(Error::InvalidArgument(format!(
                "all {} steps are done",
                self.config.steps
            )));
        }
        let (loss, score, grad) = self.method_step()?;
        if self.config.method.is_gradient() {
            self.params = elementwise::add(&self.params, &grad)?;
            self.last = Some((loss, score));
            self.step = self.path_chunk().end;
            self.gpu.flush();
            return Ok(());
        }
        let lr = match self.config.method {
            Method::Fido => self.config.lr * (1.0 - self.step as f32 / self.config.steps as f32),
            _ => self.config.lr,
        };
        self.adam.step(&self.params, &grad, lr)?;
        if self.config.method == Method::Bbmp {
            optim::clamp_in_place(&self.params, 0.0, 1.0)?;
        }
        self.last = Some((loss, score));
        self.step += 1;
        self.gpu.flush();
        Ok(())
    }

    /// Run one step with a submission after each phase, and report where the time went.
    /// Slower than [`Explainer::step`], which submits the whole step at once.
    pub fn step_profiled(&mut self) -> Result<StepProfile> {
        self.gpu.sync()?;
        self.profile = Some(Vec::new());
        let result = self.step();
        let phases = self.profile.take().unwrap_or_default();
        result?;
        let t = self.gpu.flush_timed()?;
        let adam = t.gpu_ms.unwrap_or(t.wall_ms);
        match phases[..] {
            [sample_and_mix, forward, backward] => Ok(StepProfile {
                sample_and_mix,
                forward,
                backward,
                adam,
            }),
            _ => Err(Error::Gpu("profiling saw an unexpected number of phases".into())),
        }
    }

    /// End of a phase: when profiling, submit what is recorded and time it.
    fn phase_done(&mut self) -> Result<()> {
        if self.profile.is_some() {
            let t = self.gpu.flush_timed()?;
            let ms = t.gpu_ms.unwrap_or(t.wall_ms);
            self.profile.as_mut().expect("profiling").push(ms);
        }
        Ok(())
    }

    fn regulariser_weight(&self) -> f32 {
        self.config.lambda * (self.step as f32 / REGULARISER_RAMP_STEPS as f32).min(1.0)
    }

    /// Loss, score and mask gradient of the current step for the configured method.
    fn method_step(&mut self) -> Result<(Tensor, Tensor, Tensor)> {
        match self.config.method {
            Method::Fido => self.fido_step(),
            Method::Bbmp => self.bbmp_step(),
            Method::Gradient | Method::IntegratedGradients => self.gradient_step(),
        }
    }

    /// The path points the next gradient step takes: up to `batch` of them.
    fn path_chunk(&self) -> std::ops::Range<usize> {
        let c = &self.config;
        self.step..(self.step + c.batch.max(1)).min(c.steps)
    }

    /// The gradient methods' step: the score (as loss and score) and the gradients summed
    /// over this chunk of path points (vanilla gradients: the one point α = 1).
    fn gradient_step(&mut self) -> Result<(Tensor, Tensor, Tensor)> {
        let alphas = match self.config.method {
            Method::IntegratedGradients => {
                gradient::path_points(self.config.steps)[self.path_chunk()].to_vec()
            }
            _ => vec![1.0],
        };
        self.phase_done()?;
        let (score, grad) = gradient::gradient_sum(self.model, &self.image, self.target, &alphas)?;
        // The forward and backward passes are one call here: profile them as one phase.
        self.phase_done()?;
        self.phase_done()?;
        Ok((score.clone(), score, grad))
    }

    /// The gradient methods' attribution so far, `[1, 3, H, W]`.
    fn attribution(&self) -> Result<Tensor> {
        gradient::attribution(
            self.config.method == Method::IntegratedGradients,
            &self.image,
            &self.params,
            self.step,
        )
    }

    fn fido_step(&mut self) -> Result<(Tensor, Tensor, Tensor)> {
        let (h, w) = (self.image.shape()[2], self.image.shape()[3]);
        let c = self.config.clone();
        let tape = Tape::new();
        let theta = tape.param(self.params.clone());
        // p = sigmoid(θ) upsampled; the Concrete sampler wants its logit back. Clamping keeps
        // log p and log(1−p) finite once θ saturates.
        let p_up = theta
            .sigmoid()?
            .resize_bilinear(h, w, true)?
            .unary(UnaryOp::Clamp {
                lo: 1e-6,
                hi: 1.0 - 1e-6,
            })?;
        let logit_up = p_up.log()?.sub(&p_up.unary(UnaryOp::RsubScalar(1.0))?.log()?)?;
        let dropped = logit_up.concrete_sample(c.batch, c.temperature, c.seed, self.step as u32)?;
        let keep = dropped.unary(UnaryOp::RsubScalar(1.0))?;
        let hard_keep = elementwise::unary(keep.value(), UnaryOp::Step(0.5))?;
        let background = self.infiller.fill(
            &hard_keep,
            c.seed.wrapping_mul(0x9E37_79B9).wrapping_add(self.step as u64),
        )?;
        // x·keep + (1−keep)·background; only `keep` is differentiable.
        let mixed = keep.mix(&self.image, &background)?;
        self.last_mixed = Some(mixed.value().clone());
        self.phase_done()?;
        let score = self
            .model
            .forward(&tape, &mixed)?
            .log_odds(&self.labels)?
            .mean()?;
        let area = match c.objective {
            Objective::Ssr => p_up.unary(UnaryOp::RsubScalar(1.0))?.sum()?,
            Objective::Sdr => p_up.sum()?,
        };
        let sign = if c.objective == Objective::Ssr { -1.0 } else { 1.0 };
        let mut loss = score
            .mul_scalar(sign)?
            .add(&area.mul_scalar(self.regulariser_weight())?)?;
        if c.tv > 0.0 {
            loss = loss.add(&total_variation(&p_up)?.mul_scalar(c.tv)?)?;
        }
        self.phase_done()?;
        let mut grads = tape.backward(&loss)?;
        self.phase_done()?;
        let grad = grads
            .take(&theta)
            .ok_or_else(|| Error::Gpu("no gradient reached the mask".into()))?;
        Ok((loss.into_value(), score.into_value(), grad))
    }

    fn bbmp_step(&mut self) -> Result<(Tensor, Tensor, Tensor)> {
        let (h, w) = (self.image.shape()[2], self.image.shape()[3]);
        let tape = Tape::new();
        let mask = tape.param(self.params.clone());
        let keep = mask.resize_bilinear(h, w, true)?;
        let ones = Tensor::full(&self.gpu, &[1, 1, h, w], 1.0)?;
        let reference = self
            .infiller
            .fill(&ones, self.config.seed.wrapping_add(self.step as u64))?;
        let mixed = keep.mix(&self.image, &reference)?;
        self.last_mixed = Some(mixed.value().clone());
        self.phase_done()?;
        let score = self
            .model
            .forward(&tape, &mixed)?
            .log_odds(&self.labels)?
            .mean()?;
        let (sign, area) = match self.config.objective {
            Objective::Ssr => (-1.0, keep.sum()?),
            Objective::Sdr => (1.0, keep.unary(UnaryOp::RsubScalar(1.0))?.sum()?),
        };
        let loss = score
            .mul_scalar(sign)?
            .add(&area.mul_scalar(self.config.lambda)?)?;
        self.phase_done()?;
        let mut grads = tape.backward(&loss)?;
        self.phase_done()?;
        let grad = grads
            .take(&mask)
            .ok_or_else(|| Error::Gpu("no gradient reached the mask".into()))?;
        Ok((loss.into_value(), score.into_value(), grad))
    }

    /// The loss and its gradient with respect to the mask parameters at the current step,
    /// without updating anything (for checks and for hosts that run their own optimiser).
    pub fn loss_and_gradient(&mut self) -> Result<(f32, Tensor)> {
        let (loss, _, grad) = self.method_step()?;
        Ok((loss.item()?, grad))
    }

    /// Replace the mask parameters (same shape), e.g. to evaluate the loss elsewhere.
    pub fn set_mask(&mut self, values: &[f32]) -> Result<()> {
        self.params = Tensor::from_slice(&self.gpu, self.params.shape(), values)?;
        Ok(())
    }

    /// Read back the last step's loss and score (blocks until the GPU has finished it).
    pub fn progress(&self) -> Result<Option<Progress>> {
        match &self.last {
            None => Ok(None),
            Some((loss, score)) => Ok(Some(Progress {
                step: self.step,
                loss: loss.item()?,
                score: score.item()?,
            })),
        }
    }

    /// The current importance map `[1, 1, H, W]` on the GPU.
    pub fn importance(&self) -> Result<Tensor> {
        let (h, w) = (self.image.shape()[2], self.image.shape()[3]);
        match self.config.method {
            Method::Gradient | Method::IntegratedGradients => {
                let values = gradient::importance(&self.attribution()?.to_vec()?, h, w);
                Tensor::from_slice(&self.gpu, &[1, 1, h, w], &values)
            }
            Method::Fido => {
                // SSR: keep probability sigmoid(−up(θ)); SDR: dropout probability sigmoid(up(θ)).
                let up = resize::resize_bilinear(&self.params, h, w, true)?;
                let sign = if self.config.objective == Objective::Ssr {
                    -1.0
                } else {
                    1.0
                };
                elementwise::sigmoid(&elementwise::mul_scalar(&up, sign)?)
            }
            Method::Bbmp => {
                let keep = resize::resize_bilinear(&self.params, h, w, true)?;
                match self.config.objective {
                    Objective::Ssr => Ok(keep),
                    Objective::Sdr => elementwise::unary(&keep, UnaryOp::RsubScalar(1.0)),
                }
            }
        }
    }

    /// Run the remaining steps, calling `on_progress` every `every` steps and at the end.
    pub fn run(&mut self, every: usize, mut on_progress: impl FnMut(Progress)) -> Result<()> {
        while self.step < self.config.steps {
            self.step()?;
            if every > 0 && (self.step % every == 0 || self.step == self.config.steps) {
                if let Some(p) = self.progress()? {
                    self.history.push(p);
                    on_progress(p);
                }
            }
        }
        Ok(())
    }

    /// The images the classifier scored in the last step, `[B, 3, H, W]` and normalised
    /// as the model's input (FIDO: the B in-filled samples; BBMP: the one blend), on the
    /// GPU; None before the first step and for the gradient methods.
    pub fn last_mixed(&self) -> Option<&Tensor> {
        self.last_mixed.as_ref()
    }

    /// The last step's score (the target's mean log-odds, one f32) on the GPU, which a host
    /// can copy into a curve buffer without reading it back.
    pub fn last_score(&self) -> Option<&Tensor> {
        self.last.as_ref().map(|(_, score)| score)
    }

    /// The input image `[1, 3, H, W]`, normalised as the model's input.
    pub fn image(&self) -> &Tensor {
        &self.image
    }

    /// Read the result back, and score the MAP mask.
    pub fn finish(mut self) -> Result<Explanation> {
        self.snapshot()
    }

    /// [`Explainer::finish`] at the current step, leaving the explainer to go on: what a
    /// live viewer saves mid-run.
    pub fn snapshot(&mut self) -> Result<Explanation> {
        let (h, w) = (self.image.shape()[2], self.image.shape()[3]);
        let (importance_t, gradient) = if self.config.method.is_gradient() {
            let attribution = self.attribution()?.to_vec()?;
            let values = gradient::importance(&attribution, h, w);
            (
                Tensor::from_slice(&self.gpu, &[1, 1, h, w], &values)?,
                Some(attribution),
            )
        } else {
            (self.importance()?, None)
        };
        let importance = importance_t.to_vec()?;
        // The MAP mask keeps (SSR) or drops (SDR) the pixels marked important.
        let important = elementwise::unary(&importance_t, UnaryOp::Step(0.5))?;
        let keep = match self.config.objective {
            Objective::Ssr => important,
            Objective::Sdr => elementwise::unary(&important, UnaryOp::RsubScalar(1.0))?,
        };
        let background = self.infiller.fill(&keep, self.config.seed ^ 0x5EED)?;
        let tape = Tape::new();
        let mixed = tape.no_grad(|| tape.constant(keep.clone()).mix(&self.image, &background))?;
        let logits = tape.no_grad_forward(self.model, mixed.value())?;
        let prob_with_map = softmax::softmax(&logits)?.to_vec()?[self.target];
        Ok(Explanation {
            target: self.target,
            importance,
            height: h,
            width: w,
            mask_logits: if gradient.is_some() {
                Vec::new()
            } else {
                self.params.to_vec()?
            },
            gradient,
            prob_before: self.prob_before,
            prob_with_map,
            seconds: self.started.elapsed().as_secs_f64(),
            steps_done: self.step,
            history: self.history.clone(),
            config: self.config.clone(),
        })
    }
}

impl Tape {
    /// Logits of `model` on `x` without recording anything.
    pub fn no_grad_forward(&self, model: &dyn Model, x: &Tensor) -> Result<Tensor> {
        self.no_grad(|| {
            model
                .forward(self, &self.constant(x.clone()))
                .map(Var::into_value)
        })
    }
}

/// Σ of squared differences between vertically and horizontally adjacent values.
fn total_variation(p: &Var) -> Result<Var> {
    let (h, w) = (p.shape()[2], p.shape()[3]);
    let dv = p.slice(2, 1, h)?.sub(&p.slice(2, 0, h - 1)?)?;
    let dh = p.slice(3, 1, w)?.sub(&p.slice(3, 0, w - 1)?)?;
    dv.unary(UnaryOp::Square)?
        .sum()?
        .add(&dh.unary(UnaryOp::Square)?.sum()?)
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |best, (i, &v)| if v > best.1 { (i, v) } else { best },
        )
        .0
}

impl Model for crate::models::Classifier {
    fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        crate::models::Classifier::forward(self, tape, x)
    }
}
