//! A suite's runs on disk: what state each is in (finished, resumable, to restart, new), a lock
//! so that two suite processes sharing an output folder never train the same run, training a
//! run, and reading a finished run's curve and summary back from its `progress.csv`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::file::Job;
use crate::config::{Config, RESUMABLE_KEYS, Trainer};
use crate::error::{Error, Result, invalid, io};
use crate::loops::{Outcome, RunOptions, detach, iterations, shared};

/// A run's state in its directory.
#[derive(Debug, Clone)]
pub enum State {
    /// Its `progress.csv` reaches the last iteration of its budget.
    Finished(Curve),
    /// Interrupted after a checkpoint: training continues from it (logged up to `steps`).
    Resume {
        /// The checkpoint.
        checkpoint: PathBuf,
        /// Environment steps logged so far.
        steps: f64,
    },
    /// Interrupted before its first checkpoint: started again from nothing.
    Restart,
    /// Not started.
    New,
}

impl State {
    /// A word for listings.
    pub fn word(&self) -> &'static str {
        match self {
            State::Finished(_) => "finished",
            State::Resume { .. } => "resume",
            State::Restart => "restart",
            State::New => "new",
        }
    }
}

/// A run's logged curve: per logged iteration, environment steps, `eprewmean` and the seconds
/// since the run started, with the last iteration logged.
#[derive(Debug, Clone, Default)]
pub struct Curve {
    /// Environment steps (`misc/serial_timesteps`).
    pub steps: Vec<f64>,
    /// `eprewmean`.
    pub eprewmean: Vec<f64>,
    /// `misc/time_elapsed`.
    pub seconds: Vec<f64>,
    /// The last logged iteration (`misc/nupdates`, from 0).
    pub last_iteration: Option<usize>,
}

impl Curve {
    /// Reads `progress.csv` by column name.
    pub fn read(path: &Path) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| Error::Invalid(format!("{}: {e}", path.display()));
        let mut reader = csv::Reader::from_path(path).map_err(|e| bad(&e))?;
        let header = reader.headers().map_err(|e| bad(&e))?.clone();
        let col = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| bad(&format!("no column {name}")))
        };
        let cols = [
            col("misc/serial_timesteps")?,
            col("eprewmean")?,
            col("misc/time_elapsed")?,
            col("misc/nupdates")?,
        ];
        let mut curve = Curve::default();
        for record in reader.records() {
            let record = record.map_err(|e| bad(&e))?;
            let [s, r, t, it] = cols.map(|i| {
                record
                    .get(i)
                    .and_then(|x| x.parse::<f64>().ok())
                    .unwrap_or(f64::NAN)
            });
            curve.steps.push(s);
            curve.eprewmean.push(r);
            curve.seconds.push(t);
            curve.last_iteration = Some(it as usize);
        }
        Ok(curve)
    }

    /// The last logged `eprewmean`, environment steps and seconds.
    pub fn last(&self) -> (f64, f64, f64) {
        let last = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN);
        (
            last(&self.eprewmean),
            last(&self.steps),
            last(&self.seconds),
        )
    }

    /// The mean `eprewmean` over the logged iterations in the last 10 % of the steps.
    pub fn last_tenth_mean(&self) -> f64 {
        let end = self.last().1;
        let tail: Vec<f64> = self
            .steps
            .iter()
            .zip(&self.eprewmean)
            .filter(|(s, _)| **s >= 0.9 * end)
            .map(|(_, r)| *r)
            .collect();
        super::stats::mean(&tail)
    }
}

/// The state of `job`'s run under `out`. A directory that holds a run of another config (other
/// than in the keys a resume may change) is an error naming the keys: the suite never writes
/// into another run's files.
pub fn state(job: &Job, out: &Path) -> Result<State> {
    let dir = out.join(&job.dir);
    let progress = dir.join("progress.csv");
    if !dir.exists() || std::fs::read_dir(&dir).map_err(io(&dir))?.next().is_none() {
        return Ok(State::New);
    }
    check_same_config(job, &dir)?;
    // A run stopped in its first iteration leaves an empty progress.csv.
    let logged = std::fs::metadata(&progress).is_ok_and(|m| m.len() > 0);
    let curve = if logged {
        Curve::read(&progress)?
    } else {
        Curve::default()
    };
    let total = iterations(&job.config);
    if curve.last_iteration.is_some_and(|it| it + 1 >= total) {
        return Ok(State::Finished(curve));
    }
    let checkpoint = dir.join("model.safetensors");
    Ok(if checkpoint.exists() {
        State::Resume {
            checkpoint,
            steps: curve.last().1,
        }
    } else {
        State::Restart
    })
}

/// Refuses a directory whose `config.yaml` differs from the job's config in a key that a resume
/// may not change.
fn check_same_config(job: &Job, dir: &Path) -> Result<()> {
    let path = dir.join("config.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(()); // nothing logged yet: the directory is restarted
    };
    // `config.yaml` leaves out `algo`, as the reference's does; the directory names the rule.
    let saved = Config::from_yaml(
        &format!(
            "algo: {}\n{text}",
            crate::config::spelling(&job.config.algo)
        ),
        &path.display().to_string(),
    )?;
    let other = job.trainer.other();
    let changed: Vec<String> = saved
        .differences(&job.config)
        .into_iter()
        .filter(|(key, ..)| {
            key != "algo"
                && !RESUMABLE_KEYS.contains(&key.as_str())
                && !other.own_keys().contains(&key.as_str())
        })
        .map(|(key, was, now)| format!("{key}: {was} there, {now} in the suite"))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    invalid(format!(
        "{}: holds a run of another config ({}); move it away, or give the suite entry a \
         `label` of its own",
        dir.display(),
        changed.join("; ")
    ))
}

/// A claim on one run's directory: `<dir>.lock`, holding the host and process id, removed when
/// dropped. A lock left by a process of this host that no longer exists is taken over.
pub struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Claims `dir`; `Ok(None)` when another live process holds it.
    pub fn claim(dir: &Path) -> Result<Option<Lock>> {
        let path = dir.with_extension("lock");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{} {}", host(), std::process::id()).map_err(io(&path))?;
                    return Ok(Some(Lock { path }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if !stale(&text) {
                        return Ok(None);
                    }
                    std::fs::remove_file(&path).map_err(io(&path))?;
                }
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Ok(None)
    }

    /// The holder of `dir`'s lock as written in it (`host pid`), if locked.
    pub fn holder(dir: &Path) -> Option<String> {
        std::fs::read_to_string(dir.with_extension("lock"))
            .ok()
            .map(|t| t.trim().to_string())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// This machine's name.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Whether a lock's `host pid` names a process of this host that is gone.
fn stale(text: &str) -> bool {
    let mut parts = text.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|p| p.parse::<u32>().ok()),
    ) {
        (Some(h), Some(pid)) => h == host() && !Path::new(&format!("/proc/{pid}")).exists(),
        _ => false,
    }
}

/// How the suite trains its runs.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Where the networks live (the CPU when `None`).
    pub device: Option<candle_core::Device>,
    /// Checkpoint every this many iterations (a killed run loses at most these).
    pub checkpoint_every: usize,
    /// Print each run's progress lines.
    pub verbose: bool,
    /// Whether this process rewrites the suite's reports after each run (under MPI, rank 0
    /// only, so that two ranks never write the same file).
    pub write_reports: bool,
    /// Set by a signal handler: the run in progress stops after its iteration, checkpointed.
    pub stop: Option<Arc<AtomicBool>>,
}

/// Trains `job` from its `state` (a new run, a restart from nothing or a resume) in its
/// directory under `out`; the caller holds its [`Lock`].
pub fn train(job: &Job, state: &State, out: &Path, settings: &Settings) -> Result<Outcome> {
    let dir = out.join(&job.dir);
    let resume = match state {
        State::Finished(_) => {
            return invalid(format!("{}: the run is already finished", dir.display()));
        }
        State::Resume { checkpoint, .. } => Some(checkpoint.clone()),
        State::Restart => {
            // Nothing to keep: the run logged less than one checkpoint interval.
            std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            None
        }
        State::New => None,
    };
    let opts = RunOptions {
        seed: Some(job.seed),
        run_dir: Some(dir),
        resume,
        checkpoint_every: settings.checkpoint_every,
        verbose: settings.verbose,
        stop: settings.stop.clone(),
        device: settings.device.clone().unwrap_or(candle_core::Device::Cpu),
        ..RunOptions::default()
    };
    match job.trainer {
        Trainer::Detach => detach::run(&job.config, &opts),
        Trainer::Shared => shared::run(&job.config, &opts),
    }
}
