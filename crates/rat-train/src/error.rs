//! The error type of `rat-train`: everything a training run can meet, each with its cause.

use std::path::PathBuf;

/// Everything that can go wrong setting up or running training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The maths (`rat-core`): a failed solve, a shape mismatch, a non-finite value.
    #[error(transparent)]
    Core(#[from] rat_core::Error),
    /// An environment.
    #[error(transparent)]
    Env(#[from] rat_envs::Error),
    /// Rollout statistics.
    #[error(transparent)]
    Rollout(#[from] rat_rollout::Error),
    /// The configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A setting or an input this code does not accept, with the reason.
    #[error("{0}")]
    Invalid(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// An [`Error::Invalid`].
pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(Error::Invalid(msg.into()))
}

/// Wraps an I/O error with its path.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}
