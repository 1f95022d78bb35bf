//! Step clipping as the reference does it: global L2 clipping of gradients, and the
//! quadratic-form clipping of FVP steps.

use candle_core::Tensor;

use crate::error::{Result, arg_err};
use crate::params;

/// Global L2 clipping: coefficient c = min(1, max_norm / (‖g‖₂ + 1e-6)), returns (c·g, ‖g‖₂),
/// the norm *before* clipping (what the reference logs as `grad_norm`).
pub fn clip_grad_norm(grads: &[Tensor], max_norm: f64) -> Result<(Vec<Tensor>, f64)> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return arg_err(
            "clip_grad_norm",
            format!("max_norm must be positive and finite, got {max_norm}"),
        );
    }
    let norm = params::sq_norm(grads)?.sqrt();
    if !norm.is_finite() {
        return Err(crate::Error::NonFinite {
            op: "clip_grad_norm",
            what: "gradient",
        });
    }
    let coef = (max_norm / (norm + 1e-6)).min(1.0);
    let out = if coef < 1.0 {
        params::scale(grads, coef)?
    } else {
        grads.to_vec()
    };
    Ok((out, norm))
}

/// The reference's `post_grad` rules for an FVP step d (ALGORITHMS.md 4.1 step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostGrad {
    /// q = dᵀ(F + λI)d (the squared, damped Fisher norm); d ← d·min(threshold/q, 1).
    FisherClip,
    /// q = d·d (also squared); d ← d·min(threshold/q, 1).
    L2Clip,
    /// q = dᵀ(F + λI)d; d ← d/√q.
    Norm,
    /// No change; q is reported as the threshold.
    None,
}

/// Applies `rule` to the step `d`, given `fd` = (F + λI) d when the rule needs it. Returns the
/// new step and q, the quadratic form the reference logs as `grad_norm`.
pub fn post_grad(
    d: &[Tensor],
    fd: Option<&[Tensor]>,
    rule: PostGrad,
    threshold: f64,
) -> Result<(Vec<Tensor>, f64)> {
    const OP: &str = "post_grad";
    if !(threshold.is_finite() && threshold > 0.0) {
        return arg_err(
            OP,
            format!("threshold must be positive and finite, got {threshold}"),
        );
    }
    let fisher_q = || -> Result<f64> {
        match fd {
            Some(fd) => params::dot(d, fd),
            None => arg_err(OP, "this rule needs (F + λI) d"),
        }
    };
    let (scale, q) = match rule {
        PostGrad::None => return Ok((d.to_vec(), threshold)),
        PostGrad::FisherClip => {
            let q = fisher_q()?;
            ((threshold / q).min(1.0), q)
        }
        PostGrad::L2Clip => {
            let q = params::sq_norm(d)?;
            ((threshold / q).min(1.0), q)
        }
        PostGrad::Norm => {
            let q = fisher_q()?;
            (1.0 / q.sqrt(), q)
        }
    };
    if !(q.is_finite() && q > 0.0) {
        return arg_err(
            OP,
            format!("the quadratic form q = {q} must be positive and finite"),
        );
    }
    Ok((params::scale(d, scale)?, q))
}
