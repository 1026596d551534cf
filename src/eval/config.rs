//! What an evaluation computes: the configurations compared, the metrics and their settings,
//! and the values the command line gives them in (`method[-objective]:infill`, `CONFIG=DIR`,
//! comma-separated lists).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::manifest::EvalJob;
use super::shard::Shard;
use super::slug;
use crate::explain::{CaSetup, ExplainConfig, ExplainOverrides, InfillKind, Method, Objective};
use crate::imageio::{Normalize, Resize};
use crate::{Error, Result};

/// A configuration as written, `method[-objective]:infill` (`fido:local`, `fido-sdr:blur`,
/// `bbmp:blur`, …, and the gradient baselines `gradient:-` and `ig:-`, whose in-filler only
/// scores the MAP mask); [`build`](Self::build) turns it into settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigSpec {
    pub method: Method,
    /// None: SSR.
    pub objective: Option<Objective>,
    pub infill: InfillKind,
}

impl FromStr for ConfigSpec {
    type Err = Error;
    fn from_str(spec: &str) -> Result<ConfigSpec> {
        let bad = |why: String| {
            Error::InvalidArgument(format!(
                "configuration `{spec}`: {why}; expected method[-objective]:infill, e.g. fido:local or fido-sdr:blur"
            ))
        };
        let (head, infill) = spec.split_once(':').ok_or_else(|| bad("no `:`".into()))?;
        // A whole method name first (`integrated-gradients` holds a `-` of its own).
        let (method, objective) = match (head.trim().parse::<Method>(), head.split_once('-')) {
            (Ok(method), _) => (method, None),
            (Err(_), Some((m, o))) => (m.trim().parse().map_err(|e| bad(reason(&e)))?, Some(o)),
            (Err(e), None) => return Err(bad(reason(&e))),
        };
        let reason = |e: Error| bad(reason(&e));
        let objective = objective.map(|o| o.trim().parse()).transpose().map_err(reason)?;
        // The gradient methods have no in-filler in the loop: `-` takes the one that scores
        // their MAP mask by default.
        let infill = match infill.trim() {
            "-" if method.is_gradient() => ExplainConfig::paper(method).infill,
            "-" => return Err(bad(format!("{method} needs an in-filler"))),
            other => other.parse().map_err(reason)?,
        };
        Ok(ConfigSpec {
            method,
            objective,
            infill,
        })
    }
}

/// The canonical name: `method[-objective]:infill`, the objective left out when it is SSR;
/// integrated gradients are `ig`, and a gradient method with its default in-filler (which
/// only scores the MAP mask) is written `gradient:-` or `ig:-`.
impl fmt::Display for ConfigSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.method.short_name())?;
        match self.objective {
            None | Some(Objective::Ssr) => {}
            Some(o) => write!(f, "-{o}")?,
        }
        if self.method.is_gradient() && self.infill == ExplainConfig::paper(self.method).infill {
            write!(f, ":-")
        } else {
            write!(f, ":{}", self.infill)
        }
    }
}

impl ConfigSpec {
    /// The configuration with `overrides` on top of the paper's settings for the method,
    /// checked.
    pub fn build(&self, overrides: &ExplainOverrides) -> Result<EvalConfig> {
        let name = self.to_string();
        let explain = ExplainConfig::builder(self.method)
            .objective(self.objective)
            .infill(self.infill)
            .overrides(overrides)
            .build()
            .map_err(|e| Error::InvalidArgument(format!("configuration `{name}`: {}", reason(&e))))?;
        Ok(EvalConfig { name, explain })
    }
}

/// The message of an error without its kind's prefix, to wrap in another message.
fn reason(e: &Error) -> String {
    match e {
        Error::InvalidArgument(m) => m.clone(),
        e => e.to_string(),
    }
}

/// A named explanation setting, parsed from `method[-objective]:infill`.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalConfig {
    pub name: String,
    pub explain: ExplainConfig,
}

impl EvalConfig {
    /// Parse `fido:local`, `fido-sdr:blur`, `bbmp:blur`, … with the paper's settings for the
    /// method.
    pub fn parse(spec: &str) -> Result<EvalConfig> {
        spec.parse::<ConfigSpec>()?.build(&ExplainOverrides::default())
    }

    /// A folder-safe form of the name.
    pub fn slug(&self) -> String {
        slug(&self.name)
    }
}

/// A comma-separated list of in-fillers, e.g. `mean,blur,random,local` (empty: none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InfillList(pub Vec<InfillKind>);

impl FromStr for InfillList {
    type Err = Error;
    fn from_str(text: &str) -> Result<InfillList> {
        parse_infill_list(text).map(InfillList)
    }
}

/// A comma-separated list of fractions in [0, 1], e.g. drop rates `0.25,0.5,0.75`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fractions(pub Vec<f64>);

impl FromStr for Fractions {
    type Err = Error;
    fn from_str(text: &str) -> Result<Fractions> {
        parse_fractions(text).map(Fractions)
    }
}

/// Parse a comma-separated list of in-fillers, e.g. `mean,blur,random,local`.
pub fn parse_infill_list(text: &str) -> Result<Vec<InfillKind>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse())
        .collect()
}

/// Parse a comma-separated list of numbers in [0, 1], e.g. drop rates `0.25,0.5,0.75`.
pub fn parse_fractions(text: &str) -> Result<Vec<f64>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| match s.trim().parse::<f64>() {
            Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
            _ => Err(Error::InvalidArgument(format!(
                "`{s}` is not a fraction between 0 and 1"
            ))),
        })
        .collect()
}

/// The removal grid `step, 2·step, …, 1`.
pub fn removal_grid(step: f64) -> Result<Vec<f64>> {
    if !(step > 0.0 && step <= 1.0) {
        return Err(Error::InvalidArgument(format!(
            "the removal step must be in (0, 1], got {step}"
        )));
    }
    let n = (1.0 / step).round().max(1.0) as usize;
    Ok((1..=n).map(|i| (i as f64 * step).min(1.0)).collect())
}

/// `CONFIG=DIR`, as in `--reuse fido:local=runs/explain`: the maps of a configuration are
/// taken from a `fido explain` output folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Reuse {
    pub config: ConfigSpec,
    pub dir: PathBuf,
}

impl FromStr for Reuse {
    type Err = Error;
    fn from_str(text: &str) -> Result<Reuse> {
        let (name, dir) = text.split_once('=').ok_or_else(|| {
            Error::InvalidArgument(format!(
                "--reuse `{text}`: expected CONFIG=DIR, e.g. fido:local=runs/a"
            ))
        })?;
        Ok(Reuse {
            config: name.parse()?,
            dir: PathBuf::from(dir),
        })
    }
}

/// Parse `CONFIG=DIR` (as in `--reuse fido:local=runs/a`), normalising the name.
pub fn parse_reuse(text: &str) -> Result<(String, PathBuf)> {
    let reuse: Reuse = text.parse()?;
    Ok((reuse.config.to_string(), reuse.dir))
}

/// Which metrics to compute, and their settings.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSettings {
    pub off_box: bool,
    /// Pixel-removal fractions (empty: no removal curve).
    pub removal_fractions: Vec<f64>,
    /// The in-filler that replaces removed pixels.
    pub removal_infill: InfillKind,
    /// Normalised drops whose smallest reaching fraction is reported.
    pub removal_levels: Vec<f64>,
    pub saliency: bool,
    /// Run every fresh explanation a second time with `seed + 1` and compare the maps.
    pub stability: bool,
    /// In-fillers scored under random pixel masks (empty: none).
    pub infill_quality: Vec<InfillKind>,
    pub infill_drop_rates: Vec<f64>,
    /// Random masks per drop rate and in-filler.
    pub infill_samples: usize,
}

impl Default for MetricSettings {
    fn default() -> Self {
        MetricSettings {
            off_box: true,
            removal_fractions: (1..=20).map(|i| i as f64 * 0.05).collect(),
            removal_infill: InfillKind::Blur,
            removal_levels: vec![0.5, 0.8],
            saliency: true,
            stability: false,
            infill_quality: Vec::new(),
            infill_drop_rates: vec![0.25, 0.5, 0.75],
            infill_samples: 4,
        }
    }
}

/// Everything an evaluation run needs besides the GPU and the classifier.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    pub jobs: Vec<EvalJob>,
    pub configs: Vec<EvalConfig>,
    pub out: PathBuf,
    /// The model's name, for the reports.
    pub model_name: String,
    pub resize: Resize,
    pub norm: Normalize,
    pub metrics: MetricSettings,
    /// Maps to reuse instead of computing: configuration name → a `fido explain` output
    /// folder holding `<image stem>/saliency.safetensors`.
    pub reuse: BTreeMap<String, PathBuf>,
    /// The CA generator, for `…:ca` configurations and CA removal or quality scoring.
    pub ca: Option<CaSetup>,
    pub shard: Shard,
    /// Images per classifier forward pass when scoring removal levels and random masks.
    pub score_batch: usize,
    /// Score only images the classifier gets right (the paper's protocol).
    pub only_correct: bool,
    /// Examples per configuration in the HTML report's grid.
    pub examples: usize,
    pub progress: bool,
}

impl EvalOptions {
    pub fn new(jobs: Vec<EvalJob>, configs: Vec<EvalConfig>, out: PathBuf) -> EvalOptions {
        EvalOptions {
            jobs,
            configs,
            out,
            model_name: String::from("model"),
            resize: Resize::ShorterThenCentreCrop {
                shorter: 256,
                crop: 224,
            },
            norm: Normalize::IMAGENET,
            metrics: MetricSettings::default(),
            reuse: BTreeMap::new(),
            ca: None,
            shard: Shard::ALL,
            score_batch: 8,
            only_correct: true,
            examples: 8,
            progress: true,
        }
    }

    /// Refuse what cannot run: nothing to evaluate, maps offered for a configuration not
    /// evaluated, a score batch of 0, or CA scoring without the in-painter.
    pub fn check(&self) -> Result<()> {
        if self.configs.is_empty() && self.metrics.infill_quality.is_empty() {
            return Err(Error::InvalidArgument(
                "nothing to evaluate: give at least one configuration or in-filler".into(),
            ));
        }
        if self.score_batch == 0 {
            return Err(Error::InvalidArgument("--score-batch must be at least 1".into()));
        }
        for name in self.reuse.keys() {
            if !self.configs.iter().any(|c| &c.name == name) {
                return Err(Error::InvalidArgument(format!(
                    "maps are offered for `{name}`, which is not among the configurations"
                )));
            }
        }
        if self.ca.is_none() {
            let m = &self.metrics;
            let mut needs: Vec<String> = self
                .configs
                .iter()
                .filter(|c| c.explain.infill == InfillKind::Ca && !self.reuse.contains_key(&c.name))
                .map(|c| format!("`{}`", c.name))
                .collect();
            if !m.removal_fractions.is_empty() && m.removal_infill == InfillKind::Ca {
                needs.push("--removal-infill ca".into());
            }
            if m.infill_quality.contains(&InfillKind::Ca) {
                needs.push("--infill-quality ca".into());
            }
            if !needs.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "{} need the CA in-painter: pass --infill-weights CA.safetensors",
                    needs.join(", ")
                )));
            }
        }
        Ok(())
    }
}
