//! Policy distributions: log-probability, entropy, KL divergence and the output-space Fisher
//! metric. Every function is batched over the first dimension and differentiable by candle.

use candle_core::{D, DType, Tensor};

use crate::error::{Result, shape_err};

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// A diagonal Gaussian N(μ, diag(σ²)) per sample: `mean` (b, d), `log_std` (b, d) or (1, d)
/// (a state-independent log-σ vector broadcasts).
#[derive(Debug, Clone)]
pub struct DiagGaussian {
    mean: Tensor,
    log_std: Tensor,
}

impl DiagGaussian {
    /// Checks that `log_std` broadcasts to `mean`'s (b, d).
    pub fn new(mean: Tensor, log_std: Tensor) -> Result<Self> {
        let ok = match (mean.dims(), log_std.dims()) {
            ([b, d], [b2, d2]) => d == d2 && (b == b2 || *b2 == 1),
            _ => false,
        };
        if !ok {
            return shape_err(
                "DiagGaussian::new",
                format!(
                    "mean {:?} and log_std {:?} do not fit (b, d) / (b or 1, d)",
                    mean.shape(),
                    log_std.shape()
                ),
            );
        }
        Ok(Self { mean, log_std })
    }

    /// μ (b, d).
    pub fn mean(&self) -> &Tensor {
        &self.mean
    }

    /// log σ, (b, d) or (1, d).
    pub fn log_std(&self) -> &Tensor {
        &self.log_std
    }

    /// log π(a) = Σ_d [−(a_d − μ_d)² / (2σ_d²) − log σ_d − ½ ln 2π], shape (b).
    pub fn log_prob(&self, actions: &Tensor) -> Result<Tensor> {
        if actions.shape() != self.mean.shape() {
            return shape_err(
                "DiagGaussian::log_prob",
                format!(
                    "actions {:?} but mean {:?}",
                    actions.shape(),
                    self.mean.shape()
                ),
            );
        }
        let var = self.log_std.affine(2.0, 0.0)?.exp()?;
        let quad = actions
            .sub(&self.mean)?
            .sqr()?
            .broadcast_div(&var)?
            .affine(-0.5, 0.0)?;
        Ok(quad
            .broadcast_sub(&self.log_std)?
            .affine(1.0, -HALF_LN_2PI)?
            .sum(D::Minus1)?)
    }

    /// ℋ = Σ_d (½ + ½ ln 2π + log σ_d), shape (b).
    pub fn entropy(&self) -> Result<Tensor> {
        let h = self
            .log_std
            .affine(1.0, 0.5 + HALF_LN_2PI)?
            .broadcast_as(self.mean.shape())?;
        Ok(h.sum(D::Minus1)?)
    }

    /// KL(self ‖ other) = Σ_d [log σ_o − log σ_s + (σ_s² + (μ_s − μ_o)²) / (2σ_o²) − ½], shape (b).
    pub fn kl(&self, other: &DiagGaussian) -> Result<Tensor> {
        if self.mean.shape() != other.mean.shape() {
            return shape_err(
                "DiagGaussian::kl",
                format!("{:?} against {:?}", self.mean.shape(), other.mean.shape()),
            );
        }
        let var_s = self.log_std.affine(2.0, 0.0)?.exp()?;
        let var_o = other.log_std.affine(2.0, 0.0)?.exp()?;
        let num = self.mean.sub(&other.mean)?.sqr()?.broadcast_add(&var_s)?;
        let t = num.broadcast_div(&var_o.affine(2.0, 0.0)?)?;
        let t = t
            .broadcast_add(&other.log_std)?
            .broadcast_sub(&self.log_std)?
            .affine(1.0, -0.5)?;
        Ok(t.sum(D::Minus1)?)
    }

    /// The Fisher metric in (μ, log σ) coordinates applied to tangents: (ṁ / σ², 2 ṡ).
    pub fn fisher_metric(
        &self,
        mean_tangent: &Tensor,
        log_std_tangent: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let var = self.log_std.affine(2.0, 0.0)?.exp()?;
        Ok((
            mean_tangent.broadcast_div(&var)?,
            log_std_tangent.affine(2.0, 0.0)?,
        ))
    }
}

/// A categorical distribution per sample over n classes, from unnormalised `logits` (b, n).
#[derive(Debug, Clone)]
pub struct Categorical {
    log_probs: Tensor,
}

impl Categorical {
    /// From logits (b, n).
    pub fn new(logits: &Tensor) -> Result<Self> {
        if logits.rank() != 2 {
            return shape_err(
                "Categorical::new",
                format!("logits must be (b, n), got {:?}", logits.shape()),
            );
        }
        Ok(Self {
            log_probs: candle_nn::ops::log_softmax(logits, D::Minus1)?,
        })
    }

    /// log p (b, n), the log-softmax of the logits.
    pub fn log_probs(&self) -> &Tensor {
        &self.log_probs
    }

    /// p (b, n).
    pub fn probs(&self) -> Result<Tensor> {
        Ok(self.log_probs.exp()?)
    }

    /// log p(a_i) for integer actions (b) of dtype u32 or i64, shape (b).
    pub fn log_prob(&self, actions: &Tensor) -> Result<Tensor> {
        let b = self.log_probs.dims()[0];
        if actions.dims() != [b] || !matches!(actions.dtype(), DType::U32 | DType::I64 | DType::U8)
        {
            return shape_err(
                "Categorical::log_prob",
                format!(
                    "actions must be ({b}) integers, got {:?} {:?}",
                    actions.shape(),
                    actions.dtype()
                ),
            );
        }
        Ok(self
            .log_probs
            .gather(&actions.unsqueeze(1)?, 1)?
            .squeeze(1)?)
    }

    /// ℋ = −Σ_k p_k log p_k, shape (b).
    pub fn entropy(&self) -> Result<Tensor> {
        Ok(self.probs()?.mul(&self.log_probs)?.sum(D::Minus1)?.neg()?)
    }

    /// KL(self ‖ other) = Σ_k p_k (log p_k − log q_k), shape (b).
    pub fn kl(&self, other: &Categorical) -> Result<Tensor> {
        if self.log_probs.shape() != other.log_probs.shape() {
            return shape_err(
                "Categorical::kl",
                format!(
                    "{:?} against {:?}",
                    self.log_probs.shape(),
                    other.log_probs.shape()
                ),
            );
        }
        Ok(self
            .probs()?
            .mul(&self.log_probs.sub(&other.log_probs)?)?
            .sum(D::Minus1)?)
    }

    /// The Fisher metric of the logits applied to a tangent: (diag(p) − p pᵀ) ṫ = p ⊙ ṫ − p (p·ṫ).
    pub fn fisher_metric(&self, logits_tangent: &Tensor) -> Result<Tensor> {
        let p = self.probs()?;
        let pt = p.mul(logits_tangent)?;
        Ok(pt.sub(&p.broadcast_mul(&pt.sum_keepdim(D::Minus1)?)?)?)
    }
}
