//! `rat`: natural policy gradients by Randomized Advantage Transformation.
//!
//! This umbrella crate re-exports the workspace's crates so that examples and benches can name one
//! dependency. Library users who only want the mathematics depend on [`rat_core`] alone.

pub use rat_core as core;
pub use rat_envs as envs;
pub use rat_kfac as kfac;
pub use rat_rollout as rollout;
pub use rat_train as train;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
