//! K-FAC and EK-FAC preconditioners over `rat-core`'s score-aware layers.
//!
//! The factors of K-FAC are the per-layer inputs `A_l` and back-propagated output gradients `G_l`
//! that `rat_core::layers::Recorder` already records for the factored score Jacobian, so this crate
//! needs no hooks of its own. The preconditioners arrive with the baselines work (issue 5); until
//! then this crate only fixes its place in the dependency graph.
