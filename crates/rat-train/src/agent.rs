//! The separate actor–critic agent: actor, critic, observation normaliser and PopArt statistics,
//! built from a config and an environment's spaces, and their checkpoint tensors.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rat_envs::Space;
use rat_rollout::{ObsNormaliser, PopArt, PopArtStats};

use crate::config::Config;
use crate::error::{Result, invalid};
use crate::nets::{Actor, CategoricalActor, Critic, GaussianActor, Policy};

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

/// Everything a separate actor–critic run learns.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The policy.
    pub actor: ActorNet,
    /// The value function (outputs on PopArt's normalised scale when PopArt is on).
    pub critic: Critic,
    /// The running observation normaliser (`norm_obs`).
    pub obs_norm: Option<ObsNormaliser>,
    /// The return statistics (`with_popart`).
    pub popart: Option<PopArt>,
    /// Observation width.
    pub obs_dim: usize,
    /// Action width (1 for discrete actions, holding the index).
    pub act_dim: usize,
}

fn widths(size: usize, layers: usize) -> Vec<usize> {
    vec![size; layers]
}

impl Agent {
    /// Networks for `obs_space` → `act_space` as `config.nets_config` says, initialised from `rng`.
    pub fn new(
        config: &Config,
        obs_space: &Space,
        act_space: &Space,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let nets = &config.nets_config;
        let algo = &config.algo_config;
        if nets.net_type != "mlp" {
            return invalid(format!(
                "nets_config.type '{}' is not supported by train_detach; use 'mlp'",
                nets.net_type
            ));
        }
        if nets.a_dropout > 0.0 || nets.c_dropout > 0.0 {
            return invalid(
                "a_dropout / c_dropout > 0 is not supported by train_detach \
                 (the reference crashes with it too); set them to 0.0",
            );
        }
        let obs_dim = match obs_space {
            Space::Box { .. } => obs_space.flat_dim(),
            Space::Discrete { .. } => {
                return invalid("discrete observation spaces are not supported; need a Box");
            }
        };
        let dt = DType::F32;
        let a_widths = widths(nets.a_hidden_size, nets.a_num_layers);
        let (actor, act_dim) = match act_space {
            Space::Discrete { n } => (
                ActorNet::Categorical(CategoricalActor::new(
                    obs_dim, *n, &a_widths, dt, device, rng,
                )?),
                1,
            ),
            Space::Box { .. } => {
                let d = act_space.flat_dim();
                let a =
                    GaussianActor::new(obs_dim, d, &a_widths, algo.sigma_type, dt, device, rng)?;
                (ActorNet::Gaussian(a), d)
            }
        };
        let c_widths = widths(nets.c_hidden_size, nets.c_num_layers);
        let critic = Critic::new(obs_dim, &c_widths, algo.with_popart, dt, device, rng)?;
        Ok(Self {
            actor,
            critic,
            obs_norm: nets.norm_obs.then(|| ObsNormaliser::new(obs_dim)),
            popart: algo.with_popart.then(PopArt::default),
            obs_dim,
            act_dim,
        })
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

    /// Unnormalised values V(s) of network inputs `obs` (n), on the host.
    pub fn values(&self, obs: &Tensor) -> Result<Vec<f64>> {
        let stats = self.value_stats();
        let v = self
            .critic
            .forward(obs)?
            .to_dtype(DType::F64)?
            .to_vec1::<f64>()?;
        Ok(v.into_iter().map(|y| stats.unnormalise(y)).collect())
    }

    /// Updates PopArt with a rollout's returns and rescales the value head so that unnormalised
    /// predictions are unchanged. Returns the new statistics.
    pub fn update_popart(&mut self, returns: &[f64]) -> Result<PopArtStats> {
        let Some(popart) = self.popart.as_mut() else {
            return Ok(PopArtStats {
                mean: 0.0,
                std: 1.0,
            });
        };
        let (old, new) = popart.update(returns)?;
        let head = self.critic.head();
        let (w, b) =
            PopArt::rescale_head(head.weight().as_tensor(), head.bias().as_tensor(), old, new)?;
        head.weight().set(&w)?;
        head.bias().set(&b)?;
        Ok(new)
    }

    /// The learned state as named tensors (parameters, normaliser and PopArt statistics in f64).
    pub fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (i, p) in self.actor.params().iter().enumerate() {
            out.push((format!("actor.{i}"), p.as_tensor().clone()));
        }
        for (i, p) in self.critic.params().iter().enumerate() {
            out.push((format!("critic.{i}"), p.as_tensor().clone()));
        }
        let cpu = Device::Cpu;
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

    /// Restores what [`tensors`](Self::tensors) saved; every entry must be present and of the
    /// right shape.
    pub fn load(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        let get = |name: &str| {
            t.get(name).cloned().ok_or_else(|| {
                crate::Error::Invalid(format!(
                    "checkpoint has no tensor '{name}' (another config?)"
                ))
            })
        };
        let set = |prefix: &str, params: Vec<Var>| -> Result<()> {
            for (i, p) in params.iter().enumerate() {
                let v = get(&format!("{prefix}.{i}"))?;
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
        };
        set("actor", self.actor.params())?;
        set("critic", self.critic.params())?;
        let f64s = |name: &str| -> Result<Vec<f64>> {
            Ok(get(name)?
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
