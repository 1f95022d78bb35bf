//! The separate actor–critic agent (actor, critic) and what every agent carries besides its
//! networks ([`Preprocess`]: observation normaliser, PopArt statistics), built from a config and
//! an environment's spaces, with their checkpoint tensors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rat_core::layers::Dense;
use rat_envs::Space;
use rat_rollout::{ObsNormaliser, PopArt, PopArtStats};

use crate::config::Config;
use crate::encoders::{Encoder, NetType};
use crate::error::{Result, invalid};
use crate::nets::{Actor, CategoricalActor, Critic, GaussianActor, Policy};
use crate::runner::RolloutModel;

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

    fn params(&self) -> Vec<Var> {
        match self {
            ActorNet::Gaussian(a) => a.params(),
            ActorNet::Categorical(a) => a.params(),
        }
    }

    fn policy_tangent(
        &self,
        obs: &Tensor,
        v: &rat_core::layers::Tangents,
    ) -> rat_core::Result<crate::nets::PolicyTangent> {
        match self {
            ActorNet::Gaussian(a) => a.policy_tangent(obs, v),
            ActorNet::Categorical(a) => a.policy_tangent(obs, v),
        }
    }
}

/// What every agent keeps besides its networks: the observation normaliser, the PopArt return
/// statistics and the widths of observations and actions.
#[derive(Debug, Clone)]
pub struct Preprocess {
    /// The running observation normaliser (`norm_obs`).
    pub obs_norm: Option<ObsNormaliser>,
    /// The return statistics (`with_popart`).
    pub popart: Option<PopArt>,
    /// Observation width.
    pub obs_dim: usize,
    /// Action width (1 for discrete actions, holding the index).
    pub act_dim: usize,
}

impl Preprocess {
    /// The observation width of a flat `Box` space, or an error.
    pub fn obs_width(obs_space: &Space) -> Result<usize> {
        match obs_space {
            Space::Box { .. } => Ok(obs_space.flat_dim()),
            Space::Discrete { .. } => {
                invalid("discrete observation spaces are not supported; need a Box")
            }
        }
    }

    /// Fresh statistics as `norm_obs` and `with_popart` say.
    pub fn new(config: &Config, obs_dim: usize, act_dim: usize) -> Self {
        Self {
            obs_norm: config
                .nets_config
                .norm_obs
                .then(|| ObsNormaliser::new(obs_dim)),
            popart: config.algo_config.with_popart.then(PopArt::default),
            obs_dim,
            act_dim,
        }
    }

    /// Raw observation rows → the networks' input (n, obs_dim) in f32, normalised when
    /// `norm_obs` is on.
    pub fn normalise(&self, raw: &[f64], device: &Device) -> Result<Tensor> {
        let n = raw.len() / self.obs_dim.max(1);
        let mut out = vec![0f32; raw.len()];
        match &self.obs_norm {
            Some(norm) => norm.normalise(raw, &mut out)?,
            None => out.iter_mut().zip(raw).for_each(|(o, &x)| *o = x as f32),
        }
        Ok(Tensor::from_vec(out, (n, self.obs_dim), device)?)
    }

    /// The current PopArt statistics (identity when PopArt is off).
    pub fn value_stats(&self) -> PopArtStats {
        self.popart.as_ref().map_or(
            PopArtStats {
                mean: 0.0,
                std: 1.0,
            },
            PopArt::stats,
        )
    }

    /// Unnormalised values of normalised-scale predictions `v` (n).
    pub fn unnormalise_values(&self, v: &Tensor) -> Result<Vec<f64>> {
        let stats = self.value_stats();
        let v = v.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        Ok(v.into_iter().map(|y| stats.unnormalise(y)).collect())
    }

    /// Updates PopArt with a rollout's returns and rescales the value `head` so that
    /// unnormalised predictions are unchanged. Returns the new statistics.
    pub fn update_popart(&mut self, returns: &[f64], head: &Dense) -> Result<PopArtStats> {
        let Some(popart) = self.popart.as_mut() else {
            return Ok(PopArtStats {
                mean: 0.0,
                std: 1.0,
            });
        };
        let (old, new) = popart.update(returns)?;
        let (w, b) =
            PopArt::rescale_head(head.weight().as_tensor(), head.bias().as_tensor(), old, new)?;
        head.weight().set(&w)?;
        head.bias().set(&b)?;
        Ok(new)
    }

    /// The statistics as named tensors (f64).
    pub fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let cpu = Device::Cpu;
        let mut out = Vec::new();
        if let Some(n) = &self.obs_norm {
            out.push((
                "obs_rms.mean".into(),
                Tensor::new(n.stats.mean.as_slice(), &cpu)?,
            ));
            out.push((
                "obs_rms.var".into(),
                Tensor::new(n.stats.var.as_slice(), &cpu)?,
            ));
            out.push(("obs_rms.count".into(), Tensor::new(&[n.stats.count], &cpu)?));
        }
        if let Some(p) = &self.popart {
            let stats = [p.mean, p.mean_sq, p.debiasing_term];
            out.push((
                "popart.mean_meansq_debias".into(),
                Tensor::new(&stats, &cpu)?,
            ));
        }
        Ok(out)
    }

    /// Restores what [`tensors`](Self::tensors) saved.
    pub fn load(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        let f64s = |name: &str| -> Result<Vec<f64>> {
            Ok(checkpoint_tensor(t, name)?
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?)
        };
        if let Some(n) = self.obs_norm.as_mut() {
            let (mean, var, count) = (
                f64s("obs_rms.mean")?,
                f64s("obs_rms.var")?,
                f64s("obs_rms.count")?,
            );
            if mean.len() != n.stats.dim() || var.len() != n.stats.dim() || count.len() != 1 {
                return invalid("checkpoint observation statistics do not fit this environment");
            }
            (n.stats.mean, n.stats.var, n.stats.count) = (mean, var, count[0]);
        }
        if let Some(p) = self.popart.as_mut() {
            let s = f64s("popart.mean_meansq_debias")?;
            if s.len() != 3 {
                return invalid("checkpoint PopArt statistics must be 3 values");
            }
            (p.mean, p.mean_sq, p.debiasing_term) = (s[0], s[1], s[2]);
        }
        Ok(())
    }
}

/// The tensor `name` of a checkpoint, or an error naming it.
pub fn checkpoint_tensor<'a>(t: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    t.get(name).ok_or_else(|| {
        crate::Error::Invalid(format!(
            "checkpoint has no tensor '{name}' (another config?)"
        ))
    })
}

/// Network parameters as checkpoint entries `{prefix}.{i}`.
pub fn param_tensors(prefix: &str, params: &[Var]) -> Vec<(String, Tensor)> {
    params
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("{prefix}.{i}"), p.as_tensor().clone()))
        .collect()
}

/// Restores what [`param_tensors`] saved; every entry must be present and of the right shape.
pub fn load_params(t: &HashMap<String, Tensor>, prefix: &str, params: &[Var]) -> Result<()> {
    for (i, p) in params.iter().enumerate() {
        let v = checkpoint_tensor(t, &format!("{prefix}.{i}"))?;
        if v.shape() != p.shape() {
            return invalid(format!(
                "checkpoint tensor {prefix}.{i} is {:?}, the network's is {:?} (another config?)",
                v.shape(),
                p.shape()
            ));
        }
        p.set(&v.to_dtype(p.dtype())?.to_device(p.device())?)?;
    }
    Ok(())
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
        let mut out = param_tensors("actor", &self.actor.params());
        out.extend(param_tensors("critic", &self.critic.params()));
        out.extend(self.pre.tensors()?);
        Ok(out)
    }

    /// Restores what [`tensors`](Self::tensors) saved; every entry must be present and of the
    /// right shape.
    pub fn load(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        load_params(t, "actor", &self.actor.params())?;
        load_params(t, "critic", &self.critic.params())?;
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
