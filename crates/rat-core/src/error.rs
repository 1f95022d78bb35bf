//! The one error type of `rat-core`.

/// Everything that can go wrong in `rat-core`: bad input is reported, never panicked on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Tensors whose shapes do not fit together.
    #[error("{op}: shape mismatch: {msg}")]
    Shape {
        /// The operation that rejected its input.
        op: &'static str,
        /// What was expected and what was given.
        msg: String,
    },
    /// A NaN or an infinity where a finite number is required.
    #[error("{op}: non-finite value (NaN or inf) in {what}")]
    NonFinite {
        /// The operation that rejected its input.
        op: &'static str,
        /// Which input held it.
        what: &'static str,
    },
    /// An argument outside its domain (non-positive damping, ratio <= 0, unsupported dtype, ...).
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The operation that rejected its input.
        op: &'static str,
        /// What is wrong with it.
        msg: String,
    },
    /// A Cholesky factorisation met a non-positive pivot.
    #[error(
        "{op}: the matrix is not (numerically) positive definite (too little damping, or entries \
         that overflowed after a diverging step)"
    )]
    NotPositiveDefinite {
        /// The operation whose factorisation failed.
        op: &'static str,
    },
    /// A dense factorisation or solve failed or produced non-finite output.
    #[error("{op}: {msg}")]
    Solve {
        /// The operation that failed.
        op: &'static str,
        /// Why.
        msg: String,
    },
    /// Conjugate gradient met a direction of non-positive curvature (the operator is not SPD).
    #[error(
        "conjugate gradient: non-positive curvature p·Ap = {curvature:e} at iteration {iteration}"
    )]
    NonPositiveCurvature {
        /// The value of p·Ap.
        curvature: f64,
        /// The 0-based iteration at which it occurred.
        iteration: usize,
    },
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn shape_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::Shape {
        op,
        msg: msg.into(),
    })
}

pub(crate) fn arg_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::InvalidArgument {
        op,
        msg: msg.into(),
    })
}
