//! # rat-train
//!
//! Configs, networks, update rules and the training loops of RAT, arranged by role:
//!
//! * [`config`] — the reference's YAML configs; [`cli`] — the one command-line parser of every
//!   example;
//! * [`nets`] — the networks on `rat-core` layers: policies, MLP actors and critic, image
//!   encoders, the separate and shared agents, observation/PopArt preprocessing;
//! * [`rules`] — the actor update rules (`rat`, `fvp`, `diag`, `kfac`, `pg`, `ppo`) behind
//!   [`rules::ActorUpdate`], and the shared network's joint rules in [`rules::joint`];
//! * [`optim`] — SGD, Adam and the KL-adaptive learning rate, each owning its checkpoint state;
//! * [`loops`] — the `train_detach` and `train_shared` loops, the rollout, start-up and resume,
//!   evaluation;
//! * [`io`] — the run directory's outputs: `progress.csv`, TensorBoard, checkpoints, plots;
//! * [`suite`] — benchmark suites of many runs: resumable, with multi-seed tables and plots.
//!
//! Dependencies point one way: `suite` → `loops` → `rules` → `nets` → `config`, and `io` is used by all of
//! them but uses none of `loops`, `rules`' steps or `nets`.

#![warn(missing_docs)]

pub mod cli;
pub mod config;
mod error;
pub mod io;
pub mod loops;
pub mod nets;
pub mod optim;
pub mod rules;
pub mod suite;

pub use error::{Error, Result};
