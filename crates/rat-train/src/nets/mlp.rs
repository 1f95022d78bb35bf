//! Network builders from `rat-core` layers: the reference's MLP, Gaussian and categorical actors,
//! and the critic with a PopArt value head (ALGORITHMS.md §7). Initialisation is PyTorch's
//! default, drawn from the caller's seeded RNG.

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rat_core::Result;
use rat_core::distributions::{Categorical, DiagGaussian};
use rat_core::layers::{Broadcast, Dense, Layer, Recorder, Sequential, Tangents};

use super::encoders::Encoder;
use super::policy::{Actor, Policy, PolicyTangent};
use crate::config::SigmaType;

/// The reference's `build_mlp`: Linear(in → h₀), ReLU, then Linear(h_{j−1} → h_j), ReLU for each
/// further width. An empty list is the identity. Returns the trunk and its output width.
pub fn mlp(
    in_dim: usize,
    widths: &[usize],
    dtype: DType,
    device: &Device,
    rng: &mut impl Rng,
) -> Result<(Sequential, usize)> {
    let mut layers = Vec::with_capacity(2 * widths.len());
    let mut d = in_dim;
    for &w in widths {
        layers.push(Layer::Dense(Dense::pytorch_init(d, w, dtype, device, rng)?));
        layers.push(Layer::Relu);
        d = w;
    }
    Ok((Sequential::new(layers), d))
}

/// `encoder` followed by [`mlp`] hidden layers of `widths` on its features; returns the trunk and
/// its output width.
fn encoded_mlp(
    encoder: Encoder,
    widths: &[usize],
    dtype: DType,
    device: &Device,
    rng: &mut impl Rng,
) -> Result<(Sequential, usize)> {
    let (hidden, h) = mlp(encoder.out_dim, widths, dtype, device, rng)?;
    let mut net = encoder.net;
    for l in hidden.layers() {
        net.push(l.clone());
    }
    Ok((net, h))
}

/// A dense layer with all-zero weight and bias (the reference's `linear` log-σ head).
fn zero_dense(in_dim: usize, out_dim: usize, dtype: DType, device: &Device) -> Result<Dense> {
    Dense::new(
        Var::zeros((out_dim, in_dim), dtype, device)?,
        Var::zeros(out_dim, dtype, device)?,
    )
}

/// How the Gaussian actor produces log σ.
#[derive(Debug, Clone)]
enum LogStd {
    /// A state-independent vector (initialised to 0).
    Vector(Broadcast),
    /// A linear head on the mean's trunk.
    MuShared(Dense),
    /// Its own trunk and linear head.
    Separate(Sequential, Dense),
    /// A linear map of the observation (initialised to 0).
    Linear(Dense),
}

/// The reference's `MuSigmaNet`: μ = Linear(trunk(s)), log σ per `sigma_type`.
#[derive(Debug, Clone)]
pub struct GaussianActor {
    trunk: Sequential,
    mu: Dense,
    log_std: LogStd,
}

impl GaussianActor {
    /// An actor for observations of `obs_dim` and actions of `act_dim`, with hidden `widths`.
    pub fn new(
        obs_dim: usize,
        act_dim: usize,
        widths: &[usize],
        sigma: SigmaType,
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let (trunk, h) = mlp(obs_dim, widths, dtype, device, rng)?;
        let mu = Dense::pytorch_init(h, act_dim, dtype, device, rng)?;
        let log_std = match sigma {
            SigmaType::Vector => {
                LogStd::Vector(Broadcast::new(Var::zeros(act_dim, dtype, device)?)?)
            }
            SigmaType::MuShared => {
                LogStd::MuShared(Dense::pytorch_init(h, act_dim, dtype, device, rng)?)
            }
            SigmaType::Separate => {
                let (t, h2) = mlp(obs_dim, widths, dtype, device, rng)?;
                LogStd::Separate(t, Dense::pytorch_init(h2, act_dim, dtype, device, rng)?)
            }
            SigmaType::Linear => LogStd::Linear(zero_dense(obs_dim, act_dim, dtype, device)?),
        };
        Ok(Self { trunk, mu, log_std })
    }

    /// The trainable parameters in J's column order, which is the order `forward` records them
    /// (a log-σ vector first, as the reference's parameter order).
    pub fn params(&self) -> Vec<Var> {
        values(self.named_params())
    }

    /// [`params`](Self::params) named by place: `log_std`, `trunk.{i}.weight`, `mu.weight`,
    /// `log_std_head.…`, `log_std_trunk.…`.
    pub fn named_params(&self) -> Vec<(String, Var)> {
        let mut p = Vec::new();
        if let LogStd::Vector(v) = &self.log_std {
            p.push(("log_std".to_string(), v.param().clone()));
        }
        p.extend(self.trunk.named_params("trunk"));
        p.extend(dense_named("mu", &self.mu));
        match &self.log_std {
            LogStd::Vector(_) => {}
            LogStd::MuShared(d) | LogStd::Linear(d) => p.extend(dense_named("log_std_head", d)),
            LogStd::Separate(t, d) => {
                p.extend(t.named_params("log_std_trunk"));
                p.extend(dense_named("log_std_head", d));
            }
        }
        p
    }

    /// The policy at `obs` (b, obs_dim); with a recorder, every parameter block is recorded.
    pub fn forward(&self, obs: &Tensor, mut rec: Option<&mut Recorder>) -> Result<DiagGaussian> {
        let b = obs.dims()[0];
        let vector = match &self.log_std {
            LogStd::Vector(v) => Some(v.forward(b, rec.as_deref_mut())?),
            _ => None,
        };
        let z = self.trunk.forward(obs, rec.as_deref_mut())?;
        let mean = self.mu.forward(&z, rec.as_deref_mut())?;
        let log_std = match (&self.log_std, vector) {
            (LogStd::Vector(_), Some(v)) => v,
            (LogStd::MuShared(d), _) => d.forward(&z, rec)?,
            (LogStd::Separate(t, d), _) => {
                let z2 = t.forward(obs, rec.as_deref_mut())?;
                d.forward(&z2, rec)?
            }
            (LogStd::Linear(d), _) => d.forward(obs, rec)?,
            (LogStd::Vector(v), None) => v.forward(b, rec)?,
        };
        DiagGaussian::new(mean, log_std)
    }
}

impl Actor for GaussianActor {
    fn policy(&self, obs: &Tensor, rec: Option<&mut Recorder>) -> Result<Policy> {
        Ok(Policy::Gaussian(self.forward(obs, rec)?))
    }

    fn named_params(&self) -> Vec<(String, Var)> {
        GaussianActor::named_params(self)
    }

    fn policy_tangent(&self, obs: &Tensor, v: &Tangents) -> Result<PolicyTangent> {
        let (z, tz) = self.trunk.forward_tangent(obs, None, v)?;
        let (mean, tm) = self.mu.forward_tangent(&z, tz.as_ref(), v)?;
        let (log_std, ts) = match &self.log_std {
            LogStd::Vector(p) => p.forward_tangent(obs.dims()[0], v)?,
            LogStd::MuShared(d) => d.forward_tangent(&z, tz.as_ref(), v)?,
            LogStd::Separate(t, d) => {
                let (z2, tz2) = t.forward_tangent(obs, None, v)?;
                d.forward_tangent(&z2, tz2.as_ref(), v)?
            }
            LogStd::Linear(d) => d.forward_tangent(obs, None, v)?,
        };
        Ok(PolicyTangent::Gaussian {
            mean: or_zeros(tm, &mean)?,
            log_std: or_zeros(ts, &log_std)?,
        })
    }
}

/// A categorical actor for discrete actions: logits = Linear(trunk(s)).
#[derive(Debug, Clone)]
pub struct CategoricalActor {
    net: Sequential,
}

impl CategoricalActor {
    /// An actor over `n_actions` with hidden `widths`.
    pub fn new(
        obs_dim: usize,
        n_actions: usize,
        widths: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        Self::on(
            Encoder::identity(obs_dim),
            n_actions,
            widths,
            dtype,
            device,
            rng,
        )
    }

    /// An actor whose hidden `widths` read the features of `encoder` (e.g. a CNN).
    pub fn on(
        encoder: Encoder,
        n_actions: usize,
        widths: &[usize],
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let (mut net, h) = encoded_mlp(encoder, widths, dtype, device, rng)?;
        net.push(Layer::Dense(Dense::pytorch_init(
            h, n_actions, dtype, device, rng,
        )?));
        Ok(Self { net })
    }

    /// The trainable parameters in J's column order.
    pub fn params(&self) -> Vec<Var> {
        self.net.params()
    }

    /// [`params`](Self::params) named by place: `net.{i}.weight`, `net.{i}.bias`.
    pub fn named_params(&self) -> Vec<(String, Var)> {
        self.net.named_params("net")
    }

    /// The policy at `obs`.
    pub fn forward(&self, obs: &Tensor, rec: Option<&mut Recorder>) -> Result<Categorical> {
        Categorical::new(&self.net.forward(obs, rec)?)
    }
}

impl Actor for CategoricalActor {
    fn policy(&self, obs: &Tensor, rec: Option<&mut Recorder>) -> Result<Policy> {
        Ok(Policy::Categorical(self.forward(obs, rec)?))
    }

    fn named_params(&self) -> Vec<(String, Var)> {
        CategoricalActor::named_params(self)
    }

    fn policy_tangent(&self, obs: &Tensor, v: &Tangents) -> Result<PolicyTangent> {
        let (logits, t) = self.net.forward_tangent(obs, None, v)?;
        Ok(PolicyTangent::Categorical(or_zeros(t, &logits)?))
    }
}

/// The critic: an MLP trunk and a linear value head (PopArt's weights when PopArt is on:
/// W ~ U(±√(6/h)), b ~ U(±1/√h); else PyTorch's default). Outputs (b) on the normalised scale.
#[derive(Debug, Clone)]
pub struct Critic {
    trunk: Sequential,
    head: Dense,
}

impl Critic {
    /// A critic for observations of `obs_dim` with hidden `widths`.
    pub fn new(
        obs_dim: usize,
        widths: &[usize],
        popart: bool,
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        Self::on(
            Encoder::identity(obs_dim),
            widths,
            popart,
            dtype,
            device,
            rng,
        )
    }

    /// A critic whose hidden `widths` read the features of `encoder` (e.g. a CNN).
    pub fn on(
        encoder: Encoder,
        widths: &[usize],
        popart: bool,
        dtype: DType,
        device: &Device,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let (trunk, h) = encoded_mlp(encoder, widths, dtype, device, rng)?;
        let head = value_head(h, popart, dtype, device, rng)?;
        Ok(Self { trunk, head })
    }

    /// The trainable parameters.
    pub fn params(&self) -> Vec<Var> {
        values(self.named_params())
    }

    /// [`params`](Self::params) named by place: `trunk.{i}.…`, `head.weight`, `head.bias`.
    pub fn named_params(&self) -> Vec<(String, Var)> {
        let mut p = self.trunk.named_params("trunk");
        p.extend(dense_named("head", &self.head));
        p
    }

    /// The value head (for PopArt's rescaling).
    pub fn head(&self) -> &Dense {
        &self.head
    }

    /// v(s) (b).
    pub fn forward(&self, obs: &Tensor) -> Result<Tensor> {
        Ok(self
            .head
            .forward(&self.trunk.forward(obs, None)?, None)?
            .squeeze(1)?)
    }
}

/// A value head h → 1: PopArt's initialisation (W ~ U(±√(6/h)), b ~ U(±1/√h)) when `popart`,
/// else PyTorch's default.
pub fn value_head(
    h: usize,
    popart: bool,
    dtype: DType,
    device: &Device,
    rng: &mut impl Rng,
) -> Result<Dense> {
    if !popart {
        return Dense::pytorch_init(h, 1, dtype, device, rng);
    }
    let (wb, bb) = ((6.0 / h as f64).sqrt(), 1.0 / (h as f64).sqrt());
    let w: Vec<f64> = (0..h).map(|_| rng.random_range(-wb..wb)).collect();
    let b = [rng.random_range(-bb..bb)];
    let w = Tensor::from_vec(w, (1, h), device)?.to_dtype(dtype)?;
    let b = Tensor::new(&b, device)?.to_dtype(dtype)?;
    Dense::new(Var::from_tensor(&w)?, Var::from_tensor(&b)?)
}

/// Zeros shaped like `like` where forward mode reported an identically-zero tangent.
fn or_zeros(t: Option<Tensor>, like: &Tensor) -> Result<Tensor> {
    Ok(match t {
        Some(t) => t,
        None => like.zeros_like()?,
    })
}

/// A dense layer's weight and bias as `{name}.weight`, `{name}.bias`.
pub(crate) fn dense_named(name: &str, d: &Dense) -> [(String, Var); 2] {
    [
        (format!("{name}.weight"), d.weight().clone()),
        (format!("{name}.bias"), d.bias().clone()),
    ]
}

/// The parameters of a named list, in its order.
pub(crate) fn values(named: Vec<(String, Var)>) -> Vec<Var> {
    named.into_iter().map(|(_, v)| v).collect()
}
