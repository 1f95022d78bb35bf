//! Loading a config (a file, a bare name under `configs/`, a checkpoint's text), overriding keys,
//! and comparing two configs; every error names the key and the value.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::types::{
    Algo, AlgoConfig, Config, ConfigError, EnvConfig, LogConfig, NetsConfig, SECTIONS,
};

impl Config {
    /// Parses YAML text; `origin` names it in errors, which name the key and the value.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |msg: String| ConfigError::Invalid {
            origin: origin.into(),
            msg,
        };
        let mut config: Config = match serde_yaml_ng::from_str(text) {
            Ok(c) => c,
            Err(e) => return Err(invalid(locate(text).unwrap_or_else(|| e.to_string()))),
        };
        let tree: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))?;
        config.given = given_keys(&tree);
        Ok(config)
    }

    /// Loads a config file. A bare name (`rat_mlp.yaml`) that is not an existing path resolves
    /// under `configs/` (relative to the working directory, then to this workspace), as in the
    /// reference.
    pub fn load(name: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = resolve(name.as_ref());
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Sets one key, named as in the YAML (or with `-` for `_`), to a YAML scalar `value`,
    /// searching the sections in order; `algo` sets the update rule. The result is re-validated.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let key = key.trim_start_matches("--").replace('-', "_");
        let origin = format!("--{key} {value}");
        let invalid = |e: serde_yaml_ng::Error| ConfigError::Invalid {
            origin: origin.clone(),
            msg: e.to_string(),
        };
        let mut tree = serde_yaml_ng::to_value(&*self).map_err(invalid)?;
        let scalar: serde_yaml_ng::Value = serde_yaml_ng::from_str(value).map_err(invalid)?;
        let not_a_mapping = || ConfigError::Invalid {
            origin: origin.clone(),
            msg: "the config did not serialise to a mapping".into(),
        };
        let map = tree.as_mapping_mut().ok_or_else(not_a_mapping)?;
        if key == "algo" {
            map.insert("algo".into(), scalar);
        } else {
            let section = SECTIONS
                .iter()
                .find(|s| {
                    map.get(**s)
                        .and_then(|v| v.as_mapping())
                        .is_some_and(|m| m.contains_key(key.as_str()))
                })
                .ok_or_else(|| ConfigError::UnknownKey {
                    key: key.clone(),
                    known: Self::keys().join(", "),
                })?;
            map.get_mut(*section)
                .and_then(|v| v.as_mapping_mut())
                .ok_or_else(not_a_mapping)?
                .insert(key.as_str().into(), scalar);
        }
        let given = std::mem::take(&mut self.given);
        *self = serde_yaml_ng::from_value(tree).map_err(invalid)?;
        self.given = given;
        self.given.insert(key);
        Ok(())
    }

    /// Every setting that differs between `self` and `other`, as (key, self's value, other's
    /// value), keys named as in the YAML (`algo`, `lr_pi`, …).
    pub fn differences(&self, other: &Config) -> Vec<(String, String, String)> {
        let (a, b) = (self.flat(), other.flat());
        a.iter()
            .filter(|(k, v)| b.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone(), b.get(k).cloned().unwrap_or_default()))
            .collect()
    }

    /// Every setting as key → its YAML text.
    fn flat(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        let Ok(tree) = serde_yaml_ng::to_value(self) else {
            return out;
        };
        let text = super::spelling;
        if let Some(algo) = tree.get("algo") {
            out.insert("algo".to_string(), text(algo));
        }
        for section in SECTIONS {
            if let Some(m) = tree.get(section).and_then(|v| v.as_mapping()) {
                for (k, v) in m {
                    if let Some(k) = k.as_str() {
                        out.insert(k.to_string(), text(v));
                    }
                }
            }
        }
        out
    }

    /// Every key [`set`](Self::set) accepts.
    pub fn keys() -> Vec<String> {
        // A config of plain fields always serialises; were it not to, there are no keys to list.
        let tree = serde_yaml_ng::to_value(Config::default_rat()).unwrap_or_default();
        let mut keys = vec!["algo".to_string()];
        for s in SECTIONS {
            if let Some(m) = tree.get(s).and_then(|v| v.as_mapping()) {
                keys.extend(m.keys().filter_map(|k| k.as_str().map(str::to_string)));
            }
        }
        keys
    }

    /// The reference's `rat_mlp.yaml` defaults.
    pub fn default_rat() -> Self {
        Self {
            algo: Algo::Rat,
            algo_config: AlgoConfig::default(),
            env_config: EnvConfig::default(),
            nets_config: NetsConfig::default(),
            log_config: LogConfig::default(),
            given: BTreeSet::new(),
        }
    }

    /// The YAML snapshot written to a run's log directory.
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        serde_yaml_ng::to_string(self).map_err(|e| ConfigError::Invalid {
            origin: "config snapshot".into(),
            msg: e.to_string(),
        })
    }
}

fn resolve(name: &Path) -> PathBuf {
    if name.exists() || name.components().count() > 1 {
        return name.to_path_buf();
    }
    let local = Path::new("configs").join(name);
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs")
        .join(name)
}

/// The keys a YAML tree sets (`algo` and every key of the four sections).
pub(super) fn given_keys(tree: &serde_yaml_ng::Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    if tree.get("algo").is_some() {
        keys.insert("algo".to_string());
    }
    for section in SECTIONS {
        if let Some(m) = tree.get(section).and_then(|v| v.as_mapping()) {
            keys.extend(m.keys().filter_map(|k| k.as_str().map(str::to_string)));
        }
    }
    keys
}

/// For a file that does not deserialise: the first key whose value is refused, as
/// `section.key: <why>`, found by setting the file's keys one at a time on the defaults.
fn locate(text: &str) -> Option<String> {
    let tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).ok()?;
    let mut base = serde_yaml_ng::to_value(Config::default_rat()).ok()?;
    if let Some(algo) = tree.get("algo") {
        base.as_mapping_mut()?.insert("algo".into(), algo.clone());
        if let Err(e) = serde_yaml_ng::from_value::<Config>(base.clone()) {
            return Some(format!("algo: {e}"));
        }
    }
    for section in SECTIONS {
        let Some(m) = tree.get(section).and_then(|v| v.as_mapping()) else {
            continue;
        };
        for (k, v) in m {
            let mut trial = base.clone();
            trial
                .get_mut(section)?
                .as_mapping_mut()?
                .insert(k.clone(), v.clone());
            if let Err(e) = serde_yaml_ng::from_value::<Config>(trial) {
                let key = k.as_str().unwrap_or("?");
                let msg = e.to_string();
                // serde names the section; the key is what a user needs.
                let msg = msg.strip_prefix(&format!("{section}: ")).unwrap_or(&msg);
                return Some(format!("{section}.{key}: {msg}"));
            }
        }
    }
    None
}
