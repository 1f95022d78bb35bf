//! The critic's optimiser and the actor's KL-adaptive learning rate.

use candle_core::{Tensor, Var};
use rat_core::Result;

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

    /// The first and second moments, for a checkpoint.
    pub fn moments(&self) -> (&[Tensor], &[Tensor]) {
        (&self.m, &self.v)
    }

    /// Restores the moments and step count from a checkpoint.
    pub fn set_state(&mut self, m: Vec<Tensor>, v: Vec<Tensor>, t: u64) -> Result<()> {
        let shapes: Vec<_> = self.m.iter().map(|x| x.shape().clone()).collect();
        rat_core::params::check_shapes("Adam::set_state (m)", &shapes, &m)?;
        rat_core::params::check_shapes("Adam::set_state (v)", &shapes, &v)?;
        (self.m, self.v, self.t) = (m, v, t);
        Ok(())
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
