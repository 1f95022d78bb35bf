//! `train_detach`: a separate actor and critic (ALGORITHMS.md 1.2), one iteration at a time:
//!
//! rollout → PopArt (normalise R and A) → observation normaliser → recompute the old policy →
//! all actor passes → KL-adaptive lr → all critic passes → log.
//!
//! The actor rule is any [`ActorUpdate`]; this loop does not change when one is added.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::agent::{ActorNet, Agent};
use crate::checkpoint;
use crate::config::{Algo, Config, Optimizer};
use crate::error::{Result, invalid};
pub use crate::iteration::iterations;
use crate::iteration::{
    COMMON_TB_TAGS, LoopState, NO_STEP, Start, f64s, get, index_tensor, log_iteration, log_row,
    open_log, prefixed, prepare, start, train_tensors,
};
use crate::logger::detach_log_dir;
use crate::nets::{Actor, Critic};
use crate::optim::{Adam, KlAdaptiveLr};
use crate::rat::{RatActor, RatParams};
use crate::runner::Runner;
use crate::update::{ActorBatch, ActorUpdate};

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
    let Start {
        restored,
        seed,
        mut rng,
        env,
    } = start(config, opts)?;
    let t = config.env_config.nsteps;
    let n = config.env_config.num_envs * t;
    let device = &opts.device;
    let mut agent = Agent::new(
        config,
        env.observation_space(),
        env.image_shape(),
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
            state.restore(tensors)?;
            restore_critic_opt(tensors, &mut critic_opt, &agent.critic)?;
            rng = checkpoint::tensor_rng(get(tensors, "train.rng")?)?;
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        }
        _ => detach_log_dir(&opts.log_root, config, seed),
    };
    let total = iterations(config);
    let count = |v: Vec<candle_core::Var>| v.iter().map(|p| p.elem_count()).sum::<usize>();
    let params = format!(
        "actor {}, critic {}",
        count(agent.actor.params()),
        count(agent.critic.params())
    );
    let mut log = open_log(config, opts, &log_dir, restored.is_some(), &params)?;
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
        state.push_episodes(&rollout.episodes);
        let discrete = matches!(agent.actor, ActorNet::Categorical(_));
        let prep = prepare(
            &rollout,
            &mut agent.pre,
            agent.critic.head(),
            discrete,
            device,
        )?;
        let (obs, actions, adv_t, ret_t) = (&prep.obs, &prep.actions, &prep.adv, &prep.ret);
        // The ratio's denominator is the current network on the new normalisation (ratio 1 at the
        // first step), as the reference recomputes it.
        let old = agent.actor.policy(obs, None)?.detach()?;
        update.begin_rollout(n, adv_t)?;

        let t_actor = Instant::now();
        let lr_used = state.lr;
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
                info = Some(update.step(&agent.actor, &batch, state.lr)?);
            }
        }
        let actor_seconds = t_actor.elapsed().as_secs_f64();
        state.times.push(actor_seconds);
        let info = info.unwrap_or(NO_STEP);
        if a.use_kl_adaptive_lr && info.kl.is_finite() {
            state.lr = KlAdaptiveLr::SEPARATE.apply(state.lr, info.kl);
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
            &prep,
            &info,
            loss_v,
            &[("lr_pi", lr_used), ("lr_v", a.lr_v)],
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
        if log_iteration(&mut log, &row, &tb_tags(), &phases, it, config, opts, fps)? {
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
    Ok(state.outcome(log_dir, n, steps_per_iteration, first, start, phase_sums))
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

/// Restores the critic's Adam moments and step count.
fn restore_critic_opt(t: &HashMap<String, Tensor>, opt: &mut Adam, critic: &Critic) -> Result<()> {
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
    t.extend(train_tensors(config, seed, state, rng)?);
    checkpoint::save(&dir.join("model.safetensors"), t)
}

/// The separate script's TensorBoard tags.
fn tb_tags() -> Vec<(&'static str, &'static str)> {
    let mut tags = COMMON_TB_TAGS.to_vec();
    tags.extend([("lr_pi", "train/lr_pi"), ("lr_v", "train/lr_v")]);
    tags
}
