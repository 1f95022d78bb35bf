//! A parameter broadcast over the batch (e.g. a state-independent log-σ vector).

use candle_core::{Tensor, Var};

use super::recorder::{SiteKind, param_for};
use super::{Recorder, Tangents};
use crate::error::{Result, shape_err};

/// A parameter p of shape (k) or (1, k), repeated for every sample: y = 1_b pᵀ (b, k).
///
/// Its block of the score row of sample i is ∂ℓ_i/∂y_i, an explicit column block of J.
#[derive(Debug, Clone)]
pub struct Broadcast {
    param: Var,
}

impl Broadcast {
    /// Wraps a parameter of shape (k) or (1, k).
    pub fn new(param: Var) -> Result<Self> {
        match param.dims() {
            [_] | [1, _] => Ok(Self { param }),
            d => shape_err(
                "Broadcast::new",
                format!("parameter must be (k) or (1, k), got {d:?}"),
            ),
        }
    }

    /// The parameter.
    pub fn param(&self) -> &Var {
        &self.param
    }

    /// Width k.
    pub fn width(&self) -> usize {
        *self.param.dims().last().unwrap_or(&0)
    }

    /// The parameter repeated over `batch` rows, (batch, k); with a recorder, records the site.
    pub fn forward(&self, batch: usize, rec: Option<&mut Recorder>) -> Result<Tensor> {
        let p = param_for(&rec, &self.param).reshape((1, self.width()))?;
        let y = p.broadcast_as((batch, self.width()))?;
        match rec {
            None => Ok(y),
            Some(r) => r.record(SiteKind::Broadcast, vec![self.param.clone()], &y),
        }
    }

    /// (y, ẏ) with ẏ = 1_b vᵀ.
    pub fn forward_tangent(
        &self,
        batch: usize,
        tangents: &Tangents,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let k = self.width();
        let y = self
            .param
            .as_detached_tensor()
            .reshape((1, k))?
            .broadcast_as((batch, k))?;
        let t = tangents
            .get(&self.param)
            .map(|v| v.reshape((1, k))?.broadcast_as((batch, k))?.contiguous())
            .transpose()?;
        Ok((y, t))
    }
}
