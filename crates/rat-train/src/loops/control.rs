//! What both loops add around the update rule to control and watch a rollout's steps: the
//! entropy schedule (`ent_coef_final`), the per-rollout KL stop (`target_kl`), the KL a step
//! actually moved (`step_diagnostics`), and the iteration's step statistics ([`StepStats`]),
//! which become the columns after the reference's in `progress.csv`.

use crate::config::{AlgoConfig, DampingMode};
use crate::error::Result;
use crate::nets::{Actor, Policy};
use crate::rules::{StepInfo, scalar};

/// The entropy coefficient of iteration `it` of `total`: `ent_coef`, or linear from `ent_coef`
/// at the first iteration to `ent_coef_final` at the last.
pub fn ent_coef_at(a: &AlgoConfig, it: usize, total: usize) -> f64 {
    match a.ent_coef_final {
        None => a.ent_coef,
        Some(last) => {
            let frac = it as f64 / total.saturating_sub(1).max(1) as f64;
            a.ent_coef + (last - a.ent_coef) * frac.min(1.0)
        }
    }
}

/// KL(π_old ‖ π_θ) at `obs`, mean over the samples: one forward pass without a graph.
pub fn kl_to(actor: &dyn Actor, old: &Policy, obs: &candle_core::Tensor) -> Result<f64> {
    let new = actor.policy(obs, None)?.detach()?;
    Ok(scalar(&old.kl(&new)?.mean_all()?)?)
}

/// Whether a KL to the rollout's policy ends the iteration's actor passes (`target_kl`).
pub fn past_target(a: &AlgoConfig, kl: f64) -> bool {
    a.target_kl.is_some_and(|t| kl > t)
}

/// The statistics of one iteration's actor steps.
#[derive(Debug, Clone, Default)]
pub struct StepStats {
    steps: usize,
    clipfrac: Vec<f64>,
    kl_step: Vec<f64>,
    kl_pred: Vec<f64>,
    kernel_scale: Vec<f64>,
}

impl StepStats {
    /// Records one step's report and the KL it moved on its minibatch, KL(π_before ‖ π_after)
    /// (NaN: not measured).
    pub fn push(&mut self, info: &StepInfo, kl_step: f64) {
        self.steps += 1;
        let keep = |v: &mut Vec<f64>, x: f64| {
            if x.is_finite() {
                v.push(x)
            }
        };
        keep(&mut self.clipfrac, info.clipfrac);
        keep(&mut self.kl_step, kl_step);
        keep(&mut self.kl_pred, info.kl_pred);
        keep(&mut self.kernel_scale, info.kernel_scale);
    }

    /// The steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Mean clip fraction over the steps (NaN without steps).
    pub fn clipfrac(&self) -> f64 {
        mean(&self.clipfrac)
    }

    /// The columns after the reference's, in order: steps taken, the KL each step moved on its
    /// minibatch (mean, max), their predicted quadratic KL (mean, max), RAT's kernel scale tr(K)/b and λ against it, and
    /// the entropy coefficient used. NaN where not measured.
    pub fn columns(&self, a: &AlgoConfig, ent_coef: f64) -> Vec<(&'static str, f64)> {
        let scale = mean(&self.kernel_scale);
        let ratio = match a.damping_mode {
            DampingMode::Absolute => a.cg_damping / scale,
            DampingMode::Relative if scale.is_finite() => a.cg_damping,
            DampingMode::Relative => f64::NAN,
        };
        vec![
            ("actor_steps", self.steps as f64),
            ("kl_step_mean", mean(&self.kl_step)),
            ("kl_step_max", max(&self.kl_step)),
            ("kl_pred_mean", mean(&self.kl_pred)),
            ("kl_pred_max", max(&self.kl_pred)),
            ("kernel_scale", scale),
            ("damping_ratio", ratio),
            ("ent_coef", ent_coef),
        ]
    }
}

fn mean(x: &[f64]) -> f64 {
    crate::io::report::mean(x)
}

fn max(x: &[f64]) -> f64 {
    x.iter().copied().fold(f64::NAN, f64::max)
}
