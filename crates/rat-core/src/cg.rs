//! Conjugate gradient for A x = b with A symmetric positive definite, given only x ↦ A x.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result, arg_err, shape_err};
use crate::params::tensor_is_finite;

/// Iteration limits of [`conjugate_gradient`]. The defaults are the reference's (10, 1e-10).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CgOptions {
    /// At most this many iterations (`cg_steps`).
    pub max_iters: usize,
    /// Stop once the squared residual r·r falls below this.
    pub tol: f64,
}

impl Default for CgOptions {
    fn default() -> Self {
        Self {
            max_iters: 10,
            tol: 1e-10,
        }
    }
}

/// What [`conjugate_gradient`] returns.
#[derive(Debug, Clone)]
pub struct CgSolution {
    /// The approximate solution.
    pub x: Tensor,
    /// Iterations run.
    pub iterations: usize,
    /// The final squared residual r·r.
    pub residual_sq: f64,
}

fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok(a.mul(b)?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

/// Solves A x = b for a vector b (P), with `apply(p)` = A p:
/// x₀ = 0, r = p = b; each iteration α = (r·r)/(p·Ap), x += αp, r −= αAp, β = r'·r'/r·r,
/// p = r' + βp; stop after `max_iters` or once r·r < `tol`. A direction with p·Ap ≤ 0 (A not
/// positive definite) is an error.
pub fn conjugate_gradient(
    mut apply: impl FnMut(&Tensor) -> Result<Tensor>,
    b: &Tensor,
    opts: CgOptions,
) -> Result<CgSolution> {
    const OP: &str = "conjugate_gradient";
    if b.rank() != 1 {
        return shape_err(
            OP,
            format!("right-hand side must be a vector, got {:?}", b.shape()),
        );
    }
    if !tensor_is_finite(b)? {
        return Err(Error::NonFinite {
            op: OP,
            what: "right-hand side",
        });
    }
    if opts.tol.is_nan() || opts.tol < 0.0 {
        return arg_err(OP, format!("tolerance must be ≥ 0, got {}", opts.tol));
    }
    let mut x = b.zeros_like()?;
    let mut r = b.clone();
    let mut p = b.clone();
    let mut rr = dot(&r, &r)?;
    let mut iterations = 0;
    for it in 0..opts.max_iters {
        if rr < opts.tol {
            break;
        }
        let ap = apply(&p)?;
        if ap.shape() != p.shape() {
            return shape_err(
                OP,
                format!(
                    "operator returned {:?} for input {:?}",
                    ap.shape(),
                    p.shape()
                ),
            );
        }
        let pap = dot(&p, &ap)?;
        if !pap.is_finite() || pap <= 0.0 {
            return Err(Error::NonPositiveCurvature {
                curvature: pap,
                iteration: it,
            });
        }
        let alpha = rr / pap;
        x = x.add(&p.affine(alpha, 0.0)?)?;
        r = r.sub(&ap.affine(alpha, 0.0)?)?;
        let rr_new = dot(&r, &r)?;
        p = r.add(&p.affine(rr_new / rr, 0.0)?)?;
        rr = rr_new;
        iterations = it + 1;
    }
    Ok(CgSolution {
        x,
        iterations,
        residual_sq: rr,
    })
}
