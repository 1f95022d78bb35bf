//! Rollout collection (ALGORITHMS.md 6.1–6.3): T steps of E environments with the frozen
//! observation normaliser, pre-squash actions stored and `tanh(a)·high[0]` sent to the
//! environment, the time-limit bootstrap folded into the reward, then GAE.

use candle_core::{DType, Device, Tensor};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rat_envs::{Space, StepBuffers, VecEnv};

use crate::agent::Preprocess;
use crate::config::AdvType;
use crate::error::{Result, invalid};
use crate::nets::Policy;

/// Discount γ, hard-coded in the reference (no config key).
pub const GAMMA: f64 = 0.999;
/// GAE λ, hard-coded in the reference.
pub const LAMBDA: f64 = 0.95;

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

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}

/// What the environment receives for pre-squash actions: tanh(a)·scale for a box (the reference
/// squashes with the first component of the upper bound only), the index itself when discrete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Squash(Option<f32>);

impl Squash {
    /// The squash for an action space; a box needs finite bounds.
    pub fn for_space(space: &Space) -> Result<Self> {
        match space {
            Space::Discrete { .. } => Ok(Self(None)),
            Space::Box { high, .. } => match high.first() {
                Some(h) if h.is_finite() => Ok(Self(Some(*h as f32))),
                _ => invalid("an unbounded or empty action box cannot be squashed by tanh(a)·high"),
            },
        }
    }

    /// Writes the environment's actions for `actions` into `out` (same length).
    pub fn apply(&self, actions: &[f32], out: &mut [f32]) {
        match self.0 {
            Some(h) => out
                .iter_mut()
                .zip(actions)
                .for_each(|(o, a)| *o = a.tanh() * h),
            None => out.copy_from_slice(actions),
        }
    }
}

/// One rollout, env-major (index e·T + t), as the reference flattens it.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Raw observations (N x obs_dim).
    pub obs: Vec<f64>,
    /// Pre-squash actions (N x act_dim), or indices (N).
    pub actions: Vec<f32>,
    /// Advantages (N), unnormalised.
    pub advantages: Vec<f64>,
    /// Returns R = Â + V (N), unnormalised.
    pub returns: Vec<f64>,
    /// (return, length) of every episode that ended during the rollout, in completion order.
    pub episodes: Vec<(f64, usize)>,
}

impl Rollout {
    /// N = E·T.
    pub fn len(&self) -> usize {
        self.advantages.len()
    }

    /// Whether the rollout is empty.
    pub fn is_empty(&self) -> bool {
        self.advantages.is_empty()
    }
}

/// What a rollout needs of an agent: its preprocessing, its policy and its values.
pub trait RolloutModel {
    /// The observation normaliser, PopArt statistics and widths.
    fn pre(&self) -> &Preprocess;

    /// The policy at network inputs `obs` (no recording).
    fn policy(&self, obs: &Tensor) -> Result<Policy>;

    /// Unnormalised values V(s) of network inputs `obs` (n), on the host.
    fn values(&self, obs: &Tensor) -> Result<Vec<f64>>;

    /// Raw observation rows → the networks' input.
    fn normalise(&self, raw: &[f64], device: &Device) -> Result<Tensor> {
        self.pre().normalise(raw, device)
    }
}

/// Steps a [`VecEnv`] with an agent, keeping the current observations and done flags between
/// rollouts.
pub struct Runner {
    env: VecEnv,
    obs: Vec<f64>,
    dones: Vec<bool>,
    buf: StepBuffers,
    squash: Squash,
    /// The advantage estimator.
    pub adv_type: AdvType,
}

impl Runner {
    /// Resets the environments (the first reset seeds them) and wraps them.
    pub fn new(mut env: VecEnv, adv_type: AdvType) -> Result<Self> {
        let mut buf = env.buffers();
        env.reset(&mut buf.obs)?;
        Ok(Self {
            squash: Squash::for_space(env.action_space())?,
            obs: buf.obs.clone(),
            dones: vec![false; env.num_envs()],
            env,
            buf,
            adv_type,
        })
    }

    /// The environments.
    pub fn env(&self) -> &VecEnv {
        &self.env
    }

    /// Collects `nsteps` steps of every environment with the agent's policy (sampled) and
    /// computes GAE(γ = 0.999, λ = 0.95) with the agent's unnormalised values.
    pub fn run(
        &mut self,
        agent: &dyn RolloutModel,
        nsteps: usize,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Rollout> {
        let (e, d, ad) = (
            self.env.num_envs(),
            agent.pre().obs_dim,
            agent.pre().act_dim,
        );
        let n = e * nsteps;
        let mut obs = Vec::with_capacity(n * d);
        let mut actions = Vec::with_capacity(n * ad);
        let mut rewards = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n);
        let mut dones_before = Vec::with_capacity(n);
        let mut episodes = Vec::new();
        let mut env_actions = vec![0f32; e * ad];
        for _ in 0..nsteps {
            let x = agent.normalise(&self.obs, device)?;
            let a = select_actions(&agent.policy(&x)?, ActionMode::Sample, rng)?;
            values.extend(agent.values(&x)?);
            obs.extend_from_slice(&self.obs);
            actions.extend_from_slice(&a);
            dones_before.extend_from_slice(&self.dones);
            self.squash.apply(&a, &mut env_actions);
            self.env.step(&env_actions, &mut self.buf)?;
            let mut r = self.buf.rewards.clone();
            // Truncated, not terminated: the episode would have gone on, so bootstrap γV(s_T).
            let cut: Vec<usize> = (0..e)
                .filter(|&i| self.buf.truncated[i] && !self.buf.terminated[i])
                .collect();
            if !cut.is_empty() {
                let rows: Vec<f64> = cut
                    .iter()
                    .flat_map(|&i| self.buf.final_obs[i * d..(i + 1) * d].iter().copied())
                    .collect();
                let v = agent.values(&agent.normalise(&rows, device)?)?;
                cut.iter().zip(v).for_each(|(&i, v)| r[i] += GAMMA * v);
            }
            rewards.extend(r);
            episodes.extend(self.buf.episodes().map(|(_, ret, len)| (ret, len)));
            self.obs.copy_from_slice(&self.buf.obs);
            (0..e).for_each(|i| self.dones[i] = self.buf.done(i));
        }
        let last_values = agent.values(&agent.normalise(&self.obs, device)?)?;
        let est = rat_rollout::gae(
            &rewards,
            &values,
            &dones_before,
            &last_values,
            &self.dones,
            e,
            GAMMA,
            LAMBDA,
        )?;
        let advantages = match self.adv_type {
            AdvType::Gae => est.advantages,
            AdvType::Td => rat_rollout::td_errors(
                &rewards,
                &values,
                &dones_before,
                &last_values,
                &self.dones,
                e,
                GAMMA,
            )?,
        };
        Ok(Rollout {
            obs: rat_rollout::env_major(&obs, e, d)?,
            actions: rat_rollout::env_major(&actions, e, ad)?,
            advantages: rat_rollout::env_major(&advantages, e, 1)?,
            returns: rat_rollout::env_major(&est.returns, e, 1)?,
            episodes,
        })
    }
}
