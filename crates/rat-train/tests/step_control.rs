//! Issue 16's step control against explicit computations on small f64 actors: the quadratic KL
//! against the exact Fisher built from per-output backward passes, `max_kl`'s scaled step,
//! `damping_mode: relative` against the absolute λ·tr(K)/b, `clipfrac` against a count, and
//! `target_kl` / `step_diagnostics` / the new keys through a real `train_detach` run.

mod common;

use std::path::PathBuf;

use candle_core::{Shape, Tensor};
use common::actors::{batch, categorical, gaussian};
use common::{entropy_advantages_by_hand, grid};
use rat_core::jacobian::MaterialisedJacobian;
use rat_core::params;
use rat_train::config::{AlgoConfig, Config, DampingMode, EntMode, Trainer};
use rat_train::loops::control::ent_coef_at;
use rat_train::loops::detach;
use rat_train::nets::{Actor, Policy};
use rat_train::rules::rat::{ActorUpdate, RatActor, RatParams};
use rat_train::rules::{ActorBatch, ScorePass, quadratic_kl};

/// The exact Fisher (P x P) of `actor`'s policy at `obs`, averaged over the samples, built from
/// one backward pass per output: Gaussian Σ_k ∇μ_k∇μ_kᵀ/σ_k² + 2 ∇log σ_k ∇log σ_kᵀ; categorical
/// Σ_a p_a ∇log p_a ∇log p_aᵀ (the expectation over actions, not the empirical Fisher).
fn explicit_fisher(actor: &dyn Actor, obs: &Tensor) -> anyhow::Result<Tensor> {
    let b = obs.dims()[0];
    let ps = actor.params();
    let row = |i: usize| obs.narrow(0, i, 1);
    let outer = |j: &Tensor, w: &[f64]| -> anyhow::Result<Tensor> {
        let w = Tensor::new(w, j.device())?.unsqueeze(1)?;
        Ok(j.t()?.matmul(&j.broadcast_mul(&w)?)?)
    };
    let f = match actor.policy(obs, None)? {
        Policy::Gaussian(d) => {
            let k = d.mean().dims()[1];
            let output = |r: usize, log_std: bool| -> rat_core::Result<Tensor> {
                let Policy::Gaussian(d) = actor.policy(&row(r / k)?, None)? else {
                    unreachable!()
                };
                let x = if log_std {
                    d.log_std().broadcast_as(d.mean().shape())?
                } else {
                    d.mean().clone()
                };
                Ok(x.narrow(1, r % k, 1)?.sum_all()?)
            };
            let jm =
                MaterialisedJacobian::from_per_sample_backward(&ps, b * k, |r| output(r, false))?;
            let js =
                MaterialisedJacobian::from_per_sample_backward(&ps, b * k, |r| output(r, true))?;
            let var: Vec<f64> = d
                .log_std()
                .broadcast_as(d.mean().shape())?
                .flatten_all()?
                .to_vec1::<f64>()?
                .iter()
                .map(|s| (2.0 * s).exp())
                .collect();
            let inv: Vec<f64> = var.iter().map(|v| 1.0 / v).collect();
            outer(jm.matrix(), &inv)?.add(&outer(js.matrix(), &vec![2.0; b * k])?)?
        }
        Policy::Categorical(d) => {
            let n = d.log_probs().dims()[1];
            let jl = MaterialisedJacobian::from_per_sample_backward(&ps, b * n, |r| {
                let action = Tensor::new(&[(r % n) as u32], obs.device())?;
                Ok(actor
                    .policy(&row(r / n)?, None)?
                    .log_prob(&action)?
                    .sum_all()?)
            })?;
            let p = d.probs()?.flatten_all()?.to_vec1::<f64>()?;
            outer(jl.matrix(), &p)?
        }
    };
    Ok(f.affine(1.0 / b as f64, 0.0)?)
}

fn shapes(actor: &dyn Actor) -> Vec<Shape> {
    actor.params().iter().map(|p| p.shape().clone()).collect()
}

fn flat_params(actor: &dyn Actor) -> anyhow::Result<Tensor> {
    let ts: Vec<Tensor> = actor
        .params()
        .iter()
        .map(|p| p.as_tensor().clone())
        .collect();
    Ok(params::flatten(&ts)?)
}

/// ½ vᵀ F v with F built explicitly.
fn explicit_quadratic(f: &Tensor, v: &Tensor) -> anyhow::Result<f64> {
    let fv = f.matmul(&v.unsqueeze(1)?)?.squeeze(1)?;
    Ok(0.5 * v.mul(&fv)?.sum_all()?.to_scalar::<f64>()?)
}

#[test]
fn quadratic_kl_equals_the_exact_fisher_from_per_output_backward_passes() -> anyhow::Result<()> {
    let actors: [Box<dyn Actor>; 2] = [Box::new(gaussian()?), Box::new(categorical()?)];
    for actor in &actors {
        let bt = batch(0.4, 7, actor.as_ref())?;
        let f = explicit_fisher(actor.as_ref(), &bt.obs)?;
        let p = f.dims()[0];
        let v = grid(p, 0.37, 0.2)?;
        let expected = explicit_quadratic(&f, &v)?;
        let policy = actor.policy(&bt.obs, None)?.detach()?;
        let vs = params::unflatten(&v, &shapes(actor.as_ref()))?;
        let got = quadratic_kl(actor.as_ref(), &policy, &bt.obs, &vs)?;
        assert!(
            (got - expected).abs() <= 1e-10 * expected.abs().max(1.0),
            "quadratic KL {got} vs explicit ½vᵀFv {expected}"
        );
        // And the real KL of a small move along v is the quadratic one to second order.
        let eps = 1e-4;
        let theta = flat_params(actor.as_ref())?;
        for (param, x) in actor.params().iter().zip(params::unflatten(
            &theta.add(&v.affine(eps, 0.0)?)?,
            &shapes(actor.as_ref()),
        )?) {
            param.set(&x)?;
        }
        let moved = actor.policy(&bt.obs, None)?;
        let kl = policy.kl(&moved)?.mean_all()?.to_scalar::<f64>()? / (eps * eps);
        assert!(
            (kl - expected).abs() < 1e-3 * expected,
            "KL/ε² {kl} vs ½vᵀFv {expected}"
        );
    }
    Ok(())
}

fn rat(mode: DampingMode, damping: f64, max_kl: Option<f64>) -> anyhow::Result<RatActor> {
    let c = AlgoConfig {
        cg_damping: damping,
        damping_mode: mode,
        max_kl,
        is_karzmarz: false,
        ..AlgoConfig::default()
    };
    Ok(RatActor::new(RatParams::from_config(&c))?)
}

/// Δθ of one step of `rule` on `bt` (the actor is moved).
fn step_of(
    rule: &mut RatActor,
    actor: &dyn Actor,
    bt: &ActorBatch,
    lr: f64,
) -> anyhow::Result<(Tensor, f64)> {
    let before = flat_params(actor)?;
    let info = rule.step(actor, bt, lr)?;
    Ok((flat_params(actor)?.sub(&before)?, info.kl_pred))
}

#[test]
fn max_kl_scales_the_step_to_the_bound_under_the_exact_fisher() -> anyhow::Result<()> {
    let pairs: [(Box<dyn Actor>, Box<dyn Actor>); 2] = [
        (Box::new(gaussian()?), Box::new(gaussian()?)),
        (Box::new(categorical()?), Box::new(categorical()?)),
    ];
    let (bound, lr) = (1e-4, 1.0);
    for (free, bounded) in &pairs {
        let bt = batch(0.8, 12, free.as_ref())?;
        let f = explicit_fisher(free.as_ref(), &bt.obs)?;
        let (d_free, _) = step_of(
            &mut rat(DampingMode::Absolute, 0.1, None)?,
            free.as_ref(),
            &bt,
            lr,
        )?;
        let kappa = explicit_quadratic(&f, &d_free)?;
        assert!(
            kappa > 10.0 * bound,
            "the test needs a step past the bound, κ = {kappa}"
        );
        let old = bounded.policy(&bt.obs, None)?.detach()?;
        let mut rule = rat(DampingMode::Absolute, 0.1, Some(bound))?;
        let (d, kl_pred) = step_of(&mut rule, bounded.as_ref(), &bt, lr)?;
        assert_eq!(kl_pred, bound);
        let expected = d_free.affine((bound / kappa).sqrt(), 0.0)?;
        let err = d.sub(&expected)?.abs()?.max(0)?.to_scalar::<f64>()?;
        let size = expected.abs()?.max(0)?.to_scalar::<f64>()?;
        assert!(
            err < 1e-8 * size,
            "bounded step off the scaled free step by {err}"
        );
        assert!((explicit_quadratic(&f, &d)? - bound).abs() < 1e-8 * bound);
        // The KL actually moved is the bound to second order.
        let moved = bounded.policy(&bt.obs, None)?;
        let kl = old.kl(&moved)?.mean_all()?.to_scalar::<f64>()?;
        assert!(
            (kl - bound).abs() < 0.1 * bound,
            "moved KL {kl} vs bound {bound}"
        );
    }
    Ok(())
}

#[test]
fn relative_damping_is_absolute_damping_times_the_kernel_scale() -> anyhow::Result<()> {
    let (a, b) = (gaussian()?, gaussian()?);
    let bt = batch(0.3, 10, &a)?;
    let j = MaterialisedJacobian::from_per_sample_backward(&a.params(), 10, |i| {
        Ok(a.policy(&bt.obs.narrow(0, i, 1)?, None)?
            .log_prob(&bt.actions.narrow(0, i, 1)?)?
            .sum_all()?)
    })?;
    let scale = j.matrix().sqr()?.sum_all()?.to_scalar::<f64>()? / 10.0;
    let lambda = 0.3;
    let (d_rel, _) = step_of(
        &mut rat(DampingMode::Relative, lambda, None)?,
        &a,
        &bt,
        0.05,
    )?;
    let (d_abs, _) = step_of(
        &mut rat(DampingMode::Absolute, lambda * scale, None)?,
        &b,
        &bt,
        0.05,
    )?;
    let err = d_rel.sub(&d_abs)?.abs()?.max(0)?.to_scalar::<f64>()?;
    assert!(
        err < 1e-10,
        "relative vs absolute λ·tr(K)/b steps differ by {err}"
    );
    // The kernel scale is what the step reports.
    let measured = AlgoConfig {
        step_diagnostics: true,
        ..AlgoConfig::default()
    };
    let info = RatActor::new(RatParams::from_config(&measured))?.step(&gaussian()?, &bt, 0.05)?;
    assert!((info.kernel_scale - scale).abs() < 1e-10 * scale);
    Ok(())
}

/// π/π_old per sample, by hand.
fn ratios(actor: &dyn Actor, bt: &ActorBatch) -> anyhow::Result<Vec<f64>> {
    Ok(actor
        .policy(&bt.obs, None)?
        .log_prob(&bt.actions)?
        .sub(&bt.old.log_prob(&bt.actions)?)?
        .exp()?
        .to_vec1::<f64>()?)
}

#[test]
fn clipfrac_counts_the_ratios_on_or_outside_the_clamp() -> anyhow::Result<()> {
    let actor = categorical()?;
    let bt = batch(1.3, 16, &actor)?;
    let (lo, hi) = (0.5, 2.0);
    let pass = ScorePass::new(&actor, &bt, Some((lo, hi)))?;
    let rho = ratios(&actor, &bt)?;
    let outside = rho.iter().filter(|&&r| r <= lo || r >= hi).count();
    assert!(
        outside > 0 && outside < rho.len(),
        "the test needs both kinds: {rho:?}"
    );
    assert!((pass.clipfrac - outside as f64 / rho.len() as f64).abs() < 1e-12);
    Ok(())
}

#[test]
fn ppo_clipfrac_counts_the_ratios_more_than_clip_coef_from_one() -> anyhow::Result<()> {
    let actor = categorical()?;
    let bt = batch(1.3, 16, &actor)?;
    let rho = ratios(&actor, &bt)?;
    let outside = rho.iter().filter(|&&r| (r - 1.0).abs() > 0.5).count();
    assert!(outside > 0 && outside < rho.len());
    let c = AlgoConfig {
        clip_coef: 0.5,
        ..AlgoConfig::default()
    };
    let info = rat_train::rules::ppo::PpoActor::new(&c)?.step(&actor, &bt, 1e-3)?;
    assert!((info.clipfrac - outside as f64 / rho.len() as f64).abs() < 1e-12);
    Ok(())
}

#[test]
fn the_old_policy_does_not_follow_in_place_parameter_updates() -> anyhow::Result<()> {
    // A vector log σ is a broadcast view of its parameter; the optimisers update in place.
    let actor = gaussian()?;
    let obs = grid(6, 0.3, 0.1)?.reshape((2, 3))?;
    let Policy::Gaussian(old) = actor.policy(&obs, None)?.detach()? else {
        unreachable!()
    };
    let before = old.log_std().flatten_all()?.to_vec1::<f64>()?;
    for p in actor.params() {
        p.set(&p.as_tensor().affine(1.0, 0.5)?)?;
    }
    assert_eq!(old.log_std().flatten_all()?.to_vec1::<f64>()?, before);
    Ok(())
}

#[test]
fn the_entropy_schedule_is_linear_from_ent_coef_to_ent_coef_final() {
    let mut a = AlgoConfig {
        ent_coef: 0.01,
        ..AlgoConfig::default()
    };
    assert_eq!(ent_coef_at(&a, 7, 11), 0.01);
    a.ent_coef_final = Some(0.0);
    assert_eq!(ent_coef_at(&a, 0, 11), 0.01);
    assert!((ent_coef_at(&a, 5, 11) - 0.005).abs() < 1e-15);
    assert_eq!(ent_coef_at(&a, 10, 11), 0.0);
}

#[test]
fn the_new_keys_are_validated_by_name() -> anyhow::Result<()> {
    let cases: [(&str, &str, &str, &str); 7] = [
        ("rat_mlp.yaml", "gamma", "1.5", "gamma"),
        (
            "ppo_mlp.yaml",
            "ent_mode",
            "normalised_advantage",
            "normalised_advantage",
        ),
        ("rat_mlp.yaml", "gae_lambda", "-0.1", "gae_lambda"),
        ("rat_mlp.yaml", "kl_low", "0.03", "kl_low"),
        ("rat_mlp.yaml", "target_kl", "0", "target_kl"),
        ("ppo_mlp.yaml", "max_kl", "0.01", "max_kl"),
        ("ppo_mlp.yaml", "ent_mode", "advantage", "ent_mode"),
    ];
    for (file, key, value, named) in cases {
        let mut c = Config::load(file)?;
        c.set(key, value)?;
        let err = c
            .validate(Trainer::Detach)
            .expect_err(&format!("{key} = {value} accepted"));
        assert!(err.to_string().contains(named), "{key}: {err}");
    }
    let mut c = Config::load("rat_mlp_shared.yaml")?;
    c.set("max_kl", "0.01")?;
    let err = c
        .validate(Trainer::Shared)
        .expect_err("max_kl accepted by train_shared");
    assert!(err.to_string().contains("max_kl"), "{err}");
    let mut c = Config::load("rat_mlp_shared.yaml")?;
    c.set("ent_mode", "normalised_advantage")?;
    c.validate(Trainer::Shared)?;
    c.set("joint_mode", "exact")?;
    let err = c
        .validate(Trainer::Shared)
        .expect_err("ent_mode normalised_advantage accepted with joint_mode exact");
    assert!(err.to_string().contains("ent_mode"), "{err}");
    assert!(err.to_string().contains("joint_mode exact"), "{err}");
    c.set("ent_mode", "advantage")?;
    c.validate(Trainer::Shared)?;
    let mut c = Config::load("rat_cnn.yaml")?;
    c.set("ent_mode", "normalised_advantage")?;
    c.validate(Trainer::Detach)?;
    // RAT may step with Adam, but max_kl's bound is that of an SGD step.
    let mut c = Config::load("rat_mlp.yaml")?;
    c.set("optimizer", "adam")?;
    c.validate(Trainer::Detach)?;
    c.set("max_kl", "0.01")?;
    let err = c
        .validate(Trainer::Detach)
        .expect_err("max_kl accepted with optimizer adam");
    assert!(err.to_string().contains("optimizer adam"), "{err}");
    // Nor with dist_mode block, whose ranks average parameters and SGD buffers, not Adam's moments.
    c.set("max_kl", "null")?;
    c.set("dist_mode", "block")?;
    let err = c
        .validate(Trainer::Detach)
        .expect_err("optimizer adam accepted with dist_mode block");
    assert!(err.to_string().contains("optimizer"), "{err}");
    assert!(err.to_string().contains("dist_mode block"), "{err}");
    // A relative λ where no reference solve would apply it.
    type Case = (&'static str, Option<(&'static str, &'static str)>, Trainer);
    let relative: [Case; 4] = [
        ("ppo_mlp.yaml", None, Trainer::Detach),
        ("fvp_mlp.yaml", None, Trainer::Detach),
        (
            "rat_mlp.yaml",
            Some(("kaczmarz_mode", "exact")),
            Trainer::Detach,
        ),
        (
            "rat_mlp_shared.yaml",
            Some(("joint_mode", "exact")),
            Trainer::Shared,
        ),
    ];
    for (file, extra, trainer) in relative {
        let mut c = Config::load(file)?;
        c.set("damping_mode", "relative")?;
        if let Some((key, value)) = extra {
            c.set(key, value)?;
        }
        let err = c
            .validate(trainer)
            .expect_err(&format!("{file} {extra:?}: relative damping accepted"));
        assert!(err.to_string().contains("damping_mode"), "{file}: {err}");
    }
    for (file, trainer) in [
        ("rat_mlp.yaml", Trainer::Detach),
        ("rat_mlp_shared.yaml", Trainer::Shared),
    ] {
        let mut c = Config::load(file)?;
        c.set("damping_mode", "relative")?;
        c.validate(trainer)?;
    }
    Ok(())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rat-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The last `progress.csv` row of a run, by column.
fn last_row(dir: &std::path::Path) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("progress.csv"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let last: Vec<&str> = lines.last().unwrap_or_default().split(',').collect();
    Ok(header
        .iter()
        .map(|h| h.to_string())
        .zip(last.iter().map(|v| v.to_string()))
        .collect())
}

#[test]
fn target_kl_stops_the_passes_and_step_diagnostics_fill_their_columns() -> anyhow::Result<()> {
    let root = temp_dir("step-control");
    let run =
        |settings: &[(&str, &str)]| -> anyhow::Result<std::collections::HashMap<String, String>> {
            let mut c = Config::load("rat_mlp.yaml")?;
            for (k, v) in [
                ("env_name", "CartPole-v1"),
                ("num_envs", "2"),
                ("nsteps", "64"),
                ("a_hidden_size", "16"),
                ("c_hidden_size", "16"),
                ("log_interval", "1"),
                ("timesteps_per_proc", "128"),
            ]
            .iter()
            .chain(settings)
            {
                c.set(k, v)?;
            }
            let opts = common::quiet_run(&root, 2)?;
            let outcome = detach::run(&c, &opts)?;
            last_row(&outcome.log_dir)
        };
    let full = run(&[("step_diagnostics", "True")])?;
    // 4 epochs x 8 minibatches, every one measured.
    assert_eq!(full["actor_steps"], "32");
    for col in [
        "kl_step_mean",
        "kl_step_max",
        "kl_pred_mean",
        "kernel_scale",
        "damping_ratio",
    ] {
        let v: f64 = full[col].parse()?;
        assert!(v.is_finite() && v > 0.0, "{col} = {v}");
    }
    let mean: f64 = full["kl_step_mean"].parse()?;
    let max: f64 = full["kl_step_max"].parse()?;
    assert!(mean <= max);
    // A tiny target: the first step (KL 0 to the rollout's policy) always runs, then it stops.
    let stopped = run(&[("target_kl", "1e-9")])?;
    let steps: usize = stopped["actor_steps"].parse()?;
    assert!((1..32).contains(&steps), "actor_steps = {steps}");
    // The header keeps the reference's columns first.
    let header = std::fs::read_to_string(
        std::fs::read_dir(&root)?
            .flatten()
            .flat_map(|g| std::fs::read_dir(g.path()).into_iter().flatten().flatten())
            .map(|r| r.path().join("progress.csv"))
            .next()
            .unwrap_or_default(),
    )?;
    let cols: Vec<&str> = header
        .lines()
        .next()
        .unwrap_or_default()
        .split(',')
        .collect();
    assert_eq!(cols[cols.len() - 8], "actor_steps");
    assert_eq!(cols[cols.len() - 9], "ret_var");
    Ok(())
}

#[test]
fn target_kl_stops_the_shared_loop_once_a_step_passes_it() -> anyhow::Result<()> {
    let root = temp_dir("step-control-shared");
    let mut c = Config::load("rat_mlp_shared.yaml")?;
    for (k, v) in [
        ("env_name", "CartPole-v1"),
        ("num_envs", "2"),
        ("nsteps", "64"),
        ("hidden_size", "16"),
        ("log_interval", "1"),
        ("timesteps_per_proc", "0"),
        ("target_kl", "1e-9"),
    ] {
        c.set(k, v)?;
    }
    let opts = common::quiet_run(&root, 2)?;
    let outcome = rat_train::loops::shared::run(&c, &opts)?;
    let row = last_row(&outcome.log_dir)?;
    // 4 epochs x 8 minibatches without the target; the KL after a step passes 1e-9 early.
    let steps: usize = row["actor_steps"].parse()?;
    assert!((1..32).contains(&steps), "actor_steps = {steps}");
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[test]
fn ent_mode_advantage_transforms_the_bonus_with_the_advantages() -> anyhow::Result<()> {
    let c = 0.3;
    let config = |ent_mode: EntMode| AlgoConfig {
        ent_mode,
        is_karzmarz: false,
        ..AlgoConfig::default()
    };
    type Three = (Box<dyn Actor>, Box<dyn Actor>, Box<dyn Actor>);
    let pairs: [Three; 2] = [
        (
            Box::new(gaussian()?),
            Box::new(gaussian()?),
            Box::new(gaussian()?),
        ),
        (
            Box::new(categorical()?),
            Box::new(categorical()?),
            Box::new(categorical()?),
        ),
    ];
    for (in_advantage, by_hand, in_gradient) in &pairs {
        let mut bt = batch(0.6, 10, in_advantage.as_ref())?;
        bt.ent_coef = c;
        // The same step with ent_coef 0 on â = A − c·(log π + ℋ), computed by hand.
        let policy = by_hand.policy(&bt.obs, None)?;
        let manual = ActorBatch {
            advantages: entropy_advantages_by_hand(&policy, &bt.actions, &bt.advantages, c)?,
            ent_coef: 0.0,
            ..bt.clone()
        };
        let mut rule = RatActor::new(RatParams::from_config(&config(EntMode::Advantage)))?;
        let (d, _) = step_of(&mut rule, in_advantage.as_ref(), &bt, 0.5)?;
        let mut plain = RatActor::new(RatParams::from_config(&config(EntMode::Gradient)))?;
        let (d_hand, _) = step_of(&mut plain, by_hand.as_ref(), &manual, 0.5)?;
        let size = d_hand.abs()?.max(0)?.to_scalar::<f64>()?;
        let err = d.sub(&d_hand)?.abs()?.max(0)?.to_scalar::<f64>()?;
        assert!(err < 1e-10 * size, "off the hand-built advantages by {err}");
        // The default mode adds c·∇ℋ after the solve instead: another step.
        let mut gradient = RatActor::new(RatParams::from_config(&config(EntMode::Gradient)))?;
        let (d_grad, _) = step_of(&mut gradient, in_gradient.as_ref(), &bt, 0.5)?;
        let apart = d.sub(&d_grad)?.abs()?.max(0)?.to_scalar::<f64>()?;
        assert!(apart > 1e-6 * size, "the two modes took the same step");
    }
    Ok(())
}
