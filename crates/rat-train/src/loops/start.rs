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
use crate::config::Config;
use crate::error::{Result, invalid};
use crate::io::checkpoint;
use crate::io::run_log::RunLog;

/// Episodes kept for `eprewmean` / `eplenmean`.
const EPISODE_WINDOW: usize = 100;

/// A run's beginning: the checkpoint to resume from, the seed, the RNG and the environments.
pub(crate) struct Start {
    /// The checkpoint's tensors when resuming.
    pub restored: Option<HashMap<String, Tensor>>,
    pub seed: u64,
    pub rng: ChaCha8Rng,
    pub env: VecEnv,
}

/// Loads the checkpoint to resume (if any), picks the seed (the checkpoint's, the option's or a
/// random one in [0, 10⁶) as the reference does) and creates the environments.
pub(crate) fn start(config: &Config, opts: &RunOptions) -> Result<Start> {
    let restored = opts.resume.as_deref().map(checkpoint::load).transpose()?;
    let seed = match (&restored, opts.seed) {
        (Some(t), _) => scalar_u64(t, "train.seed")?,
        (None, Some(s)) => s,
        (None, None) => rand::rng().random_range(0..1_000_000),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let e = config.env_config.num_envs;
    let env_seed = rng.random_range(0..(1u64 << 31));
    if opts.verbose {
        println!(
            "creating environment {} ({e} copies)",
            config.env_config.env_name
        );
    }
    let env = rat_envs::make(&config.env_config.env_name, e, env_seed)?;
    Ok(Start {
        restored,
        seed,
        rng,
        env,
    })
}

/// The run directory: the checkpoint's own when resuming, else `fresh()` (a new one).
pub(crate) fn run_dir(opts: &RunOptions, fresh: impl FnOnce() -> PathBuf) -> PathBuf {
    match &opts.resume {
        Some(path) => path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        None => fresh(),
    }
}

/// Opens the run's log (appending on a resume), writes `config.yaml` and, when verbose, says
/// where it logs; `params` describes the parameter count.
pub(crate) fn open_log(
    config: &Config,
    opts: &RunOptions,
    log_dir: &Path,
    resumed: bool,
    params: &str,
) -> Result<RunLog> {
    let log = RunLog::create(log_dir, resumed, iterations(config))?;
    log.write_config(config)?;
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
}

impl LoopState {
    pub fn new(lr: f64) -> Self {
        Self {
            iteration: 0,
            lr,
            elapsed: 0.0,
            times: Vec::new(),
            episodes: VecDeque::new(),
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
        Ok(out)
    }

    /// Restores what [`tensors`](Self::tensors) and [`train_tensors`] saved; returns the RNG
    /// at the checkpoint's position.
    pub fn restore(&mut self, t: &HashMap<String, Tensor>) -> Result<ChaCha8Rng> {
        let c = f64s(get(t, "train.counters")?)?;
        if c.len() != 3 {
            return invalid("checkpoint train.counters must be 3 values");
        }
        (self.iteration, self.lr, self.elapsed) = (c[0] as usize, c[1], c[2]);
        self.times = f64s(get(t, "train.times")?)?;
        if let Some(ep) = t.get("train.episodes") {
            self.episodes = f64s(ep)?
                .chunks_exact(2)
                .map(|p| (p[0], p[1] as usize))
                .collect();
        }
        checkpoint::tensor_rng(get(t, "train.rng")?)
    }

    /// Whether a checkpoint is due after the iteration just counted: at the end of the run and
    /// every `checkpoint_every` iterations.
    pub fn checkpoint_due(&self, config: &Config, opts: &RunOptions) -> bool {
        let every = opts.checkpoint_every;
        self.iteration == iterations(config) || (every > 0 && self.iteration.is_multiple_of(every))
    }

    /// What the run reached, with this session's first iteration, its start and phase sums.
    pub fn outcome(
        &self,
        log_dir: PathBuf,
        n: usize,
        steps_per_iteration: usize,
        first: usize,
        start: Instant,
        phase_sums: [f64; 3],
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
        }
    }
}

/// The run's checkpoint entries besides networks and optimisers: counters, seed, RNG, config.
pub(crate) fn train_tensors(
    config: &Config,
    seed: u64,
    state: &LoopState,
    rng: &ChaCha8Rng,
) -> Result<Vec<(String, Tensor)>> {
    let mut t = state.tensors()?;
    t.push((
        "train.seed".into(),
        Tensor::new(&[seed as f64], &Device::Cpu)?,
    ));
    t.push(("train.rng".into(), checkpoint::rng_tensor(rng)?));
    t.push((
        "train.config".into(),
        checkpoint::text_tensor(&config.to_yaml()?)?,
    ));
    Ok(t)
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

fn scalar_u64(t: &HashMap<String, Tensor>, name: &str) -> Result<u64> {
    Ok(f64s(get(t, name)?)?.first().copied().unwrap_or(0.0) as u64)
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
