//! Fixtures shared by rat-train's test binaries (each binary uses a part of them).
#![allow(dead_code)]

pub mod actors;

use candle_core::{DType, Tensor};

/// n smooth, seeded values sin(k·i + seed), i = 0..n, in f64 on the test device.
pub fn grid(n: usize, k: f64, seed: f64) -> candle_core::Result<Tensor> {
    Tensor::arange(
        0u32,
        n as u32,
        &rat_train::cli::test_device().map_err(candle_core::Error::wrap)?,
    )?
    .to_dtype(DType::F64)?
    .affine(k, seed)?
    .sin()
}
