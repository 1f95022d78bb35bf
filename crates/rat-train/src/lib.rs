//! Configs, network builders, update rules and the `train_detach` / `train_shared` loops.
//!
//! Arrives with the `train_detach` work (issue 4); until then this crate only fixes its place in
//! the dependency graph.
