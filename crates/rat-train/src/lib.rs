//! # rat-train
//!
//! Configs, network builders, update rules and the `train_detach` / `train_shared` loops.
//! So far: [`config`], the reference's YAML configs with CLI overrides, and [`nets`], the
//! reference's networks on `rat-core` layers, and [`rat`], the RAT actor step. The loops arrive with
//! the `train_detach` work (issue 4).

#![warn(missing_docs)]

pub mod config;
pub mod nets;
pub mod rat;
