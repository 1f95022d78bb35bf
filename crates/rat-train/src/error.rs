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
    /// An update step failed numerically, with the settings that most likely caused it.
    #[error("{phase} at iteration {iteration}: {source}. {hint}")]
    Diverged {
        /// `actor update`, `joint update`, `critic update`.
        phase: &'static str,
        /// The iteration (from 0).
        iteration: usize,
        /// The failure.
        source: Box<rat_core::Error>,
        /// The likelier cause, naming the config keys.
        hint: String,
    },
}

/// Context for a failed update step: a non-finite value or a failed factorisation after
/// earlier steps went through is most often a step size too large (the policy diverged and the
/// kernel's entries overflowed), not too little damping; `lr` names the rate key and its value.
pub(crate) fn diverged(
    phase: &'static str,
    iteration: usize,
    lr: (&str, f64),
    damping: f64,
) -> impl FnOnce(rat_core::Error) -> Error {
    move |source| {
        let numerical = matches!(
            source,
            rat_core::Error::NonFinite { .. } | rat_core::Error::NotPositiveDefinite { .. }
        );
        let hint = if !numerical {
            String::new()
        } else if iteration > 0 {
            format!(
                "After {iteration} iterations this is most likely a step size too large: lower \
                 {} (now {}) or max_grad_norm, or turn use_kl_adaptive_lr on; if the kl and \
                 grad_norm columns of progress.csv stayed small, raise cg_damping (now {damping}) \
                 instead",
                lr.0, lr.1
            )
        } else {
            format!(
                "On the first iteration: check the config's rates ({} = {}) and raise cg_damping \
                 (now {damping})",
                lr.0, lr.1
            )
        };
        Error::Diverged {
            phase,
            iteration,
            source: Box::new(source),
            hint,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numerical_failure_names_the_step_size_after_the_first_iteration() {
        let nan = || rat_core::Error::NonFinite {
            op: "transform_advantages",
            what: "kernel",
        };
        let later = diverged("actor update", 7, ("lr_pi", 0.05), 0.1)(nan()).to_string();
        assert!(later.contains("iteration 7") && later.contains("lower lr_pi (now 0.05)"));
        assert!(later.contains("raise cg_damping (now 0.1)"), "{later}");
        let first = diverged("joint update", 0, ("lr", 1.0), 0.1)(nan()).to_string();
        assert!(
            first.contains("lr = 1") && first.contains("cg_damping"),
            "{first}"
        );
        let shape = rat_core::Error::InvalidArgument {
            op: "x",
            msg: "y".into(),
        };
        let other = diverged("actor update", 3, ("lr_pi", 0.05), 0.1)(shape).to_string();
        assert!(!other.contains("step size"), "{other}");
    }
}
