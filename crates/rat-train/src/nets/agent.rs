//! The separate actor–critic agent: an actor for the environment's action space, a critic, and
//! their [`Preprocess`], built from a config and an environment's spaces, with their checkpoint
//! tensors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rat_envs::Space;
use rat_rollout::PopArtStats;

use super::encoders::{Encoder, NetType};
use super::mlp::{CategoricalActor, Critic, GaussianActor};
use super::policy::{Actor, Policy, PolicyTangent};
use super::preprocess::{Preprocess, RolloutModel};
use crate::config::Config;
use crate::error::{Result, invalid};
use crate::io::checkpoint::{load_params, param_tensors};

/// The actor network for the environment's action space.
#[derive(Debug, Clone)]
pub enum ActorNet {
    /// Continuous actions.
    Gaussian(GaussianActor),
    /// Discrete actions.
    Categorical(CategoricalActor),
}

impl Actor for ActorNet {
    fn policy(
        &self,
        obs: &Tensor,
        rec: Option<&mut rat_core::layers::Recorder>,
    ) -> rat_core::Result<Policy> {
        match self {
            ActorNet::Gaussian(a) => a.policy(obs, rec),
            ActorNet::Categorical(a) => a.policy(obs, rec),
        }
    }

    fn named_params(&self) -> Vec<(String, Var)> {
        match self {
            ActorNet::Gaussian(a) => a.named_params(),
            ActorNet::Categorical(a) => a.named_params(),
        }
    }

    fn policy_tangent(
        &self,
        obs: &Tensor,
        v: &rat_core::layers::Tangents,
    ) -> rat_core::Result<PolicyTangent> {
        match self {
            ActorNet::Gaussian(a) => a.policy_tangent(obs, v),
            ActorNet::Categorical(a) => a.policy_tangent(obs, v),
        }
    }
}

/// Everything a separate actor–critic run learns.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The policy.
    pub actor: ActorNet,
    /// The value function (outputs on PopArt's normalised scale when PopArt is on).
    pub critic: Critic,
    /// Observation normaliser, PopArt statistics and widths.
    pub pre: Preprocess,
}

fn widths(size: usize, layers: usize) -> Vec<usize> {
    vec![size; layers]
}

impl Agent {
    /// Networks for `obs_space` → `act_space` as `config.nets_config` says, initialised from `rng`.
    /// `image` is the observations' (height, width, channels) when they are images (what
    /// `VecEnv::image_shape` says); the image encoders (`type: minatar_cnn | nature_cnn |
    /// impala`) need it.
    pub fn new(
        config: &Config,
        obs_space: &Space,
        image: Option<[usize; 3]>,
        act_space: &Space,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let nets = &config.nets_config;
        let algo = &config.algo_config;
        let net_type = NetType::parse(&nets.net_type)?;
        if nets.a_dropout > 0.0 || nets.c_dropout > 0.0 {
            return invalid(
                "a_dropout / c_dropout > 0 is not supported by train_detach \
                 (the reference crashes with it too); set them to 0.0",
            );
        }
        let obs_dim = Preprocess::obs_width(obs_space)?;
        let dt = DType::F32;
        let a_widths = widths(nets.a_hidden_size, nets.a_num_layers);
        let encoder = |rng: &mut _| Encoder::new(net_type, obs_dim, image, dt, device, rng);
        let (actor, act_dim) = match act_space {
            Space::Discrete { n } => {
                let a = CategoricalActor::on(encoder(rng)?, *n, &a_widths, dt, device, rng)?;
                (ActorNet::Categorical(a), 1)
            }
            Space::Box { .. } if net_type != NetType::Mlp => {
                return invalid(format!(
                    "nets_config.type '{}' supports discrete actions only; use type: mlp",
                    nets.net_type
                ));
            }
            Space::Box { .. } => {
                let d = act_space.flat_dim();
                let a =
                    GaussianActor::new(obs_dim, d, &a_widths, algo.sigma_type, dt, device, rng)?;
                (ActorNet::Gaussian(a), d)
            }
        };
        let c_widths = widths(nets.c_hidden_size, nets.c_num_layers);
        let critic = Critic::on(encoder(rng)?, &c_widths, algo.with_popart, dt, device, rng)?;
        Ok(Self {
            actor,
            critic,
            pre: Preprocess::new(config, obs_dim, act_dim),
        })
    }

    /// Raw observation rows → the networks' input (see [`Preprocess::normalise`]).
    pub fn normalise(&self, raw: &[f64], device: &Device) -> Result<Tensor> {
        self.pre.normalise(raw, device)
    }

    /// Unnormalised values V(s) of network inputs `obs` (n), on the host.
    pub fn values(&self, obs: &Tensor) -> Result<Vec<f64>> {
        self.pre.unnormalise_values(&self.critic.forward(obs)?)
    }

    /// Updates PopArt with a rollout's returns and rescales the critic's head.
    pub fn update_popart(&mut self, returns: &[f64]) -> Result<PopArtStats> {
        self.pre.update_popart(returns, self.critic.head())
    }

    /// The learned state as named tensors (parameters, normaliser and PopArt statistics in f64).
    pub fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = param_tensors("actor", &self.actor.named_params());
        out.extend(param_tensors("critic", &self.critic.named_params()));
        out.extend(self.pre.tensors()?);
        Ok(out)
    }

    /// Restores what [`tensors`](Self::tensors) saved; every entry must be present and of the
    /// right shape.
    pub fn load(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        load_params(t, "actor", &self.actor.named_params())?;
        load_params(t, "critic", &self.critic.named_params())?;
        self.pre.load(t)
    }
}

impl RolloutModel for Agent {
    fn pre(&self) -> &Preprocess {
        &self.pre
    }

    fn policy(&self, obs: &Tensor) -> Result<Policy> {
        Ok(self.actor.policy(obs, None)?)
    }

    fn values(&self, obs: &Tensor) -> Result<Vec<f64>> {
        Agent::values(self, obs)
    }
}
