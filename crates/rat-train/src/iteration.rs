//! What the two training loops (`detach`, `shared`) share: start-up (seed, environments), the
//! per-rollout preparation (PopArt, observation normaliser, tensors), the counters carried from
//! one iteration to the next, the log row and the run's outcome.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_core::layers::Dense;
use rat_envs::VecEnv;

use crate::agent::Preprocess;
use crate::checkpoint;
use crate::config::Config;
use crate::detach::{Outcome, RunOptions};
use crate::error::{Result, invalid};
use crate::logger::{RunLog, summary};
use crate::runner::Rollout;
use crate::update::StepInfo;

/// Episodes kept for `eprewmean` / `eplenmean`.
const EPISODE_WINDOW: usize = 100;

/// A run's beginning: the checkpoint to resume from, the seed, the RNG and the environments.
pub(crate) struct Start {
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

/// Writes iteration `it`'s TensorBoard scalars (`tags` and the phase times), its CSV row every
/// `log_interval` iterations and the progress line; returns whether a checkpoint is due.
#[allow(clippy::too_many_arguments)]
pub(crate) fn log_iteration(
    log: &mut RunLog,
    row: &BTreeMap<String, f64>,
    tags: &[(&str, &str)],
    phases: &[(&str, f64)],
    it: usize,
    config: &Config,
    opts: &RunOptions,
    fps: f64,
) -> Result<bool> {
    log.scalars(row, tags, phases, it)?;
    let every = config.log_config.log_interval.max(1);
    if (it + 1).is_multiple_of(every) {
        log.row(row, opts.verbose)?;
    }
    if opts.verbose {
        let ret = row.get("eprewmean").copied().unwrap_or(f64::NAN);
        log.progress(it, fps, ret, config.log_config.log_interval);
    }
    let last = it + 1 == iterations(config);
    Ok(last || (opts.checkpoint_every > 0 && (it + 1).is_multiple_of(opts.checkpoint_every)))
}

/// The iteration count of a budget: ⌊budget / N⌋ + 2, as the reference's loops run.
pub fn iterations(config: &Config) -> usize {
    let n = config.env_config.num_envs * config.env_config.nsteps;
    config.env_config.timesteps_per_proc / n.max(1) + 2
}

/// A rollout ready for the updates: PopArt-normalised advantages and returns (host and device),
/// normalised observations and the actions as tensors.
pub(crate) struct Prepared {
    pub advantages: Vec<f64>,
    pub returns: Vec<f64>,
    pub obs: Tensor,
    pub actions: Tensor,
    pub adv: Tensor,
    pub ret: Tensor,
}

/// PopArt first (the targets and advantages use the updated statistics, mean shift included,
/// and `head` is rescaled), then the observation normaliser, then the tensors.
pub(crate) fn prepare(
    rollout: &Rollout,
    pre: &mut Preprocess,
    head: &Dense,
    discrete: bool,
    device: &Device,
) -> Result<Prepared> {
    let stats = pre.update_popart(&rollout.returns, head)?;
    let returns: Vec<f64> = rollout
        .returns
        .iter()
        .map(|&r| stats.normalise(r))
        .collect();
    let advantages: Vec<f64> = rollout
        .advantages
        .iter()
        .map(|&x| stats.normalise(x))
        .collect();
    if let Some(norm) = pre.obs_norm.as_mut() {
        norm.update(&rollout.obs)?;
    }
    let obs = pre.normalise(&rollout.obs, device)?;
    let n = rollout.actions.len() / pre.act_dim.max(1);
    let actions = if discrete {
        let v: Vec<u32> = rollout.actions.iter().map(|&a| a as u32).collect();
        Tensor::from_vec(v, n, device)?
    } else {
        Tensor::from_slice(&rollout.actions, (n, pre.act_dim), device)?
    };
    Ok(Prepared {
        adv: f32_tensor(&advantages, device)?,
        ret: f32_tensor(&returns, device)?,
        advantages,
        returns,
        obs,
        actions,
    })
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

    pub fn restore(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
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
        Ok(())
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
            eprewmean: mean(&returns),
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

/// A `progress.csv` row (ALGORITHMS.md 9.2) from the rollout, the last step's report and the
/// loop's own values; `extra` holds the learning-rate columns (`lr_pi`/`lr_v` or `curr_lr`/`lr`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn log_row(
    state: &LoopState,
    actions: &[f32],
    prepared: &Prepared,
    info: &StepInfo,
    loss_v: f64,
    extra: &[(&str, f64)],
    fps: f64,
    it: usize,
    n: usize,
) -> BTreeMap<String, f64> {
    let mut row = BTreeMap::new();
    let mut put = |k: &str, v: f64| {
        row.insert(k.to_string(), v);
    };
    let (amin, amax) = actions
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &a| {
            (lo.min(a as f64), hi.max(a as f64))
        });
    put("action_max", amax);
    put("action_min", amin);
    for (name, x) in [("adv", &prepared.advantages), ("ret", &prepared.returns)] {
        let (min, max, avg, med, var) = summary(x);
        put(&format!("{name}_avg"), avg);
        put(&format!("{name}_max"), max);
        put(&format!("{name}_med"), med);
        put(&format!("{name}_min"), min);
        put(&format!("{name}_var"), var);
    }
    let rets: Vec<f64> = state.episodes.iter().map(|e| e.0).collect();
    let lens: Vec<f64> = state.episodes.iter().map(|e| e.1 as f64).collect();
    put("clipfrac", 0.0);
    put("entropy", info.entropy);
    put("eplenmean", mean(&lens));
    put("eprewmean", mean(&rets));
    put("fps", fps.floor());
    put("grad_norm", info.grad_norm);
    put("kl", info.kl);
    put("loss_pi", info.loss_pi);
    put("loss_v", loss_v);
    for (k, v) in extra {
        put(k, *v);
    }
    put("misc/nupdates", it as f64);
    put("misc/serial_timesteps", ((it + 1) * n) as f64);
    put("misc/total_timesteps", ((it + 1) * n) as f64);
    put("misc/time_elapsed", state.elapsed);
    put("ratio_max", info.ratio_max);
    put("ratio_min", info.ratio_min);
    row
}

/// The TensorBoard tags both loops write (ALGORITHMS.md 9.3), besides the learning rates.
pub(crate) const COMMON_TB_TAGS: &[(&str, &str)] = &[
    ("kl", "train/kl"),
    ("grad_norm", "grad_norm"),
    ("clipfrac", "train/clipfrac"),
    ("entropy", "train/entropy"),
    ("ratio_max", "train/ratio_max"),
    ("ratio_min", "train/ratio_min"),
    ("loss_pi", "train/loss_pi"),
    ("loss_v", "train/loss_v"),
    ("ret_max", "train/ret_max"),
    ("ret_min", "train/ret_min"),
    ("ret_avg", "train/ret_avg"),
    ("ret_med", "train/ret_med"),
    ("ret_var", "train/ret_var"),
    ("action_max", "train/act_max"),
    ("action_min", "train/act_min"),
    ("adv_max", "train/adv_max"),
    ("adv_min", "train/adv_min"),
    ("adv_avg", "train/adv_avg"),
    ("adv_med", "train/adv_med"),
    ("adv_var", "train/adv_var"),
    ("eprewmean", "train/eprewmean"),
    ("eplenmean", "train/eplenmean"),
    ("fps", "train/fps"),
    ("misc/time_elapsed", "misc/time_elapsed"),
    ("misc/serial_timesteps", "misc/serial_timesteps"),
    ("misc/nupdates", "misc/nupdates"),
    ("misc/total_timesteps", "misc/total_timesteps"),
];

/// A report of NaNs, for an iteration that took no step.
pub(crate) const NO_STEP: StepInfo = StepInfo {
    kl: f64::NAN,
    entropy: f64::NAN,
    grad_norm: f64::NAN,
    ratio_max: f64::NAN,
    ratio_min: f64::NAN,
    loss_pi: f64::NAN,
};

pub(crate) fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        f64::NAN
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

pub(crate) fn f32_tensor(x: &[f64], device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    Ok(Tensor::from_vec(v, x.len(), device)?)
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
