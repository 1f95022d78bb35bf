//! `train_shared`: one shared actor–critic network (ALGORITHMS.md 1.3), one iteration at a time:
//!
//! rollout → PopArt (normalise R and A) → observation normaliser → recompute the old policy →
//! `epochs` passes of joint updates over all parameters → KL-adaptive lr (on the KL measured
//! after the last step) → log.
//!
//! There is no critic phase: the value loss is part of every joint step. The rule is any
//! [`JointUpdate`] (`rat`, `diag`, `kfac`, `ekfac`).

use std::path::Path;
use std::time::Instant;

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::checkpoint;
use crate::config::{Algo, Config, Optimizer};
use crate::detach::{Outcome, RunOptions};
use crate::error::{Result, invalid};
use crate::iteration::{
    COMMON_TB_TAGS, LoopState, NO_STEP, Start, index_tensor, iterations, log_iteration, log_row,
    open_log, prefixed, prepare, start, train_tensors,
};
use crate::joint::{DiagJoint, JointBatch, JointParams, JointUpdate, KfacJoint, RatJoint};
use crate::logger::shared_log_dir;
use crate::optim::KlAdaptiveLr;
use crate::runner::Runner;
use crate::shared_net::SharedAgent;

/// The joint rule selected by `algo`.
pub fn joint_update(config: &Config) -> Result<Box<dyn JointUpdate>> {
    let a = &config.algo_config;
    let need = |opt: Optimizer, algo: &str| -> Result<()> {
        if a.optimizer == opt {
            Ok(())
        } else {
            invalid(format!(
                "algo {algo} in train_shared uses optimizer: {} (see configs/{algo}_mlp_shared.yaml), got {:?}",
                format!("{opt:?}").to_lowercase(),
                a.optimizer
            ))
        }
    };
    match config.algo {
        Algo::Rat => {
            need(Optimizer::Sgd, "rat")?;
            Ok(Box::new(RatJoint::new(JointParams::from_config(a))?))
        }
        Algo::Diag => {
            need(Optimizer::Sgd, "diag")?;
            Ok(Box::new(DiagJoint::new(JointParams::from_config(a))?))
        }
        Algo::Kfac => {
            need(Optimizer::Kfac, "kfac")?;
            Ok(Box::new(KfacJoint::new(a, false)?))
        }
        Algo::Ekfac => {
            need(Optimizer::Ekfac, "ekfac")?;
            Ok(Box::new(KfacJoint::new(a, true)?))
        }
        other => invalid(format!(
            "train_shared runs algo rat, diag, kfac or ekfac, not {other:?} (use train_detach)"
        )),
    }
}

fn check(config: &Config) -> Result<()> {
    let (a, e) = (&config.algo_config, &config.env_config);
    let n = e.num_envs * e.nsteps;
    if n == 0 {
        return invalid("num_envs and nsteps must be positive");
    }
    if a.minibatches == 0 || a.minibatches > n {
        return invalid(format!(
            "minibatches = {} must be in 1..={n} (the rollout size)",
            a.minibatches
        ));
    }
    if a.lr.is_nan() || a.lr <= 0.0 {
        return invalid("lr must be positive");
    }
    Ok(())
}

/// Runs `train_shared` with `config` to its budget and returns what it reached.
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
    let mut agent = SharedAgent::new(
        config,
        env.observation_space(),
        env.image_shape(),
        env.action_space(),
        device,
        &mut rng,
    )?;
    let discrete = matches!(env.action_space(), rat_envs::Space::Discrete { .. });
    let mut runner = Runner::new(env, config.algo_config.adv_type)?;
    let mut update = joint_update(config)?;
    let mut state = LoopState::new(config.algo_config.lr);
    let log_dir = match (&restored, &opts.resume) {
        (Some(tensors), Some(path)) => {
            agent.load(tensors)?;
            update.load_state(&prefixed(tensors, "optim.joint.", device)?)?;
            state.restore(tensors)?;
            rng = checkpoint::tensor_rng(crate::iteration::get(tensors, "train.rng")?)?;
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        }
        _ => shared_log_dir(&opts.log_root, config, seed),
    };
    let total = iterations(config);
    let count: usize = agent.net.params().iter().map(|p| p.elem_count()).sum();
    let mut log = open_log(
        config,
        opts,
        &log_dir,
        restored.is_some(),
        &count.to_string(),
    )?;
    let start_time = Instant::now();
    let first = state.iteration;
    let a = &config.algo_config;
    let b = n / a.minibatches;
    let steps_per_iteration = a.epochs * n.div_ceil(b);
    let kl_rule = KlAdaptiveLr::shared(a.lr);
    let mut indices: Vec<usize> = (0..n).collect();
    let mut phase_sums = [0.0f64; 3];
    for it in first..total {
        let t0 = Instant::now();
        let rollout = runner.run(&agent, t, device, &mut rng)?;
        let rollout_seconds = t0.elapsed().as_secs_f64();
        state.push_episodes(&rollout.episodes);
        let prep = prepare(
            &rollout,
            &mut agent.pre,
            agent.net.value_head(),
            discrete,
            device,
        )?;
        let old = agent.net.forward(&prep.obs, None, None)?.policy.detach()?;

        let t_joint = Instant::now();
        let lr_used = state.lr;
        let mut info = None;
        for _ in 0..a.epochs {
            indices.shuffle(&mut rng);
            for chunk in indices.chunks(b) {
                let idx = index_tensor(chunk, device)?;
                let batch = JointBatch {
                    obs: prep.obs.index_select(&idx, 0)?,
                    actions: prep.actions.index_select(&idx, 0)?,
                    advantages: prep.adv.index_select(&idx, 0)?,
                    returns: prep.ret.index_select(&idx, 0)?,
                    old: old.select(&idx)?,
                    noise: normal_noise(chunk.len(), device, &mut rng)?,
                    masks: agent.net.sample_masks(chunk.len(), device, &mut rng)?,
                };
                info = Some(update.step(&agent.net, &batch, state.lr)?);
            }
        }
        let (step, loss_v) = info.map_or((NO_STEP, f64::NAN), |i| (i.step, i.loss_v));
        // The shared script times the KL rule with the updates.
        if a.use_kl_adaptive_lr && step.kl.is_finite() {
            state.lr = kl_rule.apply(state.lr, step.kl);
        }
        let joint_seconds = t_joint.elapsed().as_secs_f64();
        state.times.push(joint_seconds);
        let fps = n as f64 / t0.elapsed().as_secs_f64();
        phase_sums[0] += rollout_seconds;
        phase_sums[1] += joint_seconds;
        state.iteration = it + 1;
        state.elapsed += t0.elapsed().as_secs_f64();

        let row = log_row(
            &state,
            &rollout.actions,
            &prep,
            &step,
            loss_v,
            &[("curr_lr", lr_used), ("lr", state.lr)],
            fps,
            it,
            n,
        );
        let mut tags = COMMON_TB_TAGS.to_vec();
        tags.extend([("curr_lr", "train/curr_lr"), ("lr", "train/lr")]);
        let phases = [
            ("time/rollout", rollout_seconds),
            ("time/joint", joint_seconds),
        ];
        if log_iteration(&mut log, &row, &tags, &phases, it, config, opts, fps)? {
            let mut tensors = agent.tensors()?;
            tensors.extend(
                update
                    .state()
                    .into_iter()
                    .map(|(k, v)| (format!("optim.joint.{k}"), v)),
            );
            tensors.extend(train_tensors(config, seed, &state, &rng)?);
            checkpoint::save(&log_dir.join("model.safetensors"), tensors)?;
            log.write_times(&state.times, steps_per_iteration)?;
        }
    }
    log.finish();
    Ok(state.outcome(
        log_dir,
        n,
        steps_per_iteration,
        first,
        start_time,
        phase_sums,
    ))
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
