//! A suite file (YAML) and the jobs it expands to: one (environment, rule, seed) run each, with
//! its config and its own directory under the suite's output folder.
//!
//! ```yaml
//! runs:
//!   - envs: [Hopper-v4, Walker2d-v4]   # or env: Hopper-v4
//!     configs: [rat_mlp.yaml, ppo_mlp.yaml]   # or config: rat_mlp.yaml
//!     seeds: [1, 2, 3]
//!     budget: 1000000                  # timesteps_per_proc
//!     overrides: {log_interval: 1}     # any config key
//!     label: rat                       # optional: the rule's name in the table
//!     trainer: detach                  # optional: detach | shared
//! anchors:
//!   - {env: Hopper-v4, name: Tianshou PPO @1M, value: 2609}
//!   - {env: Humanoid-v4, algo: rat_shared, name: published @3M, value: 5651}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{Config, Trainer, spelling};
use crate::error::{Error, Result, invalid};

/// One entry of `runs`: the product of its environments, configs and seeds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// One environment (a full id such as `Hopper-v4`, or a short name).
    pub env: Option<String>,
    /// Several environments.
    #[serde(default)]
    pub envs: Vec<String>,
    /// One config (a path, or a name under `configs/`).
    pub config: Option<String>,
    /// Several configs.
    #[serde(default)]
    pub configs: Vec<String>,
    /// The seeds.
    pub seeds: Vec<u64>,
    /// Environment steps per run (`timesteps_per_proc`); the config's when absent.
    pub budget: Option<u64>,
    /// Config keys set on every run of the entry.
    #[serde(default)]
    pub overrides: BTreeMap<String, serde_yaml_ng::Value>,
    /// The rule's name in the table; by default the config's `algo`, with `_shared` appended
    /// for `train_shared` runs.
    pub label: Option<String>,
    /// The loop; by default `shared` when the config's file name ends in `_shared.yaml`.
    pub trainer: Option<String>,
}

/// A reference figure for the table's anchor column and the aggregate's normalisation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// The environment's full id.
    pub env: String,
    /// The rule label it belongs to; every rule's row when absent.
    pub algo: Option<String>,
    /// What it is (`Tianshou PPO @1M`).
    pub name: String,
    /// The return.
    pub value: f64,
}

/// A suite file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// What the suite is for (printed by `--dry-run`).
    #[serde(default)]
    pub description: String,
    /// The runs.
    pub runs: Vec<Entry>,
    /// Reference figures.
    #[serde(default)]
    pub anchors: Vec<Anchor>,
}

/// One run of a suite: an environment, a rule (its config) and a seed.
#[derive(Debug, Clone)]
pub struct Job {
    /// The environment's full id (`Humanoid-v4`, `minatar:breakout`).
    pub env: String,
    /// The rule's label (`rat`, `rat_shared`, or the entry's `label`).
    pub algo: String,
    /// The seed.
    pub seed: u64,
    /// The loop that trains it.
    pub trainer: Trainer,
    /// Its config, with the entry's budget and overrides applied.
    pub config: Config,
    /// Its directory relative to the suite's output folder: `runs/<env>/<algo>/seed_<seed>`.
    pub dir: PathBuf,
}

impl Suite {
    /// Reads a suite file; errors name the file and, from the YAML parser, the line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io(path))?;
        serde_yaml_ng::from_str(&text)
            .map_err(|e| Error::Invalid(format!("suite {}: {e}", path.display())))
    }

    /// Every job, entry by entry (environments, then configs, then seeds), each config loaded,
    /// overridden and validated for its loop. Two jobs with the same (env, algo, seed) are an
    /// error: they would share a directory.
    pub fn jobs(&self) -> Result<Vec<Job>> {
        let mut jobs: Vec<Job> = Vec::new();
        for (k, entry) in self.runs.iter().enumerate() {
            let at = format!("runs[{k}]");
            let envs = one_or_many(&entry.env, &entry.envs, "env", &at)?;
            let configs = one_or_many(&entry.config, &entry.configs, "config", &at)?;
            if entry.seeds.is_empty() {
                return invalid(format!("{at}: `seeds` is empty"));
            }
            for env in &envs {
                let env = rat_envs::resolve_id(env).map_or(env.clone(), str::to_string);
                for name in &configs {
                    let (config, trainer, algo) = entry_config(entry, name, &env, &at)?;
                    for &seed in &entry.seeds {
                        let dir = Path::new("runs")
                            .join(path_safe(&env))
                            .join(path_safe(&algo))
                            .join(format!("seed_{seed}"));
                        if let Some(j) = jobs.iter().find(|j| j.dir == dir) {
                            return invalid(format!(
                                "{at}: {env} / {algo} / seed {seed} is already a run of the \
                                 suite ({} with `{}`); give one of them a `label`",
                                j.env, j.algo
                            ));
                        }
                        jobs.push(Job {
                            env: env.clone(),
                            algo: algo.clone(),
                            seed,
                            trainer,
                            config: config.clone(),
                            dir,
                        });
                    }
                }
            }
        }
        Ok(jobs)
    }

    /// The suite of one comparison: every rule of `algos` (its `configs/<algo>_<net>.yaml`) on
    /// `env` over `seeds`, with `overrides` (config key, YAML scalar) on every run.
    pub fn comparison(
        env: &str,
        algos: &[String],
        net: &str,
        seeds: &[u64],
        overrides: &[(String, String)],
    ) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (key, value) in overrides {
            let v = serde_yaml_ng::from_str(value)
                .map_err(|e| Error::Invalid(format!("--{key} {value}: {e}")))?;
            map.insert(key.clone(), v);
        }
        Ok(Suite {
            description: format!("{} on {env}", algos.join(", ")),
            runs: vec![Entry {
                env: Some(env.to_string()),
                envs: vec![],
                config: None,
                configs: algos.iter().map(|a| format!("{a}_{net}.yaml")).collect(),
                seeds: seeds.to_vec(),
                budget: None,
                overrides: map,
                label: None,
                trainer: None,
            }],
            anchors: vec![],
        })
    }

    /// The anchors of (env, algo): those of the env for every rule, and the rule's own.
    pub fn anchors_of(&self, env: &str, algo: &str) -> Vec<&Anchor> {
        self.anchors
            .iter()
            .filter(|a| a.env == env && a.algo.as_deref().is_none_or(|x| x == algo))
            .collect()
    }
}

/// `one` or `many`, exactly one of them given.
fn one_or_many(one: &Option<String>, many: &[String], key: &str, at: &str) -> Result<Vec<String>> {
    match (one, many.is_empty()) {
        (Some(x), true) => Ok(vec![x.clone()]),
        (None, false) => Ok(many.to_vec()),
        (Some(_), false) => invalid(format!("{at}: give `{key}` or `{key}s`, not both")),
        (None, true) => invalid(format!("{at}: `{key}` (or `{key}s`) is missing")),
    }
}

/// The config of an entry's run on `env`: loaded, the budget and overrides set, validated for
/// its loop; with the loop and the rule's label.
fn entry_config(
    entry: &Entry,
    name: &str,
    env: &str,
    at: &str,
) -> Result<(Config, Trainer, String)> {
    let mut config = Config::load(name)?;
    config.set("env_name", env)?;
    // Every iteration in progress.csv, for the curves (an override may say otherwise).
    config.set("log_interval", "1")?;
    if let Some(budget) = entry.budget {
        config.set("timesteps_per_proc", &budget.to_string())?;
    }
    for (key, value) in &entry.overrides {
        let text = serde_yaml_ng::to_string(value)
            .map_err(|e| Error::Invalid(format!("{at}: overrides.{key}: {e}")))?;
        config.set(key, text.trim())?;
    }
    let trainer = match entry.trainer.as_deref() {
        None if name.ends_with("_shared.yaml") => Trainer::Shared,
        None | Some("detach") => Trainer::Detach,
        Some("shared") => Trainer::Shared,
        Some(other) => {
            return invalid(format!(
                "{at}: trainer: {other} is not a loop (detach or shared)"
            ));
        }
    };
    config
        .validate(trainer)
        .map_err(|e| Error::Invalid(format!("{at} ({name} on {env}): {e}")))?;
    let algo = match (&entry.label, trainer) {
        (Some(label), _) => label.clone(),
        (None, Trainer::Detach) => spelling(&config.algo),
        (None, Trainer::Shared) => format!("{}_shared", spelling(&config.algo)),
    };
    Ok((config, trainer, algo))
}

/// `name` as a directory name: [`run_log::path_safe`](crate::io::run_log::path_safe), and `:`
/// and `=` too, since a suite's folders may be shared with file systems that refuse them.
pub fn path_safe(name: &str) -> String {
    crate::io::run_log::path_safe(name).replace([':', '='], "_")
}
