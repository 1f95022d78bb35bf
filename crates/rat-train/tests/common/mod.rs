//! Fixtures shared by rat-train's test binaries (each binary uses a part of them).
#![allow(dead_code)]

pub mod actors;

use candle_core::{DType, Tensor};

/// Options of a quiet test run with `seed`, logging under `root`, on the test device.
pub fn quiet_run(
    root: &std::path::Path,
    seed: u64,
) -> anyhow::Result<rat_train::loops::RunOptions> {
    Ok(rat_train::loops::RunOptions {
        seed: Some(seed),
        log_root: root.to_path_buf(),
        verbose: false,
        device: rat_train::cli::test_device()?,
        ..rat_train::loops::RunOptions::default()
    })
}

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
