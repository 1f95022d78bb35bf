//! The error type of `rat-envs`.

/// Everything that can go wrong creating or stepping an environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No environment of that name is registered.
    #[error("unknown environment '{name}'; known: {}", known.join(", "))]
    UnknownEnv {
        /// The name asked for.
        name: String,
        /// Every registered name.
        known: Vec<String>,
    },
    /// An action outside the action space, or of the wrong length.
    #[error("{env}: invalid action: {msg}")]
    InvalidAction {
        /// The environment id.
        env: String,
        /// What is wrong.
        msg: String,
    },
    /// A buffer or state of the wrong size.
    #[error("{op}: {msg}")]
    Shape {
        /// The operation.
        op: &'static str,
        /// What was expected and what was given.
        msg: String,
    },
    /// An invalid argument (zero environments, zero workers, ...).
    #[error("{op}: {msg}")]
    InvalidArgument {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// A MuJoCo task was asked for but MuJoCo is not available (feature off, library missing or
    /// of another version).
    #[error("{0}")]
    MujocoUnavailable(String),
    /// An error reported by MuJoCo (model loading, ...).
    #[error("MuJoCo: {0}")]
    Mujoco(String),
    /// A Procgen game was asked for but its library could not be loaded (not fetched, or of
    /// another version).
    #[error("{0}")]
    ProcgenUnavailable(String),
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
