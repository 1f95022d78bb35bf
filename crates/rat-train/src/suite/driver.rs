//! Running a suite: the plan (each job's state and an estimate of its time), the shard of the
//! jobs this process takes, and the loop that trains every unfinished run in order, skipping
//! finished ones and those another process holds, and rewrites the report after each run.

use std::path::Path;

use rat_core::dist::Communicator;

use super::file::{Job, Suite};
use super::report;
use super::runs::{self, Lock, Settings, State};
use crate::error::{Error, Result, invalid};

/// One line of the plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The run.
    pub job: Job,
    /// Its state on disk.
    pub state: State,
    /// `host pid` of another process training it now.
    pub locked_by: Option<String>,
    /// Seconds still to train, from the fps of the suite's finished runs of the same
    /// environment (the same rule when there is one); `None` without a record.
    pub estimate_s: Option<f64>,
}

/// The jobs of shard `i` of `n` (`i/n`, counted from 0): every n-th job from the i-th, so that
/// an array of n processes (a Slurm array, MPI ranks) covers the suite once.
pub fn shard(jobs: Vec<Job>, spec: &str) -> Result<Vec<Job>> {
    let parsed = spec
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
    match parsed {
        Some((i, n)) if i < n => Ok(jobs
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i)
            .map(|(_, j)| j)
            .collect()),
        _ => invalid(format!(
            "--shard {spec}: expected i/n with 0 <= i < n (e.g. 0/4 for the first of four)"
        )),
    }
}

/// Every job's state, lock holder and time estimate.
pub fn plan(jobs: &[Job], out: &Path) -> Result<Vec<Planned>> {
    let states: Vec<State> = jobs
        .iter()
        .map(|j| runs::state(j, out))
        .collect::<Result<_>>()?;
    // Steps per second of the finished runs, by (env, algo).
    let records: Vec<(&Job, f64)> = jobs
        .iter()
        .zip(&states)
        .filter_map(|(j, s)| match s {
            State::Finished(c) => {
                let (_, steps, secs) = c.last();
                (secs > 0.0).then_some((j, steps / secs))
            }
            _ => None,
        })
        .collect();
    let fps_of = |job: &Job| {
        let same = |f: &dyn Fn(&Job) -> bool| {
            let v: Vec<f64> = records
                .iter()
                .filter(|(j, _)| f(j))
                .map(|(_, x)| *x)
                .collect();
            (!v.is_empty()).then(|| super::stats::mean(&v))
        };
        same(&|j| j.env == job.env && j.algo == job.algo).or_else(|| same(&|j| j.env == job.env))
    };
    Ok(jobs
        .iter()
        .zip(states)
        .map(|(job, state)| {
            let done = match &state {
                State::Finished(_) => None,
                State::Resume { steps, .. } => Some(*steps),
                _ => Some(0.0),
            };
            let budget = job.config.env_config.timesteps_per_proc as f64;
            Planned {
                estimate_s: done.and_then(|d| fps_of(job).map(|fps| (budget - d).max(0.0) / fps)),
                locked_by: Lock::holder(&out.join(&job.dir)),
                job: job.clone(),
                state,
            }
        })
        .collect())
}

/// The suite a pass belongs to: its file, all its jobs (the reports cover every finished one,
/// whichever process trained it), its output folder and the reports' title.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The suite file.
    pub suite: &'a Suite,
    /// Every job of the suite.
    pub all: &'a [Job],
    /// The output folder (`--out`).
    pub out: &'a Path,
    /// The title of `table.md`.
    pub title: &'a str,
}

impl Context<'_> {
    /// Rewrites `summary.csv`, `table.md` and the plots from every finished run.
    pub fn report(&self) -> Result<Vec<report::Row>> {
        report::write(self.suite, self.all, self.out, self.title)
    }
}

/// What a pass over the suite did.
#[derive(Debug, Default)]
pub struct Pass {
    /// Runs trained to the end in this pass.
    pub trained: usize,
    /// Runs found finished.
    pub skipped: usize,
    /// Runs another process holds.
    pub locked: usize,
    /// Runs that failed, with the error.
    pub failed: Vec<(Job, Error)>,
    /// Whether a stop request ended the pass early.
    pub interrupted: bool,
}

/// Trains every unfinished job of `jobs` in order (resuming or restarting as its state says),
/// skipping finished and locked ones; a failed run is reported and the pass goes on. After
/// every run that ends, the reports are rewritten when `settings.write_reports` says so. `say`
/// receives one line per event.
pub fn run(
    cx: Context,
    jobs: &[Job],
    settings: &Settings,
    say: &mut dyn FnMut(&str),
) -> Result<Pass> {
    let out = cx.out;
    let mut pass = Pass::default();
    let stop = || {
        settings
            .stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    };
    for (k, job) in jobs.iter().enumerate() {
        if stop() {
            pass.interrupted = true;
            break;
        }
        let name = format!(
            "[{}/{}] {} {} seed {}",
            k + 1,
            jobs.len(),
            job.env,
            job.algo,
            job.seed
        );
        let dir = out.join(&job.dir);
        let Some(_lock) = Lock::claim(&dir)? else {
            say(&format!(
                "{name}: skipped, {} is training it",
                Lock::holder(&dir).unwrap_or_default()
            ));
            pass.locked += 1;
            continue;
        };
        let state = match runs::state(job, out) {
            Ok(s) => s,
            Err(e) => {
                say(&format!("{name}: FAILED: {e}"));
                pass.failed.push((job.clone(), e));
                continue;
            }
        };
        match &state {
            State::Finished(_) => {
                pass.skipped += 1;
                continue;
            }
            State::Resume { steps, .. } => say(&format!(
                "{name}: resuming at {steps} steps in {}",
                dir.display()
            )),
            State::Restart => say(&format!(
                "{name}: restarting (stopped before its first checkpoint) in {}",
                dir.display()
            )),
            State::New => say(&format!("{name}: training in {}", dir.display())),
        }
        match runs::train(job, &state, out, settings) {
            Ok(o) if o.interrupted => {
                say(&format!(
                    "{name}: stopped at {} steps, checkpointed; run the suite again to resume",
                    o.timesteps
                ));
                pass.interrupted = true;
                break;
            }
            Ok(o) => {
                say(&format!(
                    "{name}: done, eprewmean {:.1} at {} steps, {:.0} steps/s",
                    o.eprewmean, o.timesteps, o.fps
                ));
                pass.trained += 1;
            }
            Err(e) => {
                say(&format!("{name}: FAILED: {e}"));
                pass.failed.push((job.clone(), e));
            }
        }
        if settings.write_reports {
            cx.report()?;
        }
    }
    Ok(pass)
}

/// The suite across the ranks of `comm` (a sweep: each run single-process): rank r takes shard
/// r/R of `jobs` (every R-th run from the r-th), only rank 0 writes the reports, and once every
/// rank has finished its pass (a barrier) rank 0 writes the final one. With one rank this is
/// [`run`] with the reports written.
pub fn run_ranked(
    comm: &dyn Communicator,
    cx: Context,
    jobs: &[Job],
    settings: &Settings,
    say: &mut dyn FnMut(&str),
) -> Result<Pass> {
    let (rank, size) = (comm.rank(), comm.size());
    let mine = shard(jobs.to_vec(), &format!("{rank}/{size}"))?;
    let settings = Settings {
        write_reports: comm.is_root(),
        ..settings.clone()
    };
    let pass = run(cx, &mine, &settings, say)?;
    // A barrier: every rank's runs are finished (or stopped) before the final report.
    comm.sum_f64(0.0)?;
    if comm.is_root() {
        cx.report()?;
    }
    Ok(pass)
}
