//! `train_detach`: a separate actor and critic (ALGORITHMS.md 1.2), one iteration at a time:
//!
//! rollout → PopArt (normalise R and A) → observation normaliser → recompute the old policy →
//! all actor passes → KL-adaptive lr → all critic passes → log.
//!
//! The actor rule is any [`ActorUpdate`]; this loop does not change when one is added.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::agent::Agent;
use crate::checkpoint;
use crate::config::{Algo, Config, Optimizer};
use crate::error::{Result, invalid};
use crate::logger::{RunLog, detach_log_dir, summary};
use crate::nets::{Actor, Critic};
use crate::optim::{Adam, KlAdaptiveLr};
use crate::rat::{RatActor, RatParams};
use crate::runner::Runner;
use crate::update::{ActorBatch, ActorUpdate, StepInfo};

/// Episodes kept for `eprewmean` / `eplenmean`.
const EPISODE_WINDOW: usize = 100;
/// The critic's global gradient-norm clip.
const CRITIC_MAX_GRAD_NORM: f64 = 5.0;

/// How to run (everything that is not in the config).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The seed; `None` draws one in [0, 10⁶) as the reference does.
    pub seed: Option<u64>,
    /// Where the networks live.
    pub device: Device,
    /// The root of the log directories (`logs`).
    pub log_root: PathBuf,
    /// Continue from this checkpoint (its run directory is reused).
    pub resume: Option<PathBuf>,
    /// Save a checkpoint every this many iterations (0: only at the end).
    pub checkpoint_every: usize,
    /// Print the stdout tables and progress lines.
    pub verbose: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            seed: None,
            device: Device::Cpu,
            log_root: PathBuf::from("logs"),
            resume: None,
            checkpoint_every: 50,
            verbose: true,
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
    /// Mean seconds per iteration spent in the rollout, the actor passes and the critic passes.
    pub phase_seconds: [f64; 3],
}

/// The actor rule selected by `algo`.
pub fn actor_update(config: &Config) -> Result<Box<dyn ActorUpdate>> {
    let a = &config.algo_config;
    match config.algo {
        Algo::Rat => {
            if a.optimizer != Optimizer::Sgd {
                return invalid(format!(
                    "algo rat needs optimizer: sgd (its momentum buffer is the Kaczmarz vector), \
                     got {:?}",
                    a.optimizer
                ));
            }
            Ok(Box::new(RatActor::new(RatParams::from_config(a))?))
        }
        Algo::Diag => Ok(Box::new(crate::diag::DiagActor::new(a)?)),
        Algo::Fvp => Ok(Box::new(crate::fvp::FvpActor::new(a)?)),
        Algo::Pg => Ok(Box::new(crate::pg::PgActor::new(a)?)),
        Algo::Kfac => {
            if a.optimizer != Optimizer::Kfac {
                return invalid("algo kfac uses optimizer: kfac (see configs/kfac_mlp.yaml)");
            }
            Ok(Box::new(crate::kfac::KfacActor::new(a, false)?))
        }
        Algo::Ekfac => {
            if a.optimizer != Optimizer::Ekfac {
                return invalid("algo ekfac uses optimizer: ekfac (see configs/ekfac_mlp.yaml)");
            }
            Ok(Box::new(crate::kfac::KfacActor::new(a, true)?))
        }
        Algo::Ppo => {
            if a.optimizer != Optimizer::Adam {
                return invalid("algo ppo uses optimizer: adam (see configs/ppo_mlp.yaml)");
            }
            Ok(Box::new(crate::ppo::PpoActor::new(a)?))
        }
    }
}

/// The iteration count of a budget: ⌊budget / N⌋ + 2, as the reference's loop runs.
pub fn iterations(config: &Config) -> usize {
    let n = config.env_config.num_envs * config.env_config.nsteps;
    config.env_config.timesteps_per_proc / n.max(1) + 2
}

fn check(config: &Config) -> Result<()> {
    let (a, e) = (&config.algo_config, &config.env_config);
    let n = e.num_envs * e.nsteps;
    if n == 0 {
        return invalid("num_envs and nsteps must be positive");
    }
    for (name, m) in [
        ("pi_minibatches", a.pi_minibatches),
        ("v_minibatches", a.v_minibatches),
    ] {
        if m == 0 || m > n {
            return invalid(format!(
                "{name} = {m} must be in 1..={n} (the rollout size)"
            ));
        }
    }
    if !(a.lr_pi > 0.0 && a.lr_v > 0.0) {
        return invalid("lr_pi and lr_v must be positive");
    }
    Ok(())
}

/// Runs `train_detach` with `config` to its budget and returns what it reached.
pub fn run(config: &Config, opts: &RunOptions) -> Result<Outcome> {
    check(config)?;
    let restored = opts.resume.as_deref().map(checkpoint::load).transpose()?;
    let seed = match (&restored, opts.seed) {
        (Some(t), _) => scalar_u64(t, "train.seed")?,
        (None, Some(s)) => s,
        (None, None) => rand::rng().random_range(0..1_000_000),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (e, t) = (config.env_config.num_envs, config.env_config.nsteps);
    let n = e * t;
    let env_seed = rng.random_range(0..(1u64 << 31));
    if opts.verbose {
        println!(
            "creating environment {} ({e} copies)",
            config.env_config.env_name
        );
    }
    let env = rat_envs::make(&config.env_config.env_name, e, env_seed)?;
    let device = &opts.device;
    let mut agent = Agent::new(
        config,
        env.observation_space(),
        env.action_space(),
        device,
        &mut rng,
    )?;
    let mut runner = Runner::new(env, config.algo_config.adv_type)?;
    let mut update = actor_update(config)?;
    let mut critic_opt = Adam::new(&agent.critic.params())?;
    let mut state = LoopState::new(config.algo_config.lr_pi);
    let log_dir = match (&restored, &opts.resume) {
        (Some(tensors), Some(path)) => {
            agent.load(tensors)?;
            update.load_state(&prefixed(tensors, "optim.actor.", device)?)?;
            state.restore(tensors, &mut critic_opt, &agent.critic)?;
            rng = checkpoint::tensor_rng(get(tensors, "train.rng")?)?;
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        }
        _ => detach_log_dir(&opts.log_root, config, seed),
    };
    let total = iterations(config);
    let mut log = RunLog::create(&log_dir, restored.is_some(), total)?;
    log.write_config(config)?;
    if opts.verbose {
        let count = |v: Vec<candle_core::Var>| v.iter().map(|p| p.elem_count()).sum::<usize>();
        println!("device: {device:?}");
        println!(
            "Number of parameters: actor {}, critic {}",
            count(agent.actor.params()),
            count(agent.critic.params())
        );
        println!("logging to {}", log_dir.display());
        println!("training...");
    }
    let start = Instant::now();
    let first = state.iteration;
    let a = &config.algo_config;
    let (pi_b, v_b) = (n / a.pi_minibatches, n / a.v_minibatches);
    let steps_per_iteration = a.pi_epochs * n.div_ceil(pi_b);
    let mut indices: Vec<usize> = (0..n).collect();
    let mut phase_sums = [0.0f64; 3];
    for it in first..total {
        let t0 = Instant::now();
        let rollout = runner.run(&agent, t, device, &mut rng)?;
        let rollout_seconds = t0.elapsed().as_secs_f64();
        for ep in &rollout.episodes {
            if state.episodes.len() == EPISODE_WINDOW {
                state.episodes.pop_front();
            }
            state.episodes.push_back(*ep);
        }
        // PopArt first: the targets and advantages use the updated statistics (mean shift included).
        let stats = agent.update_popart(&rollout.returns)?;
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
        if let Some(norm) = agent.obs_norm.as_mut() {
            norm.update(&rollout.obs)?;
        }
        let obs = agent.normalise(&rollout.obs, device)?;
        let actions = actions_tensor(&rollout.actions, &agent, device)?;
        let adv_t = f32_tensor(&advantages, device)?;
        let ret_t = f32_tensor(&returns, device)?;
        // The ratio's denominator is the current network on the new normalisation (ratio 1 at the
        // first step), as the reference recomputes it.
        let old = agent.actor.policy(&obs, None)?.detach()?;
        update.begin_rollout(n, &adv_t)?;

        let t_actor = Instant::now();
        let lr_used = state.lr_pi;
        let mut info = None;
        for _ in 0..a.pi_epochs {
            indices.shuffle(&mut rng);
            for chunk in indices.chunks(pi_b) {
                let idx = index_tensor(chunk, device)?;
                let batch = ActorBatch {
                    obs: obs.index_select(&idx, 0)?,
                    actions: actions.index_select(&idx, 0)?,
                    advantages: adv_t.index_select(&idx, 0)?,
                    old: old.select(&idx)?,
                    block: chunk.to_vec(),
                };
                info = Some(update.step(&agent.actor, &batch, state.lr_pi)?);
            }
        }
        let actor_seconds = t_actor.elapsed().as_secs_f64();
        state.times.push(actor_seconds);
        let info = info.unwrap_or(StepInfo {
            kl: f64::NAN,
            entropy: f64::NAN,
            grad_norm: f64::NAN,
            ratio_max: f64::NAN,
            ratio_min: f64::NAN,
            loss_pi: f64::NAN,
        });
        if a.use_kl_adaptive_lr && info.kl.is_finite() {
            state.lr_pi = KlAdaptiveLr::SEPARATE.apply(state.lr_pi, info.kl);
        }

        let t_critic = Instant::now();
        let mut loss_v = f64::NAN;
        for _ in 0..a.v_epochs {
            indices.shuffle(&mut rng);
            for chunk in indices.chunks(v_b) {
                let idx = index_tensor(chunk, device)?;
                loss_v = critic_step(
                    &agent.critic,
                    &mut critic_opt,
                    &obs.index_select(&idx, 0)?,
                    &ret_t.index_select(&idx, 0)?,
                    a.lr_v,
                )?;
            }
        }
        let critic_seconds = t_critic.elapsed().as_secs_f64();
        let fps = n as f64 / t0.elapsed().as_secs_f64();
        for (sum, v) in phase_sums
            .iter_mut()
            .zip([rollout_seconds, actor_seconds, critic_seconds])
        {
            *sum += v;
        }
        state.iteration = it + 1;
        state.elapsed += t0.elapsed().as_secs_f64();

        let row = log_row(
            &state,
            &rollout.actions,
            &advantages,
            &returns,
            &info,
            loss_v,
            lr_used,
            a.lr_v,
            fps,
            it,
            n,
        );
        // Phase times go to TensorBoard only: progress.csv keeps the reference's columns.
        let phases = [
            ("time/rollout", rollout_seconds),
            ("time/actor", actor_seconds),
            ("time/critic", critic_seconds),
        ];
        log.scalars(&row, TB_TAGS, &phases, it)?;
        if (it + 1) % config.log_config.log_interval.max(1) == 0 {
            log.row(&row, opts.verbose)?;
        }
        if opts.verbose {
            log.progress(it, fps, row["eprewmean"], config.log_config.log_interval);
        }
        let last = it + 1 == total;
        if last || (opts.checkpoint_every > 0 && (it + 1) % opts.checkpoint_every == 0) {
            save_checkpoint(
                &log_dir,
                config,
                seed,
                &agent,
                update.as_ref(),
                &critic_opt,
                &state,
                &rng,
            )?;
            log.write_times(&state.times, steps_per_iteration)?;
        }
    }
    log.finish();
    let session = state.iteration.saturating_sub(first);
    let mut per_step: Vec<f64> = state
        .times
        .iter()
        .map(|s| s / steps_per_iteration as f64)
        .collect();
    per_step.sort_by(f64::total_cmp);
    let returns: Vec<f64> = state.episodes.iter().map(|e| e.0).collect();
    Ok(Outcome {
        log_dir,
        iterations: state.iteration,
        timesteps: state.iteration * n,
        eprewmean: mean(&returns),
        episode_returns: returns,
        median_step_seconds: per_step
            .get(per_step.len() / 2)
            .copied()
            .unwrap_or(f64::NAN),
        fps: (session * n) as f64 / start.elapsed().as_secs_f64(),
        phase_seconds: phase_sums.map(|s| s / session.max(1) as f64),
    })
}

/// One critic step: Adam on mean((v(s) − R)²) with the global gradient norm clipped to 5.
/// Returns the loss before the step.
pub fn critic_step(
    critic: &Critic,
    opt: &mut Adam,
    obs: &Tensor,
    target: &Tensor,
    lr: f64,
) -> Result<f64> {
    let loss = critic.forward(obs)?.sub(target)?.sqr()?.mean_all()?;
    let grads = loss.backward()?;
    let params = critic.params();
    let g = params
        .iter()
        .map(|p| {
            grads
                .get(p.as_tensor())
                .cloned()
                .map_or_else(|| p.as_tensor().zeros_like(), Ok)
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let (clipped, _) = rat_core::clip::clip_grad_norm(&g, CRITIC_MAX_GRAD_NORM)?;
    opt.step(&params, &clipped, lr)?;
    Ok(loss.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// The counters a run carries from one iteration to the next (and across a resume).
struct LoopState {
    iteration: usize,
    lr_pi: f64,
    elapsed: f64,
    times: Vec<f64>,
    episodes: VecDeque<(f64, usize)>,
}

impl LoopState {
    fn new(lr_pi: f64) -> Self {
        Self {
            iteration: 0,
            lr_pi,
            elapsed: 0.0,
            times: Vec::new(),
            episodes: VecDeque::new(),
        }
    }

    fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let cpu = Device::Cpu;
        let ep: Vec<f64> = self
            .episodes
            .iter()
            .flat_map(|&(r, l)| [r, l as f64])
            .collect();
        let mut out = vec![
            (
                "train.counters".into(),
                Tensor::new(&[self.iteration as f64, self.lr_pi, self.elapsed], &cpu)?,
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

    fn restore(
        &mut self,
        t: &HashMap<String, Tensor>,
        opt: &mut Adam,
        critic: &Critic,
    ) -> Result<()> {
        let c = f64s(get(t, "train.counters")?)?;
        if c.len() != 3 {
            return invalid("checkpoint train.counters must be 3 values");
        }
        (self.iteration, self.lr_pi, self.elapsed) = (c[0] as usize, c[1], c[2]);
        self.times = f64s(get(t, "train.times")?)?;
        if let Some(ep) = t.get("train.episodes") {
            self.episodes = f64s(ep)?.chunks(2).map(|p| (p[0], p[1] as usize)).collect();
        }
        let k = critic.params().len();
        let dev = critic.params()[0].device().clone();
        let load = |name: &str| -> Result<Vec<Tensor>> {
            (0..k)
                .map(|i| Ok(get(t, &format!("optim.critic.{name}.{i}"))?.to_device(&dev)?))
                .collect()
        };
        let steps = f64s(get(t, "optim.critic.t")?)?;
        opt.set_state(
            load("m")?,
            load("v")?,
            steps.first().copied().unwrap_or(0.0) as u64,
        )?;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    dir: &Path,
    config: &Config,
    seed: u64,
    agent: &Agent,
    update: &dyn ActorUpdate,
    critic_opt: &Adam,
    state: &LoopState,
    rng: &ChaCha8Rng,
) -> Result<()> {
    let cpu = Device::Cpu;
    let mut t = agent.tensors()?;
    t.extend(
        update
            .state()
            .into_iter()
            .map(|(k, v)| (format!("optim.actor.{k}"), v)),
    );
    let (m, v) = critic_opt.moments();
    t.extend(
        m.iter()
            .enumerate()
            .map(|(i, x)| (format!("optim.critic.m.{i}"), x.clone())),
    );
    t.extend(
        v.iter()
            .enumerate()
            .map(|(i, x)| (format!("optim.critic.v.{i}"), x.clone())),
    );
    t.push((
        "optim.critic.t".into(),
        Tensor::new(&[critic_opt.t as f64], &cpu)?,
    ));
    t.extend(state.tensors()?);
    t.push(("train.seed".into(), Tensor::new(&[seed as f64], &cpu)?));
    t.push(("train.rng".into(), checkpoint::rng_tensor(rng)?));
    t.push((
        "train.config".into(),
        checkpoint::text_tensor(&config.to_yaml()?)?,
    ));
    checkpoint::save(&dir.join("model.safetensors"), t)
}

const TB_TAGS: &[(&str, &str)] = &[
    ("kl", "train/kl"),
    ("grad_norm", "grad_norm"),
    ("clipfrac", "train/clipfrac"),
    ("entropy", "train/entropy"),
    ("lr_pi", "train/lr_pi"),
    ("ratio_max", "train/ratio_max"),
    ("ratio_min", "train/ratio_min"),
    ("loss_pi", "train/loss_pi"),
    ("loss_v", "train/loss_v"),
    ("lr_v", "train/lr_v"),
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

#[allow(clippy::too_many_arguments)]
fn log_row(
    state: &LoopState,
    actions: &[f32],
    adv: &[f64],
    ret: &[f64],
    info: &StepInfo,
    loss_v: f64,
    lr_pi: f64,
    lr_v: f64,
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
    for (name, x) in [("adv", adv), ("ret", ret)] {
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
    put("lr_pi", lr_pi);
    put("lr_v", lr_v);
    put("misc/nupdates", it as f64);
    put("misc/serial_timesteps", ((it + 1) * n) as f64);
    put("misc/total_timesteps", ((it + 1) * n) as f64);
    put("misc/time_elapsed", state.elapsed);
    put("ratio_max", info.ratio_max);
    put("ratio_min", info.ratio_min);
    row
}

fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        f64::NAN
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

fn f32_tensor(x: &[f64], device: &Device) -> Result<Tensor> {
    let v: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    Ok(Tensor::from_vec(v, x.len(), device)?)
}

fn index_tensor(idx: &[usize], device: &Device) -> Result<Tensor> {
    let v: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
    Ok(Tensor::from_vec(v, idx.len(), device)?)
}

/// Pre-squash actions (n, act_dim) in f32, or indices (n) in u32 for a categorical actor.
fn actions_tensor(actions: &[f32], agent: &Agent, device: &Device) -> Result<Tensor> {
    let n = actions.len() / agent.act_dim.max(1);
    Ok(match agent.actor {
        crate::agent::ActorNet::Categorical(_) => {
            let v: Vec<u32> = actions.iter().map(|&a| a as u32).collect();
            Tensor::from_vec(v, n, device)?
        }
        crate::agent::ActorNet::Gaussian(_) => {
            Tensor::from_slice(actions, (n, agent.act_dim), device)?
        }
    })
}

fn get<'a>(t: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor> {
    t.get(name)
        .ok_or_else(|| crate::Error::Invalid(format!("checkpoint has no tensor '{name}'")))
}

fn f64s(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

fn scalar_u64(t: &HashMap<String, Tensor>, name: &str) -> Result<u64> {
    Ok(f64s(get(t, name)?)?.first().copied().unwrap_or(0.0) as u64)
}

/// The entries under `prefix`, with the prefix removed, on `device`.
fn prefixed(
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
