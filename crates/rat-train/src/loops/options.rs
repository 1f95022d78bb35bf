//! How to run ([`RunOptions`]: everything that is not in the config), what a finished run
//! reports ([`Outcome`]) and how many iterations a budget is ([`iterations`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;
use rat_core::dist::{Communicator, Single};

use crate::config::Config;

/// How to run (everything that is not in the config).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The seed; `None` draws one in [0, 10⁶) as the reference does.
    pub seed: Option<u64>,
    /// Where the networks live.
    pub device: Device,
    /// The root of the log directories (`logs`).
    pub log_root: PathBuf,
    /// The run directory itself, instead of a new one named after the config under
    /// `log_root`; it must not exist or be empty (a suite gives each run a fixed place).
    pub run_dir: Option<PathBuf>,
    /// Continue from this checkpoint (its run directory is reused).
    pub resume: Option<PathBuf>,
    /// Save a checkpoint every this many iterations (0: only at the end).
    pub checkpoint_every: usize,
    /// Render one deterministic evaluation episode every this many iterations into the run
    /// directory's `videos/` and TensorBoard (0: never).
    pub video_every: usize,
    /// Print the stdout tables and progress lines.
    pub verbose: bool,
    /// When set (by a SIGINT/SIGTERM handler, see `examples/train_detach.rs`), the run ends after
    /// the iteration in progress: logged, checkpointed, [`Outcome::interrupted`] set.
    pub stop: Option<Arc<AtomicBool>>,
    /// The ranks this run is one of (`--dist`; `Single` by default): `num_envs` is their total,
    /// each steps its share, and rank 0 alone writes (see [`super::ranks`]).
    pub comm: Arc<dyn Communicator>,
}

impl RunOptions {
    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// These options on a rank other than 0 (`root` false): no tables, progress lines or videos.
    pub fn on_rank(&self, root: bool) -> Self {
        let mut opts = self.clone();
        if !root {
            (opts.verbose, opts.video_every) = (false, 0);
        }
        opts
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            seed: None,
            device: Device::Cpu,
            log_root: PathBuf::from("logs"),
            run_dir: None,
            resume: None,
            checkpoint_every: 50,
            video_every: 0,
            verbose: true,
            stop: None,
            comm: Arc::new(Single),
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The run directory.
    pub log_dir: PathBuf,
    /// Iterations run in total (including those before a resume).
    pub iterations: usize,
    /// Environment steps in total.
    pub timesteps: usize,
    /// Returns of the last ≤100 finished episodes.
    pub episode_returns: Vec<f64>,
    /// Their mean (`eprewmean`; NaN if none finished).
    pub eprewmean: f64,
    /// Median actor-update seconds per minibatch step.
    pub median_step_seconds: f64,
    /// Environment steps per second over this session's iterations.
    pub fps: f64,
    /// Mean seconds per iteration spent in the rollout, the actor passes, the critic passes
    /// (train_shared: 0) and, within the rollout, gathering the ranks' rollouts (one process: 0).
    pub phase_seconds: [f64; 4],
    /// Under `dist_mode: exact` on R > 1 ranks: the seconds spent in the actor (train_shared:
    /// joint) steps' collectives and the bytes this rank received from them, per step, this
    /// session.
    pub actor_collectives: Option<(f64, f64)>,
    /// Whether the run stopped early on request (its last iteration is checkpointed).
    pub interrupted: bool,
}

/// The iteration count of a budget: ⌊budget / N⌋ + 2, as the reference's loops run.
pub fn iterations(config: &Config) -> usize {
    let n = config.env_config.num_envs * config.env_config.nsteps;
    config.env_config.timesteps_per_proc / n.max(1) + 2
}
