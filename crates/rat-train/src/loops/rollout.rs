//! Rollout collection (ALGORITHMS.md 6.1–6.3): T steps of E environments with the frozen
//! observation normaliser, pre-squash actions stored and `tanh(a)·high[0]` sent to the
//! environment, the time-limit bootstrap folded into the reward. The rollout returns the raw
//! trajectories; [`advantages`] turns them into GAE advantages and returns.

use candle_core::{Device, Tensor};
use rand::Rng;
use rat_envs::{Space, StepBuffers, VecEnv};
use rat_rollout::{Advantages, PopArtStats, Trajectory};

use crate::config::{AdvType, AlgoConfig};
use crate::error::{Result, invalid};
use crate::nets::{ActionMode, Preprocess, RolloutModel, select_actions, skip_samples};

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

/// One rollout: observations and actions env-major (index e·T + t), as the reference flattens
/// them, and the raw trajectories time-major, for [`advantages`].
#[derive(Debug, Clone)]
pub struct Rollout {
    /// Raw observations (N x obs_dim).
    pub obs: Vec<f64>,
    /// Pre-squash actions (N x act_dim), or indices (N).
    pub actions: Vec<f32>,
    /// Rewards (with the truncation bootstrap), values and done flags, time-major.
    pub trajectory: Trajectory,
    /// (return, length) of every episode that ended during the rollout, in completion order.
    pub episodes: Vec<(f64, usize)>,
    /// (step, global environment index) at which each of `episodes` ended: completion order is
    /// by step, then by environment, which puts the episodes of several ranks back in order.
    pub ended_at: Vec<(usize, usize)>,
}

impl Rollout {
    /// N = E·T.
    pub fn len(&self) -> usize {
        self.trajectory.rewards.len()
    }

    /// Whether the rollout is empty.
    pub fn is_empty(&self) -> bool {
        self.trajectory.rewards.is_empty()
    }
}

/// GAE(γ, λ) of a rollout's trajectories with `algo_config`'s `gamma` and `gae_lambda` (0.999
/// and 0.95, hard-coded in the reference; `adv_type: td`: the one-step TD errors as the
/// advantages, the GAE returns kept), reordered env-major like the rollout's rows.
pub fn advantages(traj: &Trajectory, a: &AlgoConfig) -> Result<Advantages> {
    let est = rat_rollout::gae(traj, a.gamma, a.gae_lambda)?;
    let advantages = match a.adv_type {
        AdvType::Gae => est.advantages,
        AdvType::Td => rat_rollout::td_errors(traj, a.gamma)?,
    };
    let e = traj.num_envs;
    Ok(Advantages {
        advantages: rat_rollout::env_major(&advantages, e, 1)?,
        returns: rat_rollout::env_major(&est.returns, e, 1)?,
    })
}

/// Steps a [`VecEnv`] with an agent, keeping the current observations and done flags between
/// rollouts. The environments may be a share of a larger set (one rank's of several): global
/// indices `share` of `total`, with actions drawn from the RNG as a single process drawing for
/// all `total` would.
pub struct Runner {
    env: VecEnv,
    share: std::ops::Range<usize>,
    total: usize,
    obs: Vec<f64>,
    dones: Vec<bool>,
    buf: StepBuffers,
    squash: Squash,
    /// The discount of the truncation bootstrap γ·V(s_T).
    gamma: f64,
}

impl Runner {
    /// Resets the environments (the first reset seeds them) and wraps them; `gamma` discounts
    /// the bootstrap of truncated episodes.
    pub fn new(env: VecEnv, gamma: f64) -> Result<Self> {
        let n = env.num_envs();
        Self::with_share(env, gamma, 0..n, n)
    }

    /// A runner for the environments of global indices `share` out of `total` (`env` holds
    /// exactly those, seeded as a single process seeds them).
    pub fn with_share(
        mut env: VecEnv,
        gamma: f64,
        share: std::ops::Range<usize>,
        total: usize,
    ) -> Result<Self> {
        if share.len() != env.num_envs() || share.end > total {
            return invalid(format!(
                "environments {share:?} of {total}: {} given",
                env.num_envs()
            ));
        }
        let mut buf = env.buffers();
        env.reset(&mut buf.obs)?;
        Ok(Self {
            share,
            total,
            squash: Squash::for_space(env.action_space())?,
            obs: buf.obs.clone(),
            dones: vec![false; env.num_envs()],
            env,
            buf,
            gamma,
        })
    }

    /// The environments.
    pub fn env(&self) -> &VecEnv {
        &self.env
    }

    /// The environments' states and the observations and done flags the next rollout starts
    /// from, for a checkpoint; `None` for a batch its library steps (Procgen cannot save its
    /// games: a resume then starts new episodes).
    pub fn save_state(&self) -> Result<Option<serde_json::Value>> {
        if self.env.is_library_batch() {
            return Ok(None);
        }
        Ok(Some(serde_json::json!({
            "envs": self.env.save_state()?,
            "obs": self.obs,
            "dones": self.dones,
        })))
    }

    /// Restores what [`save_state`](Self::save_state) saved for all `total` environments (one
    /// process's, or several ranks' merged): this runner takes its share, and the next rollout
    /// continues the checkpoint's episodes exactly.
    pub fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let bad = |e: String| crate::Error::Invalid(format!("checkpoint environments: {e}"));
        let obs: Vec<f64> =
            serde_json::from_value(state["obs"].clone()).map_err(|e| bad(e.to_string()))?;
        let dones: Vec<bool> =
            serde_json::from_value(state["dones"].clone()).map_err(|e| bad(e.to_string()))?;
        let d = self.obs.len() / self.share.len().max(1);
        if obs.len() != self.total * d || dones.len() != self.total {
            return Err(bad(format!(
                "the checkpoint holds {} environments of {} values, this run {} of {d}",
                dones.len(),
                obs.len() / dones.len().max(1),
                self.total
            )));
        }
        let mut envs = state["envs"].clone();
        if let Some(slots) = envs["slots"].as_array_mut() {
            *slots = slots
                .get(self.share.clone())
                .ok_or_else(|| bad("fewer saved environments than observations".into()))?
                .to_vec();
        }
        self.env.load_state(&envs)?;
        self.obs = obs[self.share.start * d..self.share.end * d].to_vec();
        self.dones = dones[self.share.clone()].to_vec();
        Ok(())
    }

    /// Collects `nsteps` steps of every environment with the agent's policy (sampled), folding
    /// γ·V(final obs) into the reward of a truncated (not terminated) episode.
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
        let (mut episodes, mut ended_at) = (Vec::new(), Vec::new());
        let mut env_actions = vec![0f32; e * ad];
        for step in 0..nsteps {
            let x = agent.normalise(&self.obs, device)?;
            let policy = agent.policy(&x)?;
            // The draws of the environments before and after this share are skipped, not made
            // up: the RNG follows the single process's stream.
            skip_samples(&policy, self.share.start, rng);
            let a = select_actions(&policy, ActionMode::Sample, rng)?;
            skip_samples(&policy, self.total - self.share.end, rng);
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
                cut.iter().zip(v).for_each(|(&i, v)| r[i] += self.gamma * v);
            }
            rewards.extend(r);
            for (i, ret, len) in self.buf.episodes() {
                episodes.push((ret, len));
                ended_at.push((step, self.share.start + i));
            }
            self.obs.copy_from_slice(&self.buf.obs);
            (0..e).for_each(|i| self.dones[i] = self.buf.done(i));
        }
        let last_values = agent.values(&agent.normalise(&self.obs, device)?)?;
        Ok(Rollout {
            obs: rat_rollout::env_major(&obs, e, d)?,
            actions: rat_rollout::env_major(&actions, e, ad)?,
            trajectory: Trajectory {
                rewards,
                values,
                dones_before,
                last_values,
                last_dones: self.dones.clone(),
                num_envs: e,
            },
            episodes,
            ended_at,
        })
    }
}

/// Advantages and returns on PopArt's normalised scale (mean shift included), with `stats` the
/// statistics after this rollout's update (identity when PopArt is off).
pub fn normalised(est: &Advantages, stats: PopArtStats) -> Advantages {
    let norm = |x: &[f64]| x.iter().map(|&v| stats.normalise(v)).collect();
    Advantages {
        advantages: norm(&est.advantages),
        returns: norm(&est.returns),
    }
}

/// A rollout as the updates consume it: normalised observations, actions, and the normalised
/// advantages and returns on the device (and on the host, for the log).
pub struct RolloutTensors {
    /// Network inputs (N, obs_dim), normalised with the updated normaliser.
    pub obs: Tensor,
    /// Pre-squash actions (N, act_dim), or indices (N) of dtype u32.
    pub actions: Tensor,
    /// Advantages (N), f32.
    pub adv: Tensor,
    /// Returns (N), f32: the critic's targets.
    pub ret: Tensor,
    /// The same advantages and returns in f64 on the host.
    pub host: Advantages,
}

impl RolloutTensors {
    /// The tensors of `rollout` with advantages and returns `est`, through `pre`.
    pub fn new(
        rollout: &Rollout,
        est: Advantages,
        pre: &Preprocess,
        discrete: bool,
        device: &Device,
    ) -> Result<Self> {
        let obs = pre.normalise(&rollout.obs, device)?;
        let n = rollout.actions.len() / pre.act_dim.max(1);
        let actions = if discrete {
            let v: Vec<u32> = rollout.actions.iter().map(|&a| a as u32).collect();
            Tensor::from_vec(v, n, device)?
        } else {
            Tensor::from_slice(&rollout.actions, (n, pre.act_dim), device)?
        };
        Ok(Self {
            adv: f32_tensor(&est.advantages, device)?,
            ret: f32_tensor(&est.returns, device)?,
            host: est,
            obs,
            actions,
        })
    }
}

fn f32_tensor(x: &[f64], device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    Ok(Tensor::from_vec(v, x.len(), device)?)
}
