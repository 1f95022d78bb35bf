//! Fisher-vector products, empirical and exact.
//!
//! * Empirical (importance-free): F̂ v = Jᵀ J v / b from the score Jacobian J (b x P).
//! * Exact, for the policy distribution: F v = Σ_i J_out,iᵀ M_i J_out,i v / b, where J_out,i is
//!   the Jacobian of sample i's distribution parameters (mean and log-σ, or logits) and M_i the
//!   output-space Fisher metric ([`crate::distributions`]). J_out v comes from a forward tangent
//!   pass through the score-aware layers ([`crate::layers::Sequential::forward_tangent`]); the
//!   product with J_outᵀ is an ordinary backward pass of ⟨outputs, stop_grad(M J_out v)⟩ / b.
//!   This needs no double backward, which candle does not reliably provide.

use candle_core::{Tensor, Var};

use crate::error::{Result, shape_err};
use crate::jacobian::ScoreJacobian;
use crate::params;

/// Jᵀ (J v) / b + λ v, the damped empirical Fisher-vector product.
pub fn empirical_fvp(jac: &dyn ScoreJacobian, v: &[Tensor], damping: f64) -> Result<Vec<Tensor>> {
    let b = jac.num_samples() as f64;
    let fv = jac.vjp(&jac.jvp(v)?.affine(1.0 / b, 0.0)?)?;
    params::axpy(damping, v, &fv)
}

/// J_outᵀ u / b + λ v for the network outputs `outputs` (b, k), computed *with* `params` in the
/// autograd graph, and u = M J_out v (b, k) the metric applied to the output tangent.
///
/// Returns one tensor per parameter (zeros for parameters the outputs do not depend on).
pub fn exact_fvp(
    params: &[Var],
    outputs: &Tensor,
    metric_tangent: &Tensor,
    v: &[Tensor],
    damping: f64,
) -> Result<Vec<Tensor>> {
    if outputs.shape() != metric_tangent.shape() {
        return shape_err(
            "exact_fvp",
            format!(
                "outputs {:?} but metric tangent {:?}",
                outputs.shape(),
                metric_tangent.shape()
            ),
        );
    }
    let shapes: Vec<_> = params.iter().map(|p| p.shape().clone()).collect();
    params::check_shapes("exact_fvp", &shapes, v)?;
    let b = outputs.dims().first().copied().unwrap_or(1).max(1) as f64;
    let grads = outputs
        .mul(&metric_tangent.detach())?
        .sum_all()?
        .affine(1.0 / b, 0.0)?
        .backward()?;
    let jtu = params
        .iter()
        .map(|p| match grads.get(p.as_tensor()) {
            Some(g) => Ok(g.clone()),
            None => p.as_tensor().zeros_like(),
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    params::axpy(damping, v, &jtu)
}
