//! `train_shared`: one shared actor–critic network (ALGORITHMS.md 1.3). [`run`] is the whole
//! loop, one iteration at a time:
//!
//! rollout → GAE → PopArt (normalise R and A) → observation normaliser → recompute the old
//! policy → `epochs` passes of joint updates over all parameters (until the KL after a step
//! passes `target_kl`, if set) → KL-adaptive lr (on the KL measured after the last step) → log
//! (and checkpoint).
//!
//! There is no critic phase: the value loss is part of every joint step. The rule is any
//! [`JointUpdate`](crate::rules::joint::JointUpdate) (`rat`, `diag`, `kfac`, `ekfac`).

use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rat_core::dist::Metered;

use super::control::{StepStats, ent_coef_at, past_target};
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
use crate::io::run_log::shared_log_dir;
use crate::nets::{DropoutMasks, SharedAgent};
use crate::optim::KlAdaptiveLr;
use crate::rules::StepInfo;
use crate::rules::joint::{JointBatch, joint_update};

/// Runs `train_shared` with `config` to its budget and returns what it reached.
pub fn run(config: &Config, opts: &RunOptions) -> Result<Outcome> {
    let Start {
        restored,
        seed,
        mut rng,
        env,
        ranks,
    } = start(config, opts, Trainer::Shared)?;
    let opts = &opts.on_rank(ranks.is_root());
    let (a, device) = (&config.algo_config, &opts.device);
    let t = config.env_config.nsteps;
    let n = config.env_config.num_envs * t;
    let mut agent = SharedAgent::new(
        config,
        env.observation_space(),
        env.image_shape(),
        env.action_space(),
        device,
        &mut rng,
    )?;
    let discrete = matches!(env.action_space(), rat_envs::Space::Discrete { .. });
    let mut runner = Runner::with_share(env, a.gamma, ranks.share.clone(), ranks.total)?;
    let mut update = joint_update(config)?;
    let mut state = LoopState::new(a.lr, n);
    if let Some(tensors) = &restored {
        agent.load(tensors)?;
        update.load_state(&prefixed(tensors, "optim.joint.", device)?)?;
        rng = state.restore(tensors)?;
        resume_envs(&mut runner, tensors, opts.verbose)?;
    }
    let count: usize = agent.net.params().iter().map(|p| p.elem_count()).sum();
    let fresh = || shared_log_dir(&opts.log_root, config, seed);
    let params = count.to_string();
    let (log_dir, mut log) = open_run(
        config,
        opts,
        &ranks,
        &restored,
        Trainer::Shared,
        &params,
        fresh,
    )?;
    let mut video = VideoRecorder::new(
        &config.env_config.env_name,
        seed,
        opts.video_every,
        &log_dir,
    )?;
    let b = n / a.minibatches;
    // dist_mode exact: each rank steps on its rows of every minibatch, the rule gathers.
    let sharded = a.dist_mode == DistMode::Exact && ranks.comm.size() > 1;
    if sharded && b < 2 * ranks.comm.size() {
        return crate::error::invalid(format!(
            "dist_mode exact on {} ranks: the minibatch of {b} samples gives a rank fewer than \
             2 rows; lower minibatches or the number of ranks",
            ranks.comm.size()
        ));
    }
    let metered = sharded.then(|| Metered::new(ranks.comm.clone()));
    if let Some(m) = &metered {
        update.shard_rows(Arc::new(m.clone()))?;
    }
    let steps_per_iteration = a.epochs * n.div_ceil(b);
    let mut session_steps = 0usize;
    let kl_rule = KlAdaptiveLr::shared(a.lr).configured(a);
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

        // PopArt (the value head rescaled), then the observation normaliser.
        let stats = agent.update_popart(&est.returns)?;
        agent.pre.update_obs_norm(&rollout.obs)?;
        let data = RolloutTensors::new(
            &rollout,
            normalised(&est, stats),
            &agent.pre,
            discrete,
            device,
        )?;
        let old = agent.net.forward(&data.obs, None, None)?.policy.detach()?;

        // Joint passes: epochs x minibatches steps over all parameters, each with fresh
        // value-target noise and dropout masks.
        let t_joint = Instant::now();
        update.begin_rollout();
        let (lr_used, ent_coef) = (state.lr, ent_coef_at(a, it, total));
        let (mut step, mut loss_v) = (StepInfo::NONE, f64::NAN);
        let (mut stats, mut stop) = (StepStats::default(), false);
        for _ in 0..a.epochs {
            state.indices.shuffle(&mut rng);
            for chunk in state.indices.chunks(b) {
                // The noise and masks are drawn for the whole minibatch (one process's RNG
                // stream), then cut to this rank's rows when they are split.
                let noise = normal_noise(chunk.len(), device, &mut rng)?;
                let masks = agent.net.sample_masks(chunk.len(), device, &mut rng)?;
                let mine = ranks.row_range(chunk.len(), sharded);
                let cut = |t: &Tensor| t.narrow(0, mine.start, mine.len());
                let idx = index_tensor(&chunk[mine.clone()], device)?;
                let batch = JointBatch {
                    obs: data.obs.index_select(&idx, 0)?,
                    actions: data.actions.index_select(&idx, 0)?,
                    advantages: data.adv.index_select(&idx, 0)?,
                    returns: data.ret.index_select(&idx, 0)?,
                    old: old.select(&idx)?,
                    noise: cut(&noise)?,
                    masks: match masks {
                        Some(DropoutMasks(m)) => Some(DropoutMasks(
                            m.iter().map(cut).collect::<candle_core::Result<_>>()?,
                        )),
                        None => None,
                    },
                    ent_coef,
                };
                let info = update
                    .step(&agent.net, &batch, state.lr)
                    .map_err(|e| match e {
                        crate::Error::Core(e) => {
                            diverged("joint update", it, ("lr", state.lr), a.cg_damping)(e)
                        }
                        other => other,
                    })?;
                (step, loss_v) = (info.step, info.loss_v);
                // The joint rules' KL is to the rollout's policy after the step, not the KL
                // the step alone moved (not measured here).
                stats.push(&step, f64::NAN);
                stop = past_target(a, step.kl);
                if stop {
                    break;
                }
            }
            if stop {
                break;
            }
        }
        // The KL-adaptive learning rate on the KL after the last step (timed with the updates,
        // as the shared script times it).
        if a.use_kl_adaptive_lr && step.kl.is_finite() {
            state.lr = kl_rule.apply(state.lr, step.kl);
        }
        let joint_seconds = t_joint.elapsed().as_secs_f64();
        session_steps += stats.steps();
        state.times.push(joint_seconds);

        // Log, and checkpoint when due.
        let fps = n as f64 / t0.elapsed().as_secs_f64();
        phase_sums[0] += rollout_seconds;
        phase_sums[1] += joint_seconds;
        phase_sums[3] += gather_seconds;
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
            learning_rates: [("curr_lr", lr_used), ("lr", state.lr)],
            tb_only: [
                ("time/rollout", rollout_seconds),
                ("time/joint", joint_seconds),
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
            tensors.extend(with_prefix("optim.joint.", update.state()));
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

/// ε ~ N(0, 1) for the sampled value targets, (b) in f32.
fn normal_noise(b: usize, device: &candle_core::Device, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let eps: Vec<f32> = (0..b)
        .map(|_| {
            let x: f64 = StandardNormal.sample(rng);
            x as f32
        })
        .collect();
    Ok(Tensor::from_vec(eps, b, device)?)
}
