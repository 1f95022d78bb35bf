//! PopArt: normalised value targets whose statistics adapt while the value head is rescaled so
//! that its unnormalised predictions do not change.

use candle_core::Tensor;

use crate::error::{Error, Result};

/// The debiased statistics of PopArt at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PopArtStats {
    /// Debiased mean m.
    pub mean: f64,
    /// Debiased standard deviation σ.
    pub std: f64,
}

impl PopArtStats {
    /// (x − m) / σ.
    pub fn normalise(&self, x: f64) -> f64 {
        (x - self.mean) / self.std
    }

    /// y·σ + m.
    pub fn unnormalise(&self, y: f64) -> f64 {
        y * self.std + self.mean
    }
}

/// PopArt statistics: exponential moving averages m₁ of the mean and m₂ of the mean square of
/// the returns, with a debias term c; β = 0.99999 and ε = 1e-6 by default.
///
/// m = m₁ / max(c, ε), σ² = max(m₂ / max(c, ε) − m², ε). Before the first update c = 0, so
/// m = 0 and σ = √ε = 1e-3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PopArt {
    /// m₁.
    pub mean: f64,
    /// m₂.
    pub mean_sq: f64,
    /// c.
    pub debiasing_term: f64,
    /// β.
    pub beta: f64,
    /// ε.
    pub epsilon: f64,
}

impl Default for PopArt {
    fn default() -> Self {
        Self {
            mean: 0.0,
            mean_sq: 0.0,
            debiasing_term: 0.0,
            beta: 0.99999,
            epsilon: 1e-6,
        }
    }
}

impl PopArt {
    /// The current debiased statistics.
    pub fn stats(&self) -> PopArtStats {
        let c = self.debiasing_term.max(self.epsilon);
        let mean = self.mean / c;
        let var = (self.mean_sq / c - mean * mean).max(self.epsilon);
        PopArtStats {
            mean,
            std: var.sqrt(),
        }
    }

    /// Merges a batch of (unnormalised) returns: m₁ ← β m₁ + (1−β) mean(R),
    /// m₂ ← β m₂ + (1−β) mean(R²), c ← β c + (1−β). Returns (old, new) statistics.
    pub fn update(&mut self, returns: &[f64]) -> Result<(PopArtStats, PopArtStats)> {
        if returns.is_empty() || returns.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument {
                op: "PopArt::update",
                msg: "need a non-empty batch of finite returns".into(),
            });
        }
        let old = self.stats();
        let n = returns.len() as f64;
        let m = returns.iter().sum::<f64>() / n;
        let m2 = returns.iter().map(|r| r * r).sum::<f64>() / n;
        let b = self.beta;
        self.mean = b * self.mean + (1.0 - b) * m;
        self.mean_sq = b * self.mean_sq + (1.0 - b) * m2;
        self.debiasing_term = b * self.debiasing_term + (1.0 - b);
        Ok((old, self.stats()))
    }

    /// The value-head rescaling that preserves unnormalised outputs across an update:
    /// W ← W·σ_old/σ_new, b ← (σ_old·b + m_old − m_new)/σ_new. Returns the new (W, b).
    pub fn rescale_head(
        weight: &Tensor,
        bias: &Tensor,
        old: PopArtStats,
        new: PopArtStats,
    ) -> Result<(Tensor, Tensor)> {
        let w = weight.affine(old.std / new.std, 0.0)?;
        let b = bias.affine(old.std / new.std, (old.mean - new.mean) / new.std)?;
        Ok((w, b))
    }
}
