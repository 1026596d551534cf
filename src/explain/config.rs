//! The settings of one explanation: the method, its objective and in-filler, and the
//! optimisation settings, with the paper's defaults and one place that checks them.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

use super::InfillKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Fido,
    Bbmp,
    /// Vanilla gradients (Simonyan et al.): the derivative of the target's log-odds with
    /// respect to the input.
    Gradient,
    /// Integrated gradients (Sundararajan et al.) from a zero baseline, midpoint rule.
    IntegratedGradients,
}

impl Method {
    /// The gradient baselines, which optimise nothing: no mask, no in-filler in the loop.
    pub fn is_gradient(self) -> bool {
        matches!(self, Method::Gradient | Method::IntegratedGradients)
    }

    /// The name in `fido eval` configurations, where `-` separates the objective: `ig` for
    /// integrated gradients, else the method's name.
    pub fn short_name(self) -> &'static str {
        match self {
            Method::IntegratedGradients => "ig",
            Method::Fido => "fido",
            Method::Bbmp => "bbmp",
            Method::Gradient => "gradient",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objective {
    /// Smallest sufficient region: keep as little as possible while the class survives.
    Ssr,
    /// Smallest destroying region: drop as little as possible to destroy the class.
    Sdr,
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "fido" => Ok(Self::Fido),
            "bbmp" => Ok(Self::Bbmp),
            "gradient" => Ok(Self::Gradient),
            "integrated-gradients" | "ig" => Ok(Self::IntegratedGradients),
            other => Err(Error::InvalidArgument(format!(
                "unknown method `{other}`; expected fido, bbmp, gradient or integrated-gradients (ig)"
            ))),
        }
    }
}

impl FromStr for Objective {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ssr" => Ok(Self::Ssr),
            "sdr" => Ok(Self::Sdr),
            other => Err(Error::InvalidArgument(format!(
                "unknown objective `{other}`; expected ssr or sdr"
            ))),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IntegratedGradients => "integrated-gradients",
            other => other.short_name(),
        })
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if *self == Self::Ssr { "ssr" } else { "sdr" })
    }
}

/// Settings of one explanation. [`ExplainConfig::paper`] gives the paper's.
#[derive(Clone, Debug, PartialEq)]
pub struct ExplainConfig {
    pub method: Method,
    pub objective: Objective,
    pub infill: InfillKind,
    pub steps: usize,
    /// Mask samples per step (FIDO); BBMP always uses one image.
    pub batch: usize,
    pub lambda: f32,
    pub lr: f32,
    pub mask_size: usize,
    pub temperature: f32,
    /// Weight of the total-variation penalty on the upsampled probabilities (0: off).
    pub tv: f32,
    pub seed: u64,
}

/// Settings a user may impose on top of a method's defaults (None: the default). As a
/// command-line group, these are the method settings `fido explain` and `fido eval` share;
/// unset ones take the method's defaults, which are the paper's.
#[derive(Clone, Debug, Default, PartialEq, clap::Args)]
pub struct ExplainOverrides {
    /// Optimisation steps [default: 300]; for integrated gradients the number of points on
    /// the path [default: 32]; vanilla gradients take one.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Mask samples per FIDO step [default: 8]; BBMP always optimises one image; integrated
    /// gradients: path points per forward pass [default: 8].
    #[arg(long)]
    pub batch: Option<usize>,
    /// Sparsity weight [default: 1e-3 for FIDO, 5e-3 for BBMP].
    #[arg(long)]
    pub lambda: Option<f32>,
    /// Adam learning rate, decayed linearly to 0 [default: 0.05].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Side of the mask grid [default: 56].
    #[arg(long)]
    pub mask_size: Option<usize>,
    /// Concrete relaxation temperature [default: 0.1].
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Total-variation weight on the upsampled mask [default: 0, off].
    #[arg(long)]
    pub tv: Option<f32>,
    /// Seed of the mask samples [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Builds an [`ExplainConfig`] from a method's paper defaults, the choices made on top of
/// them and the user's overrides, and checks the result once, in [`build`](Self::build).
#[derive(Clone, Debug)]
pub struct ExplainConfigBuilder {
    method: Method,
    objective: Option<Objective>,
    infill: Option<InfillKind>,
    overrides: ExplainOverrides,
    ca_weights: Option<bool>,
}

impl ExplainConfigBuilder {
    /// The objective; None keeps the default (SSR).
    pub fn objective(mut self, objective: impl Into<Option<Objective>>) -> Self {
        self.objective = objective.into();
        self
    }

    /// The in-filler; None keeps the method's default (local for FIDO, blur for BBMP).
    pub fn infill(mut self, infill: impl Into<Option<InfillKind>>) -> Self {
        self.infill = infill.into();
        self
    }

    /// Settings that replace the defaults where they are set.
    pub fn overrides(mut self, overrides: &ExplainOverrides) -> Self {
        self.overrides = overrides.clone();
        self
    }

    /// Whether the CA in-painter's weights are at hand: without them the CA in-filler is
    /// refused. Not calling this leaves that check to whoever supplies the in-filler.
    pub fn ca_weights(mut self, present: bool) -> Self {
        self.ca_weights = Some(present);
        self
    }

    /// The configuration, or a one-line error naming the offending option.
    pub fn build(self) -> Result<ExplainConfig> {
        let o = &self.overrides;
        if o.batch == Some(0) {
            return Err(Error::InvalidArgument("--batch must be at least 1".into()));
        }
        let paper = ExplainConfig::paper(self.method);
        let config = ExplainConfig {
            objective: self.objective.unwrap_or(paper.objective),
            infill: self.infill.unwrap_or(paper.infill),
            // Vanilla gradients are one backward pass.
            steps: match self.method {
                Method::Gradient => paper.steps,
                _ => o.steps.unwrap_or(paper.steps),
            },
            // BBMP always optimises one image, vanilla gradients look at one.
            batch: match self.method {
                Method::Fido | Method::IntegratedGradients => o.batch.unwrap_or(paper.batch),
                Method::Bbmp | Method::Gradient => paper.batch,
            },
            mask_size: o.mask_size.unwrap_or(paper.mask_size),
            lambda: o.lambda.unwrap_or(paper.lambda),
            lr: o.lr.unwrap_or(paper.lr),
            temperature: o.temperature.unwrap_or(paper.temperature),
            tv: o.tv.unwrap_or(paper.tv),
            seed: o.seed.unwrap_or(paper.seed),
            ..paper
        };
        if config.infill == InfillKind::Ca && self.ca_weights == Some(false) {
            return Err(Error::InvalidArgument(
                "--infill ca needs --infill-weights CA.safetensors".into(),
            ));
        }
        config.validate()?;
        Ok(config)
    }
}

impl ExplainConfig {
    /// Start from the paper's settings for `method`; see [`ExplainConfigBuilder`].
    pub fn builder(method: Method) -> ExplainConfigBuilder {
        ExplainConfigBuilder {
            method,
            objective: None,
            infill: None,
            overrides: ExplainOverrides::default(),
            ca_weights: None,
        }
    }

    /// The paper's settings for `method`. The gradient baselines optimise nothing: their
    /// in-filler only scores the MAP mask (Blur, as BBMP's reference), `steps` is the number
    /// of gradients taken (1; 32 path points for integrated gradients) and `batch` the
    /// gradients per forward pass; λ, lr, mask size and temperature are unused.
    pub fn paper(method: Method) -> ExplainConfig {
        ExplainConfig {
            method,
            objective: Objective::Ssr,
            infill: if method == Method::Fido {
                InfillKind::Local
            } else {
                InfillKind::Blur
            },
            steps: match method {
                Method::Fido | Method::Bbmp => 300,
                Method::Gradient => 1,
                Method::IntegratedGradients => 32,
            },
            batch: match method {
                Method::Fido | Method::IntegratedGradients => 8,
                Method::Bbmp | Method::Gradient => 1,
            },
            lambda: match method {
                Method::Fido => 1e-3,
                Method::Bbmp => 5e-3,
                Method::Gradient | Method::IntegratedGradients => 0.0,
            },
            lr: 0.05,
            mask_size: 56,
            temperature: 0.1,
            tv: 0.0,
            seed: 0,
        }
    }

    /// Check the settings; every way of making a configuration ends here.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.steps == 0 {
            return bad("--steps must be at least 1".into());
        }
        if self.batch == 0 {
            return bad("--batch must be at least 1".into());
        }
        if !(self.lambda >= 0.0 && self.lambda.is_finite()) {
            return bad(format!(
                "--lambda must be a finite value ≥ 0, got {}",
                self.lambda
            ));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("--lr must be positive, got {}", self.lr));
        }
        if self.mask_size < 2 {
            return bad(format!("--mask-size must be at least 2, got {}", self.mask_size));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(format!(
                "--temperature must be positive, got {}",
                self.temperature
            ));
        }
        if !(self.tv >= 0.0 && self.tv.is_finite()) {
            return bad(format!("--tv must be ≥ 0, got {}", self.tv));
        }
        if self.method == Method::Bbmp
            && !matches!(
                self.infill,
                InfillKind::Blur | InfillKind::Random | InfillKind::Mean
            )
        {
            return bad(format!(
                "BBMP uses a fixed reference: --infill blur, random or mean, not {}",
                self.infill
            ));
        }
        Ok(())
    }
}
