//! The optimisers, each owning its checkpoint state: [`Sgd`] (the reference's near-zero-momentum
//! SGD, whose buffer RAT reads as its Kaczmarz vector), [`Adam`] (the critic's and PPO's;
//! [`LazyAdam`] builds it on the first step), and the
//! actor's KL-adaptive learning rate ([`KlAdaptiveLr`]).

use std::collections::HashMap;

use candle_core::{Shape, Tensor, Var};
use rat_core::kaczmarz::REFERENCE_MOMENTUM;
use rat_core::{Result, params};

/// θ ← θ − lr·step for each parameter.
pub fn apply_step(params: &[Var], step: &[Tensor], lr: f64) -> Result<()> {
    for (p, d) in params.iter().zip(step) {
        p.set(&p.as_tensor().sub(&d.affine(lr, 0.0)?)?)?;
    }
    Ok(())
}

/// The reference's SGD (`torch.optim.SGD` with momentum μ = 1e-6): buf ← ĝ on the first step,
/// buf ← μ·buf + ĝ afterwards, θ ← θ − lr·buf. With so small a μ the buffer is ≈ the last
/// clipped loss gradient, which is what RAT's Kaczmarz correction reads
/// ([`rat_core::kaczmarz::reference_correction`]).
#[derive(Debug, Clone)]
pub struct Sgd {
    momentum: f64,
    buffer: Option<Vec<Tensor>>,
}

impl Default for Sgd {
    fn default() -> Self {
        Self::new()
    }
}

impl Sgd {
    /// A fresh state (no buffer) with the reference's momentum.
    pub fn new() -> Self {
        Self {
            momentum: REFERENCE_MOMENTUM,
            buffer: None,
        }
    }

    /// The momentum buffer (the last step's direction), once a step was taken.
    pub fn buffer(&self) -> Option<&[Tensor]> {
        self.buffer.as_deref()
    }

    /// One step of `params` along the loss gradient `grad` (already clipped).
    pub fn step(&mut self, params: &[Var], grad: &[Tensor], lr: f64) -> Result<()> {
        apply_step(params, self.remember(grad)?, lr)
    }

    /// The buffer update of [`step`](Self::step) without moving any parameter, for a rule
    /// that reads the buffer (RAT's Kaczmarz vector) but steps with another optimiser.
    pub fn remember(&mut self, grad: &[Tensor]) -> Result<&[Tensor]> {
        let next = match &self.buffer {
            None => grad.to_vec(),
            Some(buf) => {
                let shapes: Vec<Shape> = buf.iter().map(|t| t.shape().clone()).collect();
                params::check_shapes("Sgd::step", &shapes, grad)?;
                params::axpy(self.momentum, buf, grad)?
            }
        };
        Ok(self.buffer.insert(next))
    }

    /// The buffer as checkpoint entries `momentum_buffer.{i}` (none before the first step).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.buffer
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| (format!("momentum_buffer.{i}"), t.clone()))
            .collect()
    }

    /// Restores what [`state`](Self::state) saved (no entries: a fresh buffer).
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let mut buf = Vec::new();
        while let Some(t) = state.get(&format!("momentum_buffer.{}", buf.len())) {
            buf.push(t.clone());
        }
        self.buffer = (!buf.is_empty()).then_some(buf);
        Ok(())
    }
}

/// Adam (Kingma & Ba 2015) as PyTorch implements it, without weight decay:
///
/// m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  θ ← θ − lr·(m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε).
#[derive(Debug, Clone)]
pub struct Adam {
    /// β₁ (0.9).
    pub beta1: f64,
    /// β₂ (0.999).
    pub beta2: f64,
    /// ε (1e-8), added outside the square root.
    pub eps: f64,
    /// Steps taken.
    pub t: u64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl Adam {
    /// PyTorch's defaults for parameters shaped as `params`.
    pub fn new(params: &[Var]) -> Result<Self> {
        let zeros = params
            .iter()
            .map(|p| p.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: zeros.clone(),
            v: zeros,
        })
    }

    /// One step with loss gradients `grads` (same order and shapes as the parameters).
    pub fn step(&mut self, params: &[Var], grads: &[Tensor], lr: f64) -> Result<()> {
        rat_core::params::check_shapes(
            "Adam::step",
            &params.iter().map(|p| p.shape().clone()).collect::<Vec<_>>(),
            grads,
        )?;
        self.t += 1;
        let bias1 = 1.0 - self.beta1.powi(self.t as i32);
        let bias2 = 1.0 - self.beta2.powi(self.t as i32);
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            self.m[i] = self.m[i]
                .affine(self.beta1, 0.0)?
                .add(&g.affine(1.0 - self.beta1, 0.0)?)?;
            self.v[i] = self.v[i]
                .affine(self.beta2, 0.0)?
                .add(&g.sqr()?.affine(1.0 - self.beta2, 0.0)?)?;
            let denom = self.v[i]
                .affine(1.0 / bias2, 0.0)?
                .sqrt()?
                .affine(1.0, self.eps)?;
            let update = self.m[i].affine(lr / bias1, 0.0)?.div(&denom)?;
            p.set(&p.as_tensor().sub(&update)?)?;
        }
        Ok(())
    }

    /// The first and second moments.
    pub fn moments(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// The state as checkpoint entries: `m.{i}`, `v.{i}` and the step count `t` (f64).
    pub fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let moments = |name: &str, xs: &[Tensor]| -> Vec<(String, Tensor)> {
            xs.iter()
                .enumerate()
                .map(|(i, x)| (format!("{name}.{i}"), x.clone()))
                .collect()
        };
        let mut out = moments("m", &self.m);
        out.extend(moments("v", &self.v));
        out.push((
            "t".into(),
            Tensor::new(&[self.t as f64], &candle_core::Device::Cpu)?,
        ));
        Ok(out)
    }

    /// Restores what [`state`](Self::state) saved, onto the parameters' device; every moment
    /// must be present and shaped as the parameters.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let device = self.m.first().map(|m| m.device().clone());
        let load = |name: &str| -> Result<Vec<Tensor>> {
            (0..self.m.len())
                .map(|i| {
                    let key = format!("{name}.{i}");
                    let t = state
                        .get(&key)
                        .ok_or_else(|| missing("Adam::load_state", &key))?;
                    Ok(match &device {
                        Some(d) => t.to_device(d)?,
                        None => t.clone(),
                    })
                })
                .collect()
        };
        let (m, v) = (load("m")?, load("v")?);
        let t = state
            .get("t")
            .ok_or_else(|| missing("Adam::load_state", "t"))?
            .to_dtype(candle_core::DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let shapes: Vec<_> = self.m.iter().map(|x| x.shape().clone()).collect();
        params::check_shapes("Adam::load_state (m)", &shapes, &m)?;
        params::check_shapes("Adam::load_state (v)", &shapes, &v)?;
        (self.m, self.v) = (m, v);
        self.t = t.first().copied().unwrap_or(0.0) as u64;
        Ok(())
    }
}

/// An [`Adam`] whose moments are created from the parameters on its first step, for a rule
/// built before it sees the network; its checkpoint entries are prefixed `adam.`.
#[derive(Debug, Clone)]
pub struct LazyAdam {
    eps: f64,
    adam: Option<Adam>,
}

impl LazyAdam {
    /// No moments yet; `eps` is Adam's ε (CleanRL's PPO: 1e-5).
    pub fn new(eps: f64) -> Self {
        Self { eps, adam: None }
    }

    fn adam(&mut self, params: &[Var]) -> Result<&mut Adam> {
        match &mut self.adam {
            Some(adam) => Ok(adam),
            slot => {
                let mut adam = Adam::new(params)?;
                adam.eps = self.eps;
                Ok(slot.insert(adam))
            }
        }
    }

    /// One Adam step with loss gradients `grads`.
    pub fn step(&mut self, params: &[Var], grads: &[Tensor], lr: f64) -> Result<()> {
        self.adam(params)?.step(params, grads, lr)
    }

    /// Adam's state as `adam.`-prefixed entries (none before the first step).
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let state = self.adam.as_ref().map(Adam::state).transpose();
        // Adam's state is plain tensors; a failure here would be an allocation failure.
        state
            .ok()
            .flatten()
            .into_iter()
            .flatten()
            .map(|(k, v)| (format!("adam.{k}"), v))
            .collect()
    }

    /// Restores what [`state`](Self::state) saved; no `adam.` entries leave it fresh.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let adam: HashMap<String, Tensor> = state
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("adam.").map(|k| (k.to_string(), v.clone())))
            .collect();
        if adam.is_empty() {
            return Ok(());
        }
        // The moments are shaped as the parameters; build them from m's.
        let vars = (0..)
            .map_while(|i| adam.get(&format!("m.{i}")))
            .map(|x| Var::from_tensor(&x.zeros_like()?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.adam(&vars)?.load_state(&adam)
    }
}

fn missing(op: &'static str, key: &str) -> rat_core::Error {
    rat_core::Error::InvalidArgument {
        op,
        msg: format!("the checkpoint has no optimiser entry '{key}'"),
    }
}

/// The KL-adaptive learning-rate rule (ALGORITHMS.md 2.5), applied once per iteration with the
/// KL of the last minibatch: if kl > `high`, lr ← max(lr / `factor`, `floor`); else if
/// kl < `low`, lr ← min(lr · `factor`, `ceiling`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KlAdaptiveLr {
    /// Shrink above this KL.
    pub high: f64,
    /// Grow below this KL.
    pub low: f64,
    /// The multiplicative factor (1.5).
    pub factor: f64,
    /// The smallest learning rate (1e-4).
    pub floor: f64,
    /// The largest learning rate.
    pub ceiling: f64,
}

impl KlAdaptiveLr {
    /// The separate script's rule: 0.016 / 0.004, cap hard-coded at 0.05.
    pub const SEPARATE: Self = Self {
        high: 0.016,
        low: 0.004,
        factor: 1.5,
        floor: 1e-4,
        ceiling: 0.05,
    };

    /// The shared script's rule: 0.02 / 0.005, capped at the configured lr.
    pub fn shared(config_lr: f64) -> Self {
        Self {
            high: 0.02,
            low: 0.005,
            factor: 1.5,
            floor: 1e-4,
            ceiling: config_lr,
        }
    }

    /// This rule with `algo_config`'s `kl_high`, `kl_low` and `lr_ceiling` where given.
    pub fn configured(self, a: &crate::config::AlgoConfig) -> Self {
        Self {
            high: a.kl_high.unwrap_or(self.high),
            low: a.kl_low.unwrap_or(self.low),
            ceiling: a.lr_ceiling.unwrap_or(self.ceiling),
            ..self
        }
    }

    /// The learning rate after seeing `kl`. A non-finite KL leaves lr unchanged.
    pub fn apply(&self, lr: f64, kl: f64) -> f64 {
        if kl > self.high {
            (lr / self.factor).max(self.floor)
        } else if kl < self.low {
            (lr * self.factor).min(self.ceiling)
        } else {
            lr
        }
    }
}
