//! The shared actor–critic of `train_shared` (ALGORITHMS.md 7.4): an optional image encoder
//! (see [`encoders`](super::encoders)) and an MLP trunk feeding a policy head (Gaussian mean with
//! a state-independent log σ, or categorical logits) and a PopArt value head, with dropout after
//! every hidden ReLU of the MLP trunk when configured.
//!
//! Dropout is a per-minibatch mask drawn once and passed to every forward pass of that update, so
//! the recorded layer inputs, the backward pass and hence the factored score Jacobian all see the
//! same mask as the loss (the reference silently ignores the setting). Rollouts and the old
//! policy use no mask (evaluation mode).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rat_core::distributions::{Categorical, DiagGaussian};
use rat_core::layers::{Broadcast, Dense, Recorder, Sequential};
use rat_envs::Space;

use super::encoders::{Encoder, NetType};
use super::mlp::{dense_named, value_head, values};
use super::policy::Policy;
use super::preprocess::{Preprocess, RolloutModel};
use crate::config::{Config, SigmaType};
use crate::error::{Result, invalid};
use crate::io::checkpoint::{load_params, param_tensors};

/// The shared trunk and heads (`nets_config`'s `hidden_size`, `num_layers`, `dropout`;
/// `algo_config.with_popart`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrunkSpec {
    /// Width of every hidden layer.
    pub width: usize,
    /// Number of hidden layers after the encoder.
    pub layers: usize,
    /// Dropout probability after every hidden ReLU, in [0, 1).
    pub dropout: f64,
    /// Whether the value head is PopArt's.
    pub popart: bool,
}

/// Inverted-dropout masks, one (b, h) tensor of 0 and 1/(1 − p) per hidden layer.
#[derive(Debug, Clone)]
pub struct DropoutMasks(pub Vec<Tensor>);

/// The shared network's outputs at a batch of states.
#[derive(Debug, Clone)]
pub struct JointOutput {
    /// The policy.
    pub policy: Policy,
    /// v(s) on PopArt's normalised scale, (b).
    pub value: Tensor,
}

/// The reference's `SharedActorCritic`.
#[derive(Debug, Clone)]
pub struct SharedActorCritic {
    encoder: Sequential,
    obs_dim: usize,
    trunk: Vec<Dense>,
    pi_head: Dense,
    log_std: Option<Broadcast>,
    value: Dense,
    dropout: f64,
}

impl SharedActorCritic {
    /// A network reading observations through `encoder` ([`Encoder::identity`] for the
    /// reference's MLP), then the trunk `spec` describes, for `act_space` actions; PyTorch's
    /// default initialisation (PopArt's for the value head when `spec.popart`).
    pub fn new(
        encoder: Encoder,
        act_space: &Space,
        spec: TrunkSpec,
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let TrunkSpec {
            width,
            layers,
            dropout,
            popart,
        } = spec;
        if !(0.0..1.0).contains(&dropout) {
            return invalid(format!("dropout must be in [0, 1), got {dropout}"));
        }
        let mut trunk = Vec::with_capacity(layers);
        let mut d = encoder.out_dim;
        for _ in 0..layers {
            trunk.push(Dense::pytorch_init(d, width, dtype, device, rng)?);
            d = width;
        }
        let (out, log_std) = match act_space {
            Space::Discrete { n } => (*n, None),
            Space::Box { .. } => {
                let a = act_space.flat_dim();
                (a, Some(Broadcast::new(Var::zeros(a, dtype, device)?)?))
            }
        };
        let pi_head = Dense::pytorch_init(d, out, dtype, device, rng)?;
        let value = value_head(d, popart, dtype, device, rng)?;
        Ok(Self {
            encoder: encoder.net,
            obs_dim: encoder.in_dim,
            trunk,
            pi_head,
            log_std,
            value,
            dropout,
        })
    }

    /// All trainable parameters in the reference's order, which is also the recording order:
    /// log σ, encoder, trunk, pi_head, value head.
    pub fn params(&self) -> Vec<Var> {
        values(self.named_params())
    }

    /// [`params`](Self::params) named by place: `log_std`, `encoder.{i}.…`, `trunk.{i}.…`,
    /// `pi_head.…`, `value.…`.
    pub fn named_params(&self) -> Vec<(String, Var)> {
        let mut p = Vec::new();
        if let Some(s) = &self.log_std {
            p.push(("log_std".to_string(), s.param().clone()));
        }
        p.extend(self.encoder.named_params("encoder"));
        for (i, d) in self.trunk.iter().enumerate() {
            p.extend(dense_named(&format!("trunk.{i}"), d));
        }
        p.extend(dense_named("pi_head", &self.pi_head));
        p.extend(dense_named("value", &self.value));
        p
    }

    /// The value head (for PopArt's rescaling).
    pub fn value_head(&self) -> &Dense {
        &self.value
    }

    /// The dropout probability.
    pub fn dropout(&self) -> f64 {
        self.dropout
    }

    /// Fresh dropout masks for a batch of `b` (None when dropout is off).
    pub fn sample_masks(
        &self,
        b: usize,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Option<DropoutMasks>> {
        if self.dropout == 0.0 {
            return Ok(None);
        }
        let keep = 1.0 / (1.0 - self.dropout);
        let masks = self
            .trunk
            .iter()
            .map(|d| {
                let h = d.out_dim();
                let m: Vec<f32> = (0..b * h)
                    .map(|_| {
                        if rng.random::<f64>() < self.dropout {
                            0.0
                        } else {
                            keep as f32
                        }
                    })
                    .collect();
                Ok(Tensor::from_vec(m, (b, h), device)?.to_dtype(d.weight().dtype())?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(DropoutMasks(masks)))
    }

    /// Policy and value at `obs` (b, obs_dim). With a recorder every parameter block is recorded
    /// in [`params`](Self::params) order; `masks` applies dropout after each hidden ReLU.
    pub fn forward(
        &self,
        obs: &Tensor,
        mut rec: Option<&mut Recorder>,
        masks: Option<&DropoutMasks>,
    ) -> Result<JointOutput> {
        let width = self.obs_dim;
        let b = match obs.dims() {
            [b, d] if *d == width => *b,
            _ => {
                return invalid(format!(
                    "expected observations (b, {width}), got {:?}",
                    obs.shape()
                ));
            }
        };
        let log_std = self
            .log_std
            .as_ref()
            .map(|s| s.forward(b, rec.as_deref_mut()))
            .transpose()?;
        let mut z = self.encoder.forward(obs, rec.as_deref_mut())?;
        for (l, d) in self.trunk.iter().enumerate() {
            z = d.forward(&z, rec.as_deref_mut())?.relu()?;
            if let Some(m) = masks.and_then(|m| m.0.get(l)) {
                z = z.mul(m)?;
            }
        }
        let head = self.pi_head.forward(&z, rec.as_deref_mut())?;
        let value = self.value.forward(&z, rec)?.squeeze(1)?;
        let policy = match log_std {
            Some(s) => Policy::Gaussian(DiagGaussian::new(head, s)?),
            None => Policy::Categorical(Categorical::new(&head)?),
        };
        Ok(JointOutput { policy, value })
    }
}

/// Everything a shared actor–critic run learns.
#[derive(Debug, Clone)]
pub struct SharedAgent {
    /// The network.
    pub net: SharedActorCritic,
    /// Observation normaliser, PopArt statistics and widths.
    pub pre: Preprocess,
}

impl SharedAgent {
    /// The network for `obs_space` → `act_space` as `config.nets_config` says (`hidden_size`,
    /// `num_layers`, `dropout`), initialised from `rng`.
    pub fn new(
        config: &Config,
        obs_space: &Space,
        image: Option<[usize; 3]>,
        act_space: &Space,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let nets = &config.nets_config;
        let net_type = NetType::parse(&nets.net_type)?;
        if config.algo_config.sigma_type != SigmaType::Vector {
            return invalid("train_shared supports sigma_type: vector only (as the reference)");
        }
        let obs_dim = Preprocess::obs_width(obs_space)?;
        let act_dim = match act_space {
            Space::Discrete { .. } => 1,
            Space::Box { .. } => act_space.flat_dim(),
        };
        if net_type != NetType::Mlp && !act_space.is_discrete() {
            return invalid(format!(
                "nets_config.type '{}' supports discrete actions only; use type: mlp",
                nets.net_type
            ));
        }
        let encoder = Encoder::new(net_type, obs_dim, image, DType::F32, device, rng)?;
        let net = SharedActorCritic::new(
            encoder,
            act_space,
            TrunkSpec {
                width: nets.hidden_size,
                layers: nets.num_layers,
                dropout: nets.dropout,
                popart: config.algo_config.with_popart,
            },
            DType::F32,
            device,
            rng,
        )?;
        Ok(Self {
            net,
            pre: Preprocess::new(config, obs_dim, act_dim),
        })
    }

    /// Updates PopArt with a rollout's returns and rescales the value head.
    pub fn update_popart(&mut self, returns: &[f64]) -> Result<rat_rollout::PopArtStats> {
        self.pre.update_popart(returns, self.net.value_head())
    }

    /// The learned state as named tensors.
    pub fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out = param_tensors("shared", &self.net.named_params());
        out.extend(self.pre.tensors()?);
        Ok(out)
    }

    /// Restores what [`tensors`](Self::tensors) saved.
    pub fn load(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        load_params(t, "shared", &self.net.named_params())?;
        self.pre.load(t)
    }
}

impl RolloutModel for SharedAgent {
    fn pre(&self) -> &Preprocess {
        &self.pre
    }

    fn policy(&self, obs: &Tensor) -> Result<Policy> {
        Ok(self.net.forward(obs, None, None)?.policy)
    }

    fn values(&self, obs: &Tensor) -> Result<Vec<f64>> {
        let out = self.net.forward(obs, None, None)?;
        self.pre.unnormalise_values(&out.value)
    }
}
