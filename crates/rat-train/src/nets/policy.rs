//! What an actor outputs and what it must provide: the [`Policy`] at a batch of states, its
//! output tangent J_out v, actions drawn from it ([`select_actions`]), and the [`Actor`] trait
//! every actor network implements.

use candle_core::{DType, Tensor, Var};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rat_core::Result;
use rat_core::distributions::{Categorical, DiagGaussian};
use rat_core::layers::{Recorder, Tangents};

/// A policy at a batch of states: the distribution an actor outputs.
#[derive(Debug, Clone)]
pub enum Policy {
    /// Continuous actions (b, act_dim), pre-squash.
    Gaussian(DiagGaussian),
    /// Discrete actions (b) of dtype u32.
    Categorical(Categorical),
}

impl Policy {
    /// log π(a_i | s_i), (b).
    pub fn log_prob(&self, actions: &Tensor) -> Result<Tensor> {
        match self {
            Policy::Gaussian(d) => d.log_prob(actions),
            Policy::Categorical(d) => d.log_prob(actions),
        }
    }

    /// Entropy per sample, (b).
    pub fn entropy(&self) -> Result<Tensor> {
        match self {
            Policy::Gaussian(d) => d.entropy(),
            Policy::Categorical(d) => d.entropy(),
        }
    }

    /// KL(self ‖ other) per sample, (b); the two must be of the same family.
    pub fn kl(&self, other: &Policy) -> Result<Tensor> {
        match (self, other) {
            (Policy::Gaussian(p), Policy::Gaussian(q)) => p.kl(q),
            (Policy::Categorical(p), Policy::Categorical(q)) => p.kl(q),
            _ => Err(rat_core::Error::InvalidArgument {
                op: "Policy::kl",
                msg: "a Gaussian and a categorical policy".into(),
            }),
        }
    }

    /// The policy at the rows `idx` (u32 indices); a shared log-σ row stays shared.
    pub fn select(&self, idx: &Tensor) -> Result<Policy> {
        Ok(match self {
            Policy::Gaussian(d) => {
                // A state-independent log-σ is one row (or a broadcast view of one): keep one row.
                let log_std = if d.log_std().dims()[0] == 1 || d.log_std().stride()[0] == 0 {
                    d.log_std().narrow(0, 0, 1)?.contiguous()?
                } else {
                    d.log_std().index_select(idx, 0)?
                };
                Policy::Gaussian(DiagGaussian::new(d.mean().index_select(idx, 0)?, log_std)?)
            }
            Policy::Categorical(d) => {
                Policy::Categorical(Categorical::new(&d.log_probs().index_select(idx, 0)?)?)
            }
        })
    }

    /// The same policy with its tensors detached (the "old" policy of an update).
    ///
    /// The outputs are copied, not shared: a state-independent log σ is a broadcast *view* of its
    /// parameter, and the optimisers update parameters in place, so a shared view would follow
    /// every step and silently drop the log σ part of the ratio and the KL to this policy (the
    /// reference's `outputs_old` is a copy, `torch.cat` of the outputs).
    pub fn detach(&self) -> Result<Policy> {
        Ok(match self {
            Policy::Gaussian(d) => Policy::Gaussian(DiagGaussian::new(
                d.mean().detach().copy()?,
                d.log_std().detach().copy()?,
            )?),
            Policy::Categorical(d) => {
                Policy::Categorical(Categorical::new(&d.log_probs().detach().copy()?)?)
            }
        })
    }
}

/// The directional derivative of a policy's raw outputs along a parameter tangent v (J_out v).
#[derive(Debug, Clone)]
pub enum PolicyTangent {
    /// Tangents of μ and log σ, both (b, d).
    Gaussian {
        /// μ̇.
        mean: Tensor,
        /// (log σ)˙.
        log_std: Tensor,
    },
    /// Tangent of the logits (b, n).
    Categorical(Tensor),
}

impl Policy {
    /// vᵀ F_i v per sample (b): the output-space Fisher metric's quadratic form on the tangent
    /// J_out v, so that ½ mean_i of it is the quadratic estimate of KL(π ‖ π + dπ) along v.
    ///
    /// Gaussian: Σ_k μ̇_k²/σ_k² + 2 (log σ)˙_k². Categorical: l̇ᵀ (diag p − p pᵀ) l̇.
    pub fn fisher_quadratic(&self, tangent: &PolicyTangent) -> Result<Tensor> {
        let (_, metric) = self.fisher_outputs(tangent)?;
        let raw = match tangent {
            PolicyTangent::Gaussian { mean, log_std } => {
                Tensor::cat(&[mean, &log_std.broadcast_as(mean.shape())?], 1)?
            }
            PolicyTangent::Categorical(t) => t.clone(),
        };
        Ok(raw.mul(&metric)?.sum(1)?)
    }

    /// For the exact Fisher-vector product (`rat_core::fisher::exact_fvp`): outputs whose
    /// Jacobian carries the Fisher, computed with the parameters in the autograd graph, and the
    /// output-space Fisher metric applied to `tangent`, in the same layout.
    ///
    /// Gaussian: outputs [μ, log σ] (b, 2d), metric (μ̇/σ², 2·(log σ)˙). Categorical: outputs the
    /// log-probabilities (b, n), metric (diag p − p pᵀ) l̇ — since log p = l − lse(l), the
    /// log-probabilities' Jacobian J_l − 1 pᵀ J_l gives the same J_lᵀ (diag p − p pᵀ) J_l.
    pub fn fisher_outputs(&self, tangent: &PolicyTangent) -> Result<(Tensor, Tensor)> {
        match (self, tangent) {
            (Policy::Gaussian(d), PolicyTangent::Gaussian { mean, log_std }) => {
                let (mm, ms) = d.fisher_metric(mean, log_std)?;
                let ls = d.log_std().broadcast_as(d.mean().shape())?;
                Ok((
                    Tensor::cat(&[d.mean(), &ls], 1)?,
                    Tensor::cat(&[&mm, &ms], 1)?,
                ))
            }
            (Policy::Categorical(d), PolicyTangent::Categorical(t)) => {
                Ok((d.log_probs().clone(), d.fisher_metric(t)?))
            }
            _ => Err(rat_core::Error::InvalidArgument {
                op: "Policy::fisher_outputs",
                msg: "the tangent is of another policy family".into(),
            }),
        }
    }
}

/// An actor network: a policy per state, built from `rat-core` layers so that a forward pass with
/// a recorder gives the factored score Jacobian.
pub trait Actor {
    /// The policy at `obs` (b, obs_dim); with a recorder, every parameter block is recorded in
    /// the order of [`params`](Actor::params).
    fn policy(&self, obs: &Tensor, rec: Option<&mut Recorder>) -> Result<Policy>;

    /// The trainable parameters, in J's column order, named by their place in the network
    /// (`trunk.0.weight`, `mu.bias`, …): what a checkpoint stores them under.
    fn named_params(&self) -> Vec<(String, Var)>;

    /// The trainable parameters, in J's column order.
    fn params(&self) -> Vec<Var> {
        self.named_params().into_iter().map(|(_, v)| v).collect()
    }

    /// J_out v at `obs`: the directional derivative of the policy's raw outputs along the
    /// parameter tangents (forward mode, no autograd graph).
    fn policy_tangent(&self, obs: &Tensor, v: &Tangents) -> Result<PolicyTangent>;
}

/// How actions are chosen from a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionMode {
    /// Draw from the policy (training).
    Sample,
    /// The mean (Gaussian) or the most likely action (categorical): deterministic evaluation.
    Mode,
}

/// Actions (n x act_dim, row-major; one index per row for a categorical policy) from a policy
/// evaluated at n states. Gaussian: a = μ + exp(log σ)·ξ, ξ ~ N(0, I), pre-squash.
pub fn select_actions(policy: &Policy, mode: ActionMode, rng: &mut impl Rng) -> Result<Vec<f32>> {
    match policy {
        Policy::Gaussian(d) => {
            let mean = d.mean().to_dtype(DType::F32)?;
            let log_std = d
                .log_std()
                .broadcast_as(mean.shape())?
                .to_dtype(DType::F32)?;
            let mean = mean.flatten_all()?.to_vec1::<f32>()?;
            if mode == ActionMode::Mode {
                return Ok(mean);
            }
            let log_std = log_std.flatten_all()?.to_vec1::<f32>()?;
            Ok(mean
                .iter()
                .zip(&log_std)
                .map(|(&m, &s)| {
                    let xi: f32 = StandardNormal.sample(rng);
                    m + s.exp() * xi
                })
                .collect())
        }
        Policy::Categorical(d) => {
            let logp = d.log_probs().to_dtype(DType::F32)?;
            let k = logp.dims()[1];
            let logp = logp.flatten_all()?.to_vec1::<f32>()?;
            Ok(logp
                .chunks(k)
                .map(|row| match mode {
                    ActionMode::Mode => argmax(row) as f32,
                    ActionMode::Sample => {
                        let u: f32 = rng.random();
                        let mut acc = 0.0;
                        row.iter()
                            .position(|&lp| {
                                acc += lp.exp();
                                u < acc
                            })
                            .unwrap_or(k - 1) as f32
                    }
                })
                .collect())
        }
    }
}

/// Draws from `rng` what sampling `rows` actions of `policy`'s kind consumes, and discards it:
/// one rank of several samples only its environments' rows, and skips the others' draws so
/// that its RNG stays where a single process sampling every row would leave it.
pub fn skip_samples(policy: &Policy, rows: usize, rng: &mut impl Rng) {
    match policy {
        Policy::Gaussian(d) => {
            let width = d.mean().dims().last().copied().unwrap_or(1);
            for _ in 0..rows * width {
                let _: f32 = StandardNormal.sample(rng);
            }
        }
        Policy::Categorical(_) => {
            for _ in 0..rows {
                let _: f32 = rng.random();
            }
        }
    }
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}
