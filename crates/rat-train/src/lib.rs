//! # rat-train
//!
//! Configs, networks, update rules and the training loops of RAT:
//!
//! * [`config`] — the reference's YAML configs with CLI overrides ([`cli`]);
//! * [`nets`] and [`agent`] — the reference's networks on `rat-core` layers;
//! * [`update`] — the actor-rule interface; [`rat`] — the RAT step; [`diag`] — the
//!   diagonal-Fisher step; [`fvp`] — FVP + conjugate gradient; [`kfac`] — K-FAC; [`pg`] and [`ppo`] — the yardsticks;
//! * [`runner`] — rollouts; [`optim`] — Adam and the KL-adaptive learning rate;
//! * [`detach`] — the `train_detach` loop; [`logger`], [`tensorboard`], [`checkpoint`] — its
//!   outputs; [`evaluate`] — deterministic evaluation of a checkpoint; [`png`] — learning-curve
//!   plots without dependencies.

#![warn(missing_docs)]

pub mod agent;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod detach;
pub mod diag;
pub mod encoders;
mod error;
pub mod evaluate;
pub mod fvp;
mod iteration;
pub mod joint;
pub mod kfac;
pub mod logger;
pub mod nets;
pub mod optim;
pub mod pg;
pub mod png;
pub mod ppo;
pub mod rat;
pub mod runner;
pub mod shared;
pub mod shared_net;
pub mod tensorboard;
pub mod update;

pub use error::{Error, Result};
