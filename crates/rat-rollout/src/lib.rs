//! # rat-rollout
//!
//! The rollout maths of on-policy actor-critic training, as small functions and explicit state
//! structs (no I/O, no hidden state):
//!
//! * [`gae`] — generalised advantage estimation with the reference's done-flag convention;
//! * [`RunningMeanStd`] and [`ObsNormaliser`] — running statistics (f64) and the clipped
//!   observation normalisation built on them;
//! * [`PopArt`] — return statistics with debiasing, and the value-head rescaling that keeps the
//!   unnormalised predictions unchanged.

#![warn(missing_docs)]

mod error;
mod gae;
mod popart;
mod running;

pub use error::{Error, Result};
pub use gae::{Advantages, Trajectory, env_major, gae, td_errors, time_major};
pub use popart::{PopArt, PopArtStats};
pub use running::{ObsNormaliser, RunningMeanStd};
