//! What the two training loops (`detach`, `shared`) share at start-up (seed, environments, the
//! checkpoint to resume, the run directory, the log) and the counters they carry from one
//! iteration to the next and across a resume (`LoopState`), with the run's [`Outcome`].

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_envs::VecEnv;

use super::options::{Outcome, RunOptions, iterations};
use super::ranks::Ranks;
use super::rollout::Runner;
use crate::config::{Config, RESUMABLE_KEYS, Trainer};
use crate::error::{Result, invalid};
use crate::io::checkpoint::{self, Checkpoint};
use crate::io::run_log::RunLog;

/// Episodes kept for `eprewmean` / `eplenmean`.
const EPISODE_WINDOW: usize = 100;

/// A run's beginning: the checkpoint to resume from, the seed, the RNG, this rank's share of
/// the environments, and the runner stepping them.
pub(crate) struct Start {
    /// The checkpoint's tensors when resuming.
    pub restored: Option<Checkpoint>,
    pub seed: u64,
    pub rng: ChaCha8Rng,
    pub env: VecEnv,
    pub ranks: Ranks,
}

/// Checks `config` for `trainer` (before anything is created), loads the checkpoint to resume
/// (if any) and checks that the run it continues is this one, picks the seed (the checkpoint's,
/// the option's or a random one in [0, 10⁶) as the reference does, rank 0's on every rank) and
/// creates this rank's environments (all of them for one process), seeded as one process seeds
/// them.
pub(crate) fn start(config: &Config, opts: &RunOptions, trainer: Trainer) -> Result<Start> {
    config.validate(trainer)?;
    let ranks = Ranks::new(opts.comm.clone(), config.env_config.num_envs)?;
    let restored = opts.resume.as_deref().map(checkpoint::load).transpose()?;
    if let (Some(t), Some(path)) = (&restored, &opts.resume) {
        check_resume(config, t, opts.seed, path)?;
    }
    let seed = match (&restored, opts.seed) {
        (Some(t), _) => t.seed()?,
        (None, Some(s)) => s,
        (None, None) => rand::rng().random_range(0..1_000_000),
    };
    let seed = ranks.seed(seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let e = config.env_config.num_envs;
    let env_seed = rng.random_range(0..(1u64 << 31));
    if opts.verbose {
        let size = ranks.comm.size();
        let per_rank = match size {
            1 => String::new(),
            _ => format!(", on {size} ranks"),
        };
        println!(
            "creating environment {} ({e} copies{per_rank})",
            config.env_config.env_name
        );
    }
    let (name, mine) = (&config.env_config.env_name, &ranks.share);
    let first_seed = env_seed + mine.start as u64;
    let env = rat_envs::make_on(name, mine.len(), first_seed, ranks.cores())?;
    Ok(Start {
        restored,
        seed,
        rng,
        env,
        ranks,
    })
}

/// A resume continues the checkpoint's run: only the keys in [`RESUMABLE_KEYS`] may differ from
/// the checkpoint's config, and a seed, if given, must be the checkpoint's.
fn check_resume(config: &Config, t: &Checkpoint, seed: Option<u64>, path: &Path) -> Result<()> {
    let saved = t.config()?;
    let changed: Vec<String> = saved
        .differences(config)
        .into_iter()
        .filter(|(key, ..)| !RESUMABLE_KEYS.contains(&key.as_str()))
        .map(|(key, was, now)| format!("{key}: {was} in the checkpoint, {now} now"))
        .collect();
    if !changed.is_empty() {
        return invalid(format!(
            "--resume {}: a resume continues the same run, so only {} may change; this one \
             changes {}. Start a new run (with --config) to train with other settings.",
            path.display(),
            RESUMABLE_KEYS.join(" and "),
            changed.join("; ")
        ));
    }
    let saved_seed = t.seed()?;
    match seed {
        Some(s) if s != saved_seed => invalid(format!(
            "--resume {}: --seed {s} differs from the checkpoint's seed {saved_seed}; a resume \
             keeps its run's seed",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// The run directory: the checkpoint's own when resuming; else the one the options name (which
/// must not exist or be empty); else `fresh` (a new one), created here and exclusively, with a
/// suffix (`-1`, `-2`, …) when another run already has that name, so that two runs never share
/// a directory.
pub(crate) fn run_dir(opts: &RunOptions, fresh: impl FnOnce() -> PathBuf) -> Result<PathBuf> {
    match (&opts.resume, &opts.run_dir) {
        (Some(path), _) => Ok(path.parent().unwrap_or(Path::new(".")).to_path_buf()),
        (None, Some(dir)) => create_empty_dir(dir),
        (None, None) => create_unique_dir(&fresh()),
    }
}

/// Creates `dir` (and its parents), or accepts it if it exists and is empty.
fn create_empty_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(crate::error::io(dir))?;
    let mut entries = std::fs::read_dir(dir).map_err(crate::error::io(dir))?;
    if entries.next().is_some() {
        return invalid(format!(
            "{}: the run directory is not empty; a new run never writes into another run's \
             files (resume it with --resume <its model.safetensors>, or choose another)",
            dir.display()
        ));
    }
    Ok(dir.to_path_buf())
}

/// Creates `dir`, or `dir-1`, `dir-2`, … if taken, atomically; returns the one created.
pub fn create_unique_dir(dir: &Path) -> Result<PathBuf> {
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(crate::error::io(parent))?;
    }
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    for k in 0..10_000 {
        let candidate = match (k, &name) {
            (0, _) | (_, None) => dir.to_path_buf(),
            (k, Some(n)) => dir.with_file_name(format!("{n}-{k}")),
        };
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(crate::error::io(&candidate)(e)),
        }
    }
    invalid(format!(
        "{}: 10000 runs of this name already exist",
        dir.display()
    ))
}

/// The run directory and, on rank 0, its log: rank 0 creates the directory ([`run_dir`]) and
/// opens the log ([`open_log`]); the other ranks only learn where it is.
#[allow(clippy::too_many_arguments)]
pub(crate) fn open_run(
    config: &Config,
    opts: &RunOptions,
    ranks: &Ranks,
    restored: &Option<Checkpoint>,
    trainer: Trainer,
    params: &str,
    fresh: impl FnOnce() -> PathBuf,
) -> Result<(PathBuf, Option<RunLog>)> {
    ranks.from_root(|| {
        let dir = run_dir(opts, fresh)?;
        let log = open_log(config, opts, &dir, restored, trainer, params)?;
        Ok((dir, log))
    })
}

/// Opens the run's log, writes `config.yaml` and, when verbose, says where it logs; `params`
/// describes the parameter count. On a resume the logs are cut back to the checkpoint's
/// iteration first, so that the iterations after it are not logged twice.
pub(crate) fn open_log(
    config: &Config,
    opts: &RunOptions,
    log_dir: &Path,
    restored: &Option<Checkpoint>,
    trainer: Trainer,
    params: &str,
) -> Result<RunLog> {
    let resumed_at = match restored {
        Some(t) => Some(counters(t)?.0),
        None => None,
    };
    let log = RunLog::create(log_dir, resumed_at, iterations(config))?;
    log.write_config(config, trainer)?;
    if opts.verbose {
        println!("device: {:?}", opts.device);
        println!("Number of parameters: {params}");
        println!("logging to {}", log_dir.display());
        println!("training...");
    }
    Ok(log)
}

/// The counters a run carries from one iteration to the next (and across a resume).
pub(crate) struct LoopState {
    pub iteration: usize,
    /// The learning rate the KL rule adapts (`lr_pi` or the joint `lr`).
    pub lr: f64,
    pub elapsed: f64,
    pub times: Vec<f64>,
    pub episodes: VecDeque<(f64, usize)>,
    /// The minibatch permutation, shuffled in place every pass (so each pass starts from the
    /// last one's order, as the published loop does): part of the state a resume must restore.
    pub indices: Vec<usize>,
}

impl LoopState {
    /// The state of a run's start, with rollouts of `n` samples.
    pub fn new(lr: f64, n: usize) -> Self {
        Self {
            iteration: 0,
            lr,
            elapsed: 0.0,
            times: Vec::new(),
            episodes: VecDeque::new(),
            indices: (0..n).collect(),
        }
    }

    /// Appends finished episodes to the window of the last 100.
    pub fn push_episodes(&mut self, episodes: &[(f64, usize)]) {
        for ep in episodes {
            if self.episodes.len() == EPISODE_WINDOW {
                self.episodes.pop_front();
            }
            self.episodes.push_back(*ep);
        }
    }

    pub fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let cpu = Device::Cpu;
        let ep: Vec<f64> = self
            .episodes
            .iter()
            .flat_map(|&(r, l)| [r, l as f64])
            .collect();
        let mut out = vec![
            (
                "train.counters".into(),
                Tensor::new(&[self.iteration as f64, self.lr, self.elapsed], &cpu)?,
            ),
            (
                "train.times".into(),
                Tensor::new(self.times.as_slice(), &cpu)?,
            ),
        ];
        if !ep.is_empty() {
            out.push(("train.episodes".into(), Tensor::new(ep.as_slice(), &cpu)?));
        }
        let idx: Vec<u32> = self.indices.iter().map(|&i| i as u32).collect();
        out.push(("train.indices".into(), Tensor::new(idx.as_slice(), &cpu)?));
        Ok(out)
    }

    /// Restores what [`tensors`](Self::tensors) and [`train_tensors`] saved; returns the RNG
    /// at the checkpoint's position.
    pub fn restore(&mut self, t: &Checkpoint) -> Result<ChaCha8Rng> {
        (self.iteration, self.lr, self.elapsed) = counters(t)?;
        // A first-format checkpoint has no permutation: the identity, as at a run's start.
        if let Some(idx) = t.get("train.indices") {
            let idx: Vec<usize> = idx
                .to_dtype(DType::U32)?
                .to_vec1::<u32>()?
                .into_iter()
                .map(|i| i as usize)
                .collect();
            let mut sorted = idx.clone();
            sorted.sort_unstable();
            if !sorted.iter().enumerate().all(|(i, &v)| i == v) || idx.len() != self.indices.len() {
                return invalid(
                    "checkpoint train.indices is not a permutation of this rollout's samples",
                );
            }
            self.indices = idx;
        }
        self.times = f64s(get(t, "train.times")?)?;
        if let Some(ep) = t.get("train.episodes") {
            self.episodes = f64s(ep)?
                .chunks_exact(2)
                .map(|p| (p[0], p[1] as usize))
                .collect();
        }
        t.rng()
    }

    /// Whether a periodic checkpoint is due after the iteration just counted (every
    /// `checkpoint_every` iterations; the loops also save after their last one).
    pub fn checkpoint_due(&self, opts: &RunOptions) -> bool {
        let every = opts.checkpoint_every;
        every > 0 && self.iteration.is_multiple_of(every)
    }

    /// What the run reached, with this session's first iteration, its start and phase sums.
    pub fn outcome(
        &self,
        log_dir: PathBuf,
        n: usize,
        steps_per_iteration: usize,
        first: usize,
        start: Instant,
        phase_sums: [f64; 4],
    ) -> Outcome {
        let session = self.iteration.saturating_sub(first);
        let mut per_step: Vec<f64> = self
            .times
            .iter()
            .map(|s| s / steps_per_iteration as f64)
            .collect();
        per_step.sort_by(f64::total_cmp);
        let returns: Vec<f64> = self.episodes.iter().map(|e| e.0).collect();
        Outcome {
            log_dir,
            iterations: self.iteration,
            timesteps: self.iteration * n,
            eprewmean: crate::io::report::mean(&returns),
            episode_returns: returns,
            median_step_seconds: per_step
                .get(per_step.len() / 2)
                .copied()
                .unwrap_or(f64::NAN),
            fps: (session * n) as f64 / start.elapsed().as_secs_f64(),
            phase_seconds: phase_sums.map(|s| s / session.max(1) as f64),
            actor_collectives: None,
            interrupted: false,
        }
    }
}

/// The run's checkpoint metadata: the seed, the RNG's position and the config, as text.
fn train_meta(config: &Config, seed: u64, rng: &ChaCha8Rng) -> Result<Vec<(String, String)>> {
    Ok(vec![
        ("train.seed".into(), seed.to_string()),
        ("train.rng".into(), checkpoint::rng_text(rng)),
        ("train.config".into(), config.to_yaml()?),
    ])
}

pub(crate) fn index_tensor(idx: &[usize], device: &Device) -> Result<Tensor> {
    let v: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    Ok(Tensor::from_vec(v, idx.len(), device)?)
}

pub(crate) fn get<'a>(t: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    t.get(name)
        .ok_or_else(|| crate::Error::Invalid(format!("checkpoint has no tensor '{name}'")))
}

pub(crate) fn f64s(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// The entries under `prefix`, with the prefix removed, on `device`.
pub(crate) fn prefixed(
    t: &HashMap<String, Tensor>,
    prefix: &str,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    t.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .map(|s| Ok((s.to_string(), v.to_device(device)?)))
        })
        .collect()
}

/// A checkpoint's (iteration, learning rate, elapsed seconds).
fn counters(t: &HashMap<String, Tensor>) -> Result<(usize, f64, f64)> {
    let c = f64s(get(t, "train.counters")?)?;
    if c.len() != 3 {
        return invalid("checkpoint train.counters must be 3 values");
    }
    Ok((c[0] as usize, c[1], c[2]))
}

/// Puts the environments back where the checkpoint left them (`train.envs`), so that the resumed
/// run continues its episodes exactly; a checkpoint without them (an older one, or Procgen's,
/// whose library cannot save its games) starts new episodes, and says so when `verbose`.
pub(crate) fn resume_envs(runner: &mut Runner, t: &Checkpoint, verbose: bool) -> Result<()> {
    match t.meta.get("train.envs") {
        Some(text) => {
            let state: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                crate::Error::Invalid(format!(
                    "checkpoint {}: train.envs is not JSON ({e})",
                    t.path.display()
                ))
            })?;
            runner.load_state(&state)
        }
        None => {
            if verbose {
                println!(
                    "note: the checkpoint holds no environment states; the environments start new \
                     episodes (the resumed run is not the uninterrupted one)"
                );
            }
            Ok(())
        }
    }
}

/// Writes the run's checkpoint: `tensors` (networks and optimisers) with the loop's counters, the
/// seed, the RNG, the config and the environments' states (`envs`, every rank's).
pub(crate) fn save_checkpoint(
    dir: &Path,
    mut tensors: Vec<(String, Tensor)>,
    config: &Config,
    seed: u64,
    state: &LoopState,
    rng: &ChaCha8Rng,
    envs: Option<serde_json::Value>,
) -> Result<()> {
    tensors.extend(state.tensors()?);
    let mut meta = train_meta(config, seed, rng)?;
    if let Some(envs) = envs {
        meta.push(("train.envs".into(), envs.to_string()));
    }
    checkpoint::save(&dir.join("model.safetensors"), tensors, meta)
}
