//! Vectorised reinforcement-learning environments that know nothing about tensors.
//!
//! Classic control built in, the ten Gymnasium MuJoCo tasks over the official MuJoCo library, a
//! threaded vectoriser writing into caller-provided buffers. The environments arrive with issue 3;
//! until then this crate only fixes its place in the dependency graph (it must never depend on
//! candle).
