//! # rat-core
//!
//! The mathematics of RAT (Randomized Advantage Transformation): the Tikhonov-regularised natural
//! policy gradient computed as a vanilla policy gradient with a transformed advantage,
//!
//! x* = (F_R + λI)⁻¹ g_R = Jᵀ (r ⊙ ψ) / b,   ψ = (J Jᵀ R / b + λI)⁻¹ a,
//!
//! on candle tensors, for any network built from the score-aware [`layers`].
//!
//! * [`layers`] — dense, conv, pooling, activations, residual blocks and broadcast parameters that
//!   record what the factored Jacobian needs and propagate forward tangents;
//! * [`jacobian`] — the [`ScoreJacobian`](jacobian::ScoreJacobian) trait (J Jᵀ, J v, Jᵀ w,
//!   diag(Jᵀ J)) with a factored and a materialised implementation;
//! * [`woodbury`] — the advantage transform and the natural gradient;
//! * [`kaczmarz`] — block Kaczmarz across minibatches, reference and exact;
//! * [`linalg`] — Cholesky / LU solves and symmetric eigen-decomposition on tensors;
//! * [`cg`], [`fisher`] — conjugate gradient and Fisher-vector products (empirical, exact);
//! * [`distributions`], [`clip`] — policy distributions and step clipping;
//! * [`params`] — parameter-space vectors;
//! * [`dist`] — the communicator R processes compute one algorithm with (`Single`; `Mpi` behind
//!   the `mpi` feature, `Nccl` behind `nccl`).
//!
//! Everything is a function from tensors to tensors or a small explicit state struct; errors are
//! [`Error`] values, never panics.

#![warn(missing_docs)]

pub mod cg;
pub mod clip;
#[cfg(feature = "cuda")]
mod cusolver;
pub mod dist;
pub mod distributions;
mod error;
pub mod fisher;
pub mod jacobian;
pub mod kaczmarz;
pub mod layers;
pub mod linalg;
pub mod params;
pub mod woodbury;

pub use error::{Error, Result};
