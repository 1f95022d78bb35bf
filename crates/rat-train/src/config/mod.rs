//! The training configuration: the reference's YAML files (sections `algo`, `algo_config`,
//! `env_config`, `nets_config`, `log_config`) with its key spellings, loaded unchanged, plus CLI
//! overrides.
//!
//! The reference's files are YAML 1.1 as PyYAML reads it (`True`/`False`, `10_000_000`); serde_yaml
//! reads YAML 1.2, so booleans and numbers here also accept those spellings. Unknown keys are
//! rejected with the key named. Every default below is the reference's (`rat_mlp.yaml`).

mod load;
mod types;
mod validate;

pub use types::*;
pub use validate::{MAX_PARAMETERS, MIN_MINIBATCH, Trainer, kl_rule_targets};

/// A value's config spelling (`rat`, `fisher_clip`, `normalised_advantage`): its YAML text,
/// trimmed; empty if it does not serialise.
pub fn spelling(x: &impl serde::Serialize) -> String {
    serde_yaml_ng::to_string(x)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
