//! `train_detach`: a separate actor and critic (ALGORITHMS.md 1.2). [`run`] is the whole loop,
//! one iteration at a time:
//!
//! rollout → GAE → PopArt (normalise R and A) → observation normaliser → recompute the old
//! policy → all actor passes (until `target_kl`, if set) → KL-adaptive lr → all critic passes →
//! log (and checkpoint).
//!
//! The actor rule is any [`ActorUpdate`](crate::rules::ActorUpdate); this loop does not change when one is added.

use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Tensor};
use rand::seq::SliceRandom;
use rat_core::dist::Metered;

use super::control::{StepStats, ent_coef_at, kl_to, past_target};
use super::options::{Outcome, RunOptions, iterations};
use super::rollout::{RolloutTensors, Runner, advantages, normalised};
use super::start::{
    LoopState, Start, index_tensor, open_run, prefixed, resume_envs, save_checkpoint, start,
};
use super::video::VideoRecorder;
use crate::config::{Config, DistMode, Trainer};
use crate::error::{Result, diverged};
use crate::io::checkpoint::with_prefix;
use crate::io::report::IterationReport;
use crate::io::run_log::detach_log_dir;
use crate::nets::{Actor, ActorNet, Agent, Critic};
use crate::optim::{Adam, KlAdaptiveLr};
use crate::rules::{ActorBatch, StepInfo, actor_update};

/// The critic's global gradient-norm clip.
const CRITIC_MAX_GRAD_NORM: f64 = 5.0;

/// Runs `train_detach` with `config` to its budget and returns what it reached.
pub fn run(config: &Config, opts: &RunOptions) -> Result<Outcome> {
    let Start {
        restored,
        seed,
        mut rng,
        env,
        ranks,
    } = start(config, opts, Trainer::Detach)?;
    let opts = &opts.on_rank(ranks.is_root());
    let (a, device) = (&config.algo_config, &opts.device);
    let t = config.env_config.nsteps;
    let n = config.env_config.num_envs * t;
    let mut agent = Agent::new(
        config,
        env.observation_space(),
        env.image_shape(),
        env.action_space(),
        device,
        &mut rng,
    )?;
    let discrete = matches!(agent.actor, ActorNet::Categorical(_));
    let mut runner = Runner::with_share(env, a.gamma, ranks.share.clone(), ranks.total)?;
    let mut update = actor_update(config)?;
    let mut critic_opt = Adam::new(&agent.critic.params())?;
    let mut state = LoopState::new(a.lr_pi, n);
    let kl_rule = KlAdaptiveLr::SEPARATE.configured(a);
    if let Some(tensors) = &restored {
        agent.load(tensors)?;
        update.load_state(&prefixed(tensors, "optim.actor.", device)?)?;
        critic_opt.load_state(&prefixed(tensors, "optim.critic.", device)?)?;
        rng = state.restore(tensors)?;
        resume_envs(&mut runner, tensors, opts.verbose)?;
    }
    let count = |v: Vec<candle_core::Var>| v.iter().map(|p| p.elem_count()).sum::<usize>();
    let params = format!(
        "actor {}, critic {}",
        count(agent.actor.params()),
        count(agent.critic.params())
    );
    let fresh = || detach_log_dir(&opts.log_root, config, seed);
    let (log_dir, mut log) = open_run(
        config,
        opts,
        &ranks,
        &restored,
        Trainer::Detach,
        &params,
        fresh,
    )?;
    let mut video = VideoRecorder::new(
        &config.env_config.env_name,
        seed,
        opts.video_every,
        &log_dir,
    )?;
    let (pi_b, v_b) = (n / a.pi_minibatches, n / a.v_minibatches);
    // dist_mode block and exact: each rank steps on its rows of every actor minibatch (block:
    // its own solve, then the ranks average; exact: the rule gathers the rows' factors).
    let distributed = ranks.comm.size() > 1;
    let block = a.dist_mode == DistMode::Block && distributed;
    let sharded = block || (a.dist_mode == DistMode::Exact && distributed);
    if sharded && pi_b < 2 * ranks.comm.size() {
        return crate::error::invalid(format!(
            "dist_mode {} on {} ranks: the actor minibatch of {pi_b} samples gives a rank \
             fewer than 2 rows; lower pi_minibatches or the number of ranks",
            if block { "block" } else { "exact" },
            ranks.comm.size()
        ));
    }
    // The exact mode's collectives, measured for the scaling table.
    let metered = (sharded && !block).then(|| Metered::new(ranks.comm.clone()));
    if let Some(m) = &metered {
        update.shard_rows(Arc::new(m.clone()))?;
    }
    let mut session_steps = 0usize;
    let steps_per_iteration = a.pi_epochs * n.div_ceil(pi_b);
    let (session_start, first) = (Instant::now(), state.iteration);
    let mut phase_sums = [0.0f64; 4];
    let total = iterations(config);
    for it in first..total {
        // Rollout with the frozen normaliser, then GAE on the unnormalised values.
        let t0 = Instant::now();
        let local = runner.run(&agent, t, device, &mut rng)?;
        let t_gather = Instant::now();
        let rollout = ranks.gather(local)?;
        let gather_seconds = t_gather.elapsed().as_secs_f64();
        let rollout_seconds = t0.elapsed().as_secs_f64();
        state.push_episodes(&rollout.episodes);
        let est = advantages(&rollout.trajectory, a)?;

        // PopArt first (R and A on the updated statistics, the critic's head rescaled), then the
        // observation normaliser; the updates see the rollout through both.
        let stats = agent.update_popart(&est.returns)?;
        agent.pre.update_obs_norm(&rollout.obs)?;
        let data = RolloutTensors::new(
            &rollout,
            normalised(&est, stats),
            &agent.pre,
            discrete,
            device,
        )?;
        // The ratio's denominator: the current network on the new normalisation (ratio 1 at the
        // first step), as the reference recomputes it.
        let old = agent.actor.policy(&data.obs, None)?.detach()?;

        // Actor passes: pi_epochs x pi_minibatches steps of the rule, or fewer once the KL to the
        // rollout's policy on the next minibatch passes `target_kl`.
        let t_actor = Instant::now();
        update.begin_rollout(n, &data.adv)?;
        let (lr_used, ent_coef) = (state.lr, ent_coef_at(a, it, total));
        let (mut step, mut stats, mut stop) = (StepInfo::NONE, StepStats::default(), false);
        for _ in 0..a.pi_epochs {
            state.indices.shuffle(&mut rng);
            for chunk in state.indices.chunks(pi_b) {
                let rows = ranks.rows(chunk, sharded);
                let idx = index_tensor(rows, device)?;
                let batch = ActorBatch {
                    obs: data.obs.index_select(&idx, 0)?,
                    actions: data.actions.index_select(&idx, 0)?,
                    advantages: data.adv.index_select(&idx, 0)?,
                    old: old.select(&idx)?,
                    block: rows.to_vec(),
                    ent_coef,
                };
                // The first step always runs: its KL to the rollout's policy is 0 but for
                // rounding (the old policy was evaluated on the whole rollout at once).
                if a.target_kl.is_some() && stats.steps() > 0 {
                    let kl = kl_to(&agent.actor, &batch.old, &batch.obs)?;
                    let kl = ranks.row_mean(kl, rows.len(), sharded)?;
                    stop = past_target(a, kl);
                    if stop {
                        break;
                    }
                }
                // The policy before the step, for the KL the step moves (`step_diagnostics`).
                let before = match a.step_diagnostics {
                    true => Some(agent.actor.policy(&batch.obs, None)?.detach()?),
                    false => None,
                };
                step = update
                    .step(&agent.actor, &batch, state.lr)
                    .map_err(diverged(
                        "actor update",
                        it,
                        ("lr_pi", state.lr),
                        a.cg_damping,
                    ))?;
                if block {
                    step = ranks.average_step(&agent.actor.params(), update.as_mut(), step)?;
                }
                let kl_step = match &before {
                    Some(before) => {
                        let kl = kl_to(&agent.actor, before, &batch.obs)?;
                        ranks.row_mean(kl, rows.len(), sharded)?
                    }
                    None => f64::NAN,
                };
                stats.push(&step, kl_step);
            }
            if stop {
                break;
            }
        }
        let actor_seconds = t_actor.elapsed().as_secs_f64();
        session_steps += stats.steps();
        state.times.push(actor_seconds);

        // The KL-adaptive learning rate, on the last minibatch's KL.
        if a.use_kl_adaptive_lr && step.kl.is_finite() {
            state.lr = kl_rule.apply(state.lr, step.kl);
        }

        // Critic passes: v_epochs x v_minibatches Adam steps on the PopArt targets.
        let t_critic = Instant::now();
        let mut loss_v = f64::NAN;
        for _ in 0..a.v_epochs {
            state.indices.shuffle(&mut rng);
            for chunk in state.indices.chunks(v_b) {
                // Sharded (dist_mode exact): this rank's rows; the ranks sum the gradient.
                let rows = ranks.rows(chunk, sharded && !block);
                let idx = index_tensor(rows, device)?;
                let (obs, ret) = (
                    data.obs.index_select(&idx, 0)?,
                    data.ret.index_select(&idx, 0)?,
                );
                let share = (rows.len(), chunk.len());
                loss_v = critic_step(&agent.critic, &mut critic_opt, &obs, &ret, a.lr_v, |g| {
                    ranks.sum_rows_mean(g, share)
                })?;
            }
        }
        let critic_seconds = t_critic.elapsed().as_secs_f64();

        // Log, and checkpoint when due.
        let fps = n as f64 / t0.elapsed().as_secs_f64();
        let phases = [
            rollout_seconds,
            actor_seconds,
            critic_seconds,
            gather_seconds,
        ];
        phase_sums.iter_mut().zip(phases).for_each(|(s, v)| *s += v);
        state.iteration = it + 1;
        state.elapsed += t0.elapsed().as_secs_f64();
        let report = IterationReport {
            iteration: it,
            batch: n,
            fps,
            elapsed: state.elapsed,
            actions: &rollout.actions,
            advantages: &data.host.advantages,
            returns: &data.host.returns,
            episodes: &state.episodes,
            step: StepInfo {
                clipfrac: stats.clipfrac(),
                ..step
            },
            loss_v,
            learning_rates: [("lr_pi", lr_used), ("lr_v", a.lr_v)],
            tb_only: [
                ("time/rollout", rollout_seconds),
                ("time/actor", actor_seconds),
                ("time/critic", critic_seconds),
                ("time/gather", gather_seconds),
            ]
            .into_iter()
            .chain(update.diagnostics())
            .collect(),
            extra: stats.columns(a, ent_coef),
        };
        // A stop request (Ctrl-C, SIGTERM) ends the run after this iteration, logged and saved.
        ranks.agree(it, || agent.tensors())?;
        // Every rank stops at the same iteration.
        let last = it + 1 == total || ranks.any(opts.stop_requested())?;
        let due = last || state.checkpoint_due(opts);
        let envs = if due { ranks.env_state(&runner)? } else { None };
        let Some(log) = log.as_mut() else {
            if last {
                break;
            }
            continue;
        };
        log.iteration(&report, config.log_config.log_interval, last, opts.verbose)?;
        if let Some(v) = video.as_mut().filter(|v| v.due(it)) {
            let clip = v.record(&agent, device, it)?;
            log.video(it, clip.size, &clip.gif, clip.ret, clip.seconds)?;
        }
        if due {
            let mut tensors = agent.tensors()?;
            tensors.extend(with_prefix("optim.actor.", update.state()));
            tensors.extend(with_prefix("optim.critic.", critic_opt.state()?));
            save_checkpoint(&log_dir, tensors, config, seed, &state, &rng, envs)?;
            log.write_times(&state.times, steps_per_iteration)?;
        }
        if last {
            break;
        }
    }
    if let Some(log) = log.as_mut() {
        log.finish();
    }
    let mut outcome = state.outcome(
        log_dir,
        n,
        steps_per_iteration,
        first,
        session_start,
        phase_sums,
    );
    outcome.interrupted = state.iteration < total;
    outcome.actor_collectives = metered.map(|m| {
        let (t, steps) = (m.traffic(), session_steps.max(1) as f64);
        (t.seconds / steps, t.bytes as f64 / steps)
    });
    Ok(outcome)
}

/// One critic step: Adam on mean((v(s) − R)²) with the global gradient norm clipped to 5.
/// `whole` maps the loss and gradient of these rows (their means) to the whole minibatch's (the
/// identity unless the rows are split over ranks). Returns the loss before the step.
pub fn critic_step(
    critic: &Critic,
    opt: &mut Adam,
    obs: &Tensor,
    target: &Tensor,
    lr: f64,
    whole: impl FnOnce((f64, Vec<Tensor>)) -> Result<(f64, Vec<Tensor>)>,
) -> Result<f64> {
    let loss = critic.forward(obs)?.sub(target)?.sqr()?.mean_all()?;
    let grads = loss.backward()?;
    let params = critic.params();
    let g = rat_core::params::gradients(&grads, &params)?;
    let loss = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let (loss, g) = whole((loss, g))?;
    let (clipped, _) = rat_core::clip::clip_grad_norm(&g, CRITIC_MAX_GRAD_NORM)?;
    opt.step(&params, &clipped, lr)?;
    Ok(loss)
}
