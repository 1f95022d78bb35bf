//! Rollout storage, generalised advantage estimation, PopArt and running statistics.
//!
//! Arrives with the `train_detach` work (issue 4); until then this crate only fixes its place in
//! the dependency graph.
