//! A run's outputs: the run directory and its files ([`run_log`]: `progress.csv`, `config.yaml`,
//! `time.json`), what one iteration reports and the TensorBoard tag table ([`report`]), the
//! progress line ([`progress`]), the TensorBoard writer ([`tensorboard`]), checkpoints
//! ([`checkpoint`]), learning-curve plots ([`plot`]) and evaluation videos ([`video`]).

pub mod checkpoint;
pub mod plot;
pub mod progress;
pub mod report;
pub mod run_log;
pub mod tensorboard;
pub mod video;
