//! The Woodbury advantage transform: the Tikhonov-regularised natural gradient as a vanilla
//! policy gradient with a transformed advantage.
//!
//! With J (b x P) the score matrix, R = diag(r) the (clamped) importance ratios, a the advantages
//! and λ > 0 the damping, the importance-weighted empirical Fisher and policy gradient are
//! F_R = Jᵀ R J / b and g_R = Jᵀ R a / b. The push-through identity
//! (F_R + λI_P)⁻¹ Jᵀ R = Jᵀ R (J Jᵀ R / b + λ I_b)⁻¹ gives
//!
//! x* = (F_R + λ I_P)⁻¹ g_R = Jᵀ (r ⊙ ψ) / b,   ψ = (K R / b + λ I_b)⁻¹ a,   K = J Jᵀ,
//!
//! one b x b solve instead of a P x P one.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result, arg_err, shape_err};
use crate::jacobian::{ScoreJacobian, check_sample_vector};
use crate::linalg;
use crate::params::tensor_is_finite;

/// ψ = (K R / b + λ I)⁻¹ a, with K the b x b kernel J Jᵀ, R = diag(`ratio`), λ = `damping` and
/// b the number of rows. `advantages` is (b) or (b, k) for k right-hand sides.
///
/// Solved through the symmetric positive-definite form (K / b + λ R⁻¹) φ = a, ψ = R⁻¹ φ, by
/// Cholesky. Errors on mismatched shapes, non-finite input, λ ≤ 0 or a ratio ≤ 0.
///
/// ```
/// use candle_core::{Device, Tensor};
/// # fn main() -> rat_core::Result<()> {
/// let dev = Device::Cpu;
/// let k = Tensor::new(&[[2.0f64, 1.0], [1.0, 2.0]], &dev)?;
/// let r = Tensor::new(&[1.0f64, 1.0], &dev)?;
/// let a = Tensor::new(&[1.0f64, -1.0], &dev)?;
/// // (K/2 + 0.5 I) ψ = a  ⇒  ψ = a / (1/2 + 1/2) for this antisymmetric a.
/// let psi = rat_core::woodbury::transform_advantages(&k, &r, &a, 0.5)?;
/// assert!((psi.to_vec1::<f64>()?[0] - 1.0).abs() < 1e-12);
/// # Ok(()) }
/// ```
pub fn transform_advantages(
    kernel: &Tensor,
    ratio: &Tensor,
    advantages: &Tensor,
    damping: f64,
) -> Result<Tensor> {
    let b = kernel.dims().first().copied().unwrap_or(0);
    solve_regularised(kernel, 1.0 / b.max(1) as f64, ratio, advantages, damping)
}

/// Solves (s K R + λ I) ψ = rhs for ψ through the SPD form (s K + λ R⁻¹) φ = rhs, ψ = R⁻¹ φ.
///
/// [`transform_advantages`] is the case s = 1/b; exact block Kaczmarz uses s = 1/N for a block
/// of an N-sample system.
pub fn solve_regularised(
    kernel: &Tensor,
    scale: f64,
    ratio: &Tensor,
    rhs: &Tensor,
    damping: f64,
) -> Result<Tensor> {
    const OP: &str = "woodbury::solve_regularised";
    validate(OP, kernel, ratio, rhs, damping)?;
    if !(scale.is_finite() && scale > 0.0) {
        return arg_err(
            OP,
            format!("kernel scale must be positive and finite, got {scale}"),
        );
    }
    let inv_r = ratio.recip()?;
    let phi =
        linalg::cholesky_solve_shifted(kernel, scale, Some(&inv_r.affine(damping, 0.0)?), rhs)?;
    Ok(if rhs.rank() == 1 {
        phi.mul(&inv_r)?
    } else {
        phi.broadcast_mul(&inv_r.unsqueeze(1)?)?
    })
}

/// The published code's form: ψ = solve(K R / b + λ I, a) with the non-symmetric matrix and an LU
/// solve. Mathematically equal to [`transform_advantages`]; kept for reference-faithful runs.
pub fn transform_advantages_reference(
    kernel: &Tensor,
    ratio: &Tensor,
    advantages: &Tensor,
    damping: f64,
) -> Result<Tensor> {
    const OP: &str = "woodbury::transform_advantages_reference";
    let b = validate(OP, kernel, ratio, advantages, damping)?;
    let m = kernel
        .broadcast_mul(&ratio.unsqueeze(0)?)?
        .affine(1.0 / b as f64, 0.0)?;
    let m = m.add(&Tensor::eye(b, kernel.dtype(), kernel.device())?.affine(damping, 0.0)?)?;
    linalg::lu_solve(&m, advantages)
}

/// The regularised natural gradient (ascent direction) x* = Jᵀ (r ⊙ ψ) / b, shaped like the
/// parameters, for ψ from [`transform_advantages`].
pub fn natural_gradient(
    jac: &dyn ScoreJacobian,
    ratio: &Tensor,
    psi: &Tensor,
) -> Result<Vec<Tensor>> {
    let b = jac.num_samples();
    check_sample_vector("woodbury::natural_gradient (ratio)", ratio, b)?;
    check_sample_vector("woodbury::natural_gradient (psi)", psi, b)?;
    jac.vjp(&ratio.mul(psi)?.affine(1.0 / b as f64, 0.0)?)
}

/// How the b x b system of [`transform_advantages_with`] is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SolveForm {
    /// The symmetric positive-definite form (K / b + λ R⁻¹) φ = a, ψ = R⁻¹ φ, by Cholesky
    /// ([`transform_advantages`]; the default).
    #[default]
    Cholesky,
    /// The published non-symmetric form (K R / b + λ I) ψ = a, by LU
    /// ([`transform_advantages_reference`]).
    Lu,
}

/// ψ = (K R / b + λ I)⁻¹ a solved in `form` at precision `dtype` (the inputs are converted to it
/// and ψ back to the advantages' dtype): the same ψ as [`transform_advantages`] in exact
/// arithmetic, for measuring what the form and the precision of the solve do to training.
pub fn transform_advantages_with(
    kernel: &Tensor,
    ratio: &Tensor,
    advantages: &Tensor,
    damping: f64,
    form: SolveForm,
    dtype: DType,
) -> Result<Tensor> {
    let out = advantages.dtype();
    let (k, r, a) = (
        kernel.to_dtype(dtype)?,
        ratio.to_dtype(dtype)?,
        advantages.to_dtype(dtype)?,
    );
    let psi = match form {
        SolveForm::Cholesky => transform_advantages(&k, &r, &a, damping)?,
        SolveForm::Lu => transform_advantages_reference(&k, &r, &a, damping)?,
    };
    Ok(psi.to_dtype(out)?)
}

/// How well ψ solves (K R / b + λ I) ψ = a: the relative residual ‖(K R / b + λ I) ψ − a‖ / ‖a‖
/// (Frobenius over all right-hand sides) and the condition number of the symmetric form
/// K / b + λ R⁻¹ (its largest over its smallest eigenvalue), both computed in f64.
pub fn solve_quality(
    kernel: &Tensor,
    ratio: &Tensor,
    advantages: &Tensor,
    psi: &Tensor,
    damping: f64,
) -> Result<(f64, f64)> {
    const OP: &str = "woodbury::solve_quality";
    let b = validate(OP, kernel, ratio, advantages, damping)?;
    let f = |t: &Tensor| t.to_dtype(DType::F64);
    let (k, r, a, x) = (f(kernel)?, f(ratio)?, f(advantages)?, f(psi)?);
    let (a, x) = if a.rank() == 1 {
        (a.unsqueeze(1)?, x.unsqueeze(1)?)
    } else {
        (a, x)
    };
    let scaled = k.affine(1.0 / b as f64, 0.0)?;
    let m = scaled
        .broadcast_mul(&r.unsqueeze(0)?)?
        .add(&Tensor::eye(b, DType::F64, k.device())?.affine(damping, 0.0)?)?;
    let norm = |t: &Tensor| -> Result<f64> { Ok(t.sqr()?.sum_all()?.to_scalar::<f64>()?.sqrt()) };
    let residual = norm(&m.matmul(&x)?.sub(&a)?)? / norm(&a)?.max(f64::MIN_POSITIVE);
    // K / b + λ R⁻¹: the identity scaled row by row by λ / r_i.
    let shift = Tensor::eye(b, DType::F64, k.device())?
        .broadcast_mul(&r.recip()?.affine(damping, 0.0)?.unsqueeze(1)?)?;
    let sym = scaled.add(&shift)?;
    let (eig, _) = linalg::sym_eigh(&sym)?;
    let eig = eig.to_vec1::<f64>()?;
    let (lo, hi) = eig.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &e| {
        (lo.min(e.abs()), hi.max(e.abs()))
    });
    Ok((residual, hi / lo))
}

fn validate(
    op: &'static str,
    kernel: &Tensor,
    ratio: &Tensor,
    rhs: &Tensor,
    damping: f64,
) -> Result<usize> {
    let b = match kernel.dims() {
        [r, c] if r == c && *r > 0 => *r,
        _ => {
            return shape_err(
                op,
                format!(
                    "kernel must be a non-empty square matrix, got {:?}",
                    kernel.shape()
                ),
            );
        }
    };
    if ratio.dims() != [b] {
        return shape_err(op, format!("ratio must be ({b}), got {:?}", ratio.shape()));
    }
    if rhs.dims().first() != Some(&b) || rhs.rank() > 2 {
        return shape_err(
            op,
            format!(
                "advantages must be ({b}) or ({b}, k), got {:?}",
                rhs.shape()
            ),
        );
    }
    if ratio.dtype() != kernel.dtype() || rhs.dtype() != kernel.dtype() {
        return arg_err(op, "kernel, ratio and advantages must share one dtype");
    }
    if !(damping.is_finite() && damping > 0.0) {
        return arg_err(
            op,
            format!("damping must be positive and finite, got {damping}"),
        );
    }
    // The kernel's finiteness is checked by the solver, in the pass that reads it anyway.
    for (t, what) in [(ratio, "ratio"), (rhs, "advantages")] {
        if !tensor_is_finite(t)? {
            return Err(Error::NonFinite { op, what });
        }
    }
    let min_ratio = ratio.min(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if min_ratio <= 0.0 {
        return arg_err(
            op,
            format!("every ratio must be positive, got min {min_ratio}"),
        );
    }
    Ok(b)
}

/// tr(K)/b, the mean diagonal of a b x b kernel K = J Jᵀ (the mean squared norm of the score
/// rows): the scale against which `damping_mode: relative` reads λ.
pub fn kernel_scale(kernel: &Tensor) -> Result<f64> {
    let (b, c) = kernel.dims2()?;
    if b != c || b == 0 {
        return shape_err(
            "kernel_scale",
            format!(
                "kernel must be square and non-empty, got {:?}",
                kernel.shape()
            ),
        );
    }
    let eye = Tensor::eye(b, kernel.dtype(), kernel.device())?;
    let trace = kernel
        .mul(&eye)?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    Ok(trace / b as f64)
}
