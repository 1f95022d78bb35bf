//! The RAT actor step against an explicit parameter-space computation: two consecutive steps
//! with ratio clamping, advantage normalisation, the Kaczmarz correction, L2 clipping and SGD with
//! momentum 1e-6 (or Adam, `optimizer: adam`), on small f64 Gaussian and categorical actors.

mod common;

use candle_core::{DType, Shape, Tensor};
use common::actors::{batch, categorical, gaussian};
use common::grid;
use rat_core::jacobian::MaterialisedJacobian;
use rat_core::{clip, linalg, params};
use rat_train::config::{DampingMode, EntMode, KaczmarzKind, NormObj};
use rat_train::nets::{Actor, Policy};
use rat_train::rules::StepControl;
use rat_train::rules::rat::{ActorBatch, ActorUpdate, RatActor, RatParams, SolveOptions};

const LAMBDA: f64 = 0.1;
const LR: f64 = 0.05;
const MAX_NORM: f64 = 0.5;

/// By hand from single-sample backward passes: the explicit J (b x P), the clamped ratio r and
/// the centred, RMS-normalised advantage a.
fn explicit_parts(actor: &dyn Actor, bt: &ActorBatch) -> anyhow::Result<(Tensor, Tensor, Tensor)> {
    let b = bt.obs.dims()[0];
    let jac = MaterialisedJacobian::from_per_sample_backward(&actor.params(), b, |i| {
        actor
            .policy(&bt.obs.narrow(0, i, 1)?, None)?
            .log_prob(&bt.actions.narrow(0, i, 1)?)
    })?;
    let logp = actor.policy(&bt.obs, None)?.log_prob(&bt.actions)?;
    let r = logp
        .sub(&bt.old.log_prob(&bt.actions)?)?
        .exp()?
        .clamp(0.1, 10.0)?;
    let av = bt.advantages.to_vec1::<f64>()?;
    let mean = av.iter().sum::<f64>() / b as f64;
    let rms = (av.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / b as f64).sqrt();
    let a: Vec<f64> = av.iter().map(|x| (x - mean) / (rms + 1e-8)).collect();
    Ok((
        jac.matrix().clone(),
        r,
        Tensor::new(a.as_slice(), &rat_train::cli::test_device()?)?,
    ))
}

/// x* = (Jᵀ R J / b + λI)⁻¹ Jᵀ R a / b for the normalised, corrected advantage a − J g.
fn explicit_step(actor: &dyn Actor, bt: &ActorBatch, g: Option<&Tensor>) -> anyhow::Result<Tensor> {
    explicit_step_with_bonus(actor, bt, g, None)
}

/// [`explicit_step`] with `bonus` added to the normalised advantage before the correction.
fn explicit_step_with_bonus(
    actor: &dyn Actor,
    bt: &ActorBatch,
    g: Option<&Tensor>,
    bonus: Option<&Tensor>,
) -> anyhow::Result<Tensor> {
    let b = bt.obs.dims()[0];
    let (j, r, mut a) = explicit_parts(actor, bt)?;
    if let Some(bonus) = bonus {
        a = a.add(bonus)?;
    }
    let rv = r.to_vec1::<f64>()?;
    assert!(
        rv.iter().any(|&x| (x - 1.0).abs() > 0.05),
        "ratios should differ from 1"
    );
    if let Some(g) = g {
        a = a.sub(&j.matmul(&g.unsqueeze(1)?)?.squeeze(1)?)?;
    }
    let p = j.dims()[1];
    let jr = j.broadcast_mul(&r.unsqueeze(1)?)?;
    let eye = Tensor::eye(p, DType::F64, &rat_train::cli::test_device()?)?.affine(LAMBDA, 0.0)?;
    let f = j.t()?.matmul(&jr)?.affine(1.0 / b as f64, 0.0)?.add(&eye)?;
    let rhs = jr
        .t()?
        .matmul(&a.unsqueeze(1)?)?
        .squeeze(1)?
        .affine(1.0 / b as f64, 0.0)?;
    Ok(linalg::lu_solve(&f, &rhs)?)
}

fn apply(actor: &dyn Actor, step: &Tensor) -> anyhow::Result<()> {
    let ps = actor.params();
    let shapes: Vec<Shape> = ps.iter().map(|p| p.shape().clone()).collect();
    for (p, s) in ps.iter().zip(params::unflatten(step, &shapes)?) {
        p.set(&p.as_tensor().sub(&s.affine(LR, 0.0)?)?)?;
    }
    Ok(())
}

fn clipped_loss_grad(x: &Tensor) -> anyhow::Result<Tensor> {
    Ok(clip::clip_grad_norm(&[x.neg()?], MAX_NORM)?.0.remove(0))
}

fn max_diff(a: &dyn Actor, b: &dyn Actor) -> anyhow::Result<f64> {
    let flat = |x: &dyn Actor| {
        params::flatten(
            &x.params()
                .iter()
                .map(|p| p.as_tensor().clone())
                .collect::<Vec<_>>(),
        )
    };
    Ok(flat(a)?
        .sub(&flat(b)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f64>()?)
}

/// Adam by hand on flat vectors (β = (0.9, 0.999), ε = 1e-5, PyTorch's bias correction): the
/// move lr·m̂/(√v̂ + ε) after the gradients `grads`, in order.
fn adam_moves(grads: &[&Tensor]) -> anyhow::Result<Vec<Tensor>> {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-5);
    let mut m = grads[0].zeros_like()?;
    let mut v = grads[0].zeros_like()?;
    let mut moves = Vec::new();
    for (t, g) in grads.iter().enumerate() {
        m = m.affine(b1, 0.0)?.add(&g.affine(1.0 - b1, 0.0)?)?;
        v = v.affine(b2, 0.0)?.add(&g.sqr()?.affine(1.0 - b2, 0.0)?)?;
        let k = (t + 1) as i32;
        let m_hat = m.affine(1.0 / (1.0 - b1.powi(k)), 0.0)?;
        let v_hat = v.affine(1.0 / (1.0 - b2.powi(k)), 0.0)?;
        moves.push(m_hat.div(&v_hat.sqrt()?.affine(1.0, eps)?)?);
    }
    Ok(moves)
}

/// The step's parameters with λ = [`LAMBDA`], ratios clamped to [0.1, 10], the Kaczmarz
/// correction on, SGD.
fn params(mode: KaczmarzKind, ent_mode: EntMode, max_grad_norm: f64) -> RatParams {
    RatParams {
        damping: LAMBDA,
        norm_obj: NormObj::Adv,
        clamp: Some((0.1, 10.0)),
        damping_mode: DampingMode::Absolute,
        control: StepControl::default(),
        max_grad_norm,
        kaczmarz: true,
        mode,
        solve: SolveOptions::default(),
        ent_mode,
        adam: false,
    }
}

/// Two steps of `stepped` against the explicit computation on `by_hand`: SGD moves θ by lr·buf
/// (buf = 1e-6·buf + ĝ), Adam (`adam`) by its own move along ĝ; either way the second step's
/// Kaczmarz correction reads the first clipped step ĝ₁.
fn two_steps(stepped: &dyn Actor, by_hand: &dyn Actor, adam: bool) -> anyhow::Result<()> {
    let params = RatParams {
        adam,
        ..params(KaczmarzKind::Reference, EntMode::Gradient, MAX_NORM)
    };
    let mut rat = RatActor::new(params)?;
    let b1 = batch(0.3, 12, by_hand)?;
    let info = rat.step(stepped, &b1, LR)?;
    assert!(info.kl > 0.0 && info.grad_norm > 0.0 && info.ratio_min <= info.ratio_max);
    let g1 = clipped_loss_grad(&explicit_step(by_hand, &b1, None)?)?;
    apply(
        by_hand,
        &if adam {
            adam_moves(&[&g1])?.remove(0)
        } else {
            g1.clone()
        },
    )?;
    let e = max_diff(stepped, by_hand)?;
    assert!(e < 1e-10, "after step 1: max |Δθ| = {e:e}");

    let b2 = batch(1.1, 12, by_hand)?;
    rat.step(stepped, &b2, LR)?;
    let g2 = clipped_loss_grad(&explicit_step(by_hand, &b2, Some(&g1))?)?;
    let second = match adam {
        true => adam_moves(&[&g1, &g2])?.remove(1),
        false => g1.affine(1e-6, 0.0)?.add(&g2)?,
    };
    apply(by_hand, &second)?;
    let e = max_diff(stepped, by_hand)?;
    assert!(e < 1e-10, "after step 2: max |Δθ| = {e:e}");
    Ok(())
}

#[test]
fn two_rat_steps_of_a_gaussian_actor_equal_the_explicit_computation() -> anyhow::Result<()> {
    two_steps(&gaussian()?, &gaussian()?, false)
}

#[test]
fn two_rat_steps_of_a_categorical_actor_equal_the_explicit_computation() -> anyhow::Result<()> {
    two_steps(&categorical()?, &categorical()?, false)
}

#[test]
fn two_rat_steps_with_adam_equal_adam_on_the_explicit_steps() -> anyhow::Result<()> {
    two_steps(&gaussian()?, &gaussian()?, true)?;
    two_steps(&categorical()?, &categorical()?, true)
}

/// `ent_mode: normalised_advantage` adds −c·(log π + ℋ) to the advantages after they are
/// normalised: per minibatch in the reference mode, over the rollout in the exact mode (here a
/// one-block rollout, whose first Kaczmarz step is the explicit solve). Both against the
/// explicit step on Â − c·(log π + ℋ) by hand; `ent_mode: advantage` normalises the bonus with
/// the advantages and so takes another step.
#[test]
fn ent_mode_normalised_advantage_adds_the_bonus_to_the_normalised_advantages() -> anyhow::Result<()>
{
    let c = 0.3;
    for (mode, ent_mode, same) in [
        (KaczmarzKind::Reference, EntMode::NormalisedAdvantage, true),
        (KaczmarzKind::Exact, EntMode::NormalisedAdvantage, true),
        (KaczmarzKind::Reference, EntMode::Advantage, false),
    ] {
        for (stepped, by_hand) in [
            (
                Box::new(gaussian()?) as Box<dyn Actor>,
                Box::new(gaussian()?) as Box<dyn Actor>,
            ),
            (Box::new(categorical()?), Box::new(categorical()?)),
        ] {
            let params = params(mode, ent_mode, 1e9);
            let mut rat = RatActor::new(params)?;
            let bt = ActorBatch {
                ent_coef: c,
                ..batch(0.3, 12, by_hand.as_ref())?
            };
            rat.begin_rollout(12, &bt.advantages)?;
            rat.step(stepped.as_ref(), &bt, LR)?;
            let policy = by_hand.policy(&bt.obs, None)?;
            let bonus: Vec<f64> = common::explicit_logp_entropy(&policy, &bt.actions)?
                .iter()
                .map(|&(lp, h)| -c * (lp + h))
                .collect();
            let bonus = Tensor::new(bonus, &rat_train::cli::test_device()?)?;
            let x = explicit_step_with_bonus(by_hand.as_ref(), &bt, None, Some(&bonus))?;
            apply(by_hand.as_ref(), &x.neg()?)?;
            let e = max_diff(stepped.as_ref(), by_hand.as_ref())?;
            let size = x.abs()?.max(0)?.to_scalar::<f64>()? * LR;
            match same {
                true => assert!(e < 1e-10 * size.max(1.0), "{mode:?}: max |Δθ| = {e:e}"),
                false => assert!(e > 1e-4 * size, "{ent_mode:?} took the same step"),
            }
        }
    }
    Ok(())
}

/// The diag step by hand: G = −Jᵀ(r ⊙ a)/b, d = G / (diag(JᵀJ)/b + λ), L2 clip, SGD.
fn explicit_diag_step(actor: &dyn Actor, bt: &ActorBatch) -> anyhow::Result<Tensor> {
    let b = bt.obs.dims()[0];
    let (j, r, a) = explicit_parts(actor, bt)?;
    let w = r.mul(&a)?;
    let g = j
        .t()?
        .matmul(&w.unsqueeze(1)?)?
        .squeeze(1)?
        .affine(-1.0 / b as f64, 0.0)?;
    let diag = j.sqr()?.sum(0)?.affine(1.0 / b as f64, LAMBDA)?;
    Ok(clip::clip_grad_norm(&[g.div(&diag)?], MAX_NORM)?
        .0
        .remove(0))
}

#[test]
fn two_diag_steps_equal_the_explicit_computation() -> anyhow::Result<()> {
    for (stepped, by_hand) in actor_pairs()? {
        let config = rat_train::config::AlgoConfig {
            cg_damping: LAMBDA,
            max_grad_norm: MAX_NORM,
            ..Default::default()
        };
        let mut diag = rat_train::rules::diag::DiagActor::new(&config)?;
        let b1 = batch(0.3, 12, by_hand.as_ref())?;
        diag.step(stepped.as_ref(), &b1, LR)?;
        let d1 = explicit_diag_step(by_hand.as_ref(), &b1)?;
        apply(by_hand.as_ref(), &d1)?;
        let e = max_diff(stepped.as_ref(), by_hand.as_ref())?;
        assert!(e < 1e-10, "diag step 1: max |Δθ| = {e:e}");
        let b2 = batch(1.1, 12, by_hand.as_ref())?;
        diag.step(stepped.as_ref(), &b2, LR)?;
        let d2 = explicit_diag_step(by_hand.as_ref(), &b2)?;
        apply(by_hand.as_ref(), &d1.affine(1e-6, 0.0)?.add(&d2)?)?;
        let e = max_diff(stepped.as_ref(), by_hand.as_ref())?;
        assert!(e < 1e-10, "diag step 2: max |Δθ| = {e:e}");
    }
    Ok(())
}

/// The exact Fisher F = Σ_i J_iᵀ M_i J_i / b from single-output backward passes: J_i the
/// Jacobian of sample i's raw outputs (Gaussian: μ and log σ with M = diag(1/σ², 2);
/// categorical: logits with M = diag(p) − p pᵀ).
fn explicit_fisher(actor: &dyn Actor, obs: &Tensor) -> anyhow::Result<Tensor> {
    let b = obs.dims()[0];
    let ps = actor.params();
    let raw = |i: usize| -> anyhow::Result<Tensor> {
        let x = obs.narrow(0, i, 1)?;
        Ok(match actor.policy(&x, None)? {
            Policy::Gaussian(d) => {
                let ls = d.log_std().broadcast_as(d.mean().shape())?;
                Tensor::cat(&[d.mean(), &ls], 1)?.squeeze(0)?
            }
            // log p = l − lse(l): use the logits, recovered up to a constant as log p.
            Policy::Categorical(d) => d.log_probs().squeeze(0)?,
        })
    };
    let k = raw(0)?.dims()[0];
    let jac = MaterialisedJacobian::from_per_sample_backward(&ps, b * k, |r| {
        Ok(raw(r / k)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?
            .narrow(0, r % k, 1)?)
    })?;
    let j = jac.matrix().clone(); // (b·k, P)
    let p = j.dims()[1];
    let mut f = Tensor::zeros((p, p), DType::F64, &rat_train::cli::test_device()?)?;
    for i in 0..b {
        let ji = j.narrow(0, i * k, k)?;
        let m = match actor.policy(&obs.narrow(0, i, 1)?, None)? {
            Policy::Gaussian(d) => {
                let s2 = d
                    .log_std()
                    .affine(2.0, 0.0)?
                    .exp()?
                    .broadcast_as(d.mean().shape())?;
                let diag: Vec<f64> = s2
                    .flatten_all()?
                    .to_vec1::<f64>()?
                    .iter()
                    .map(|v| 1.0 / v)
                    .chain(std::iter::repeat_n(2.0, k / 2))
                    .collect();
                diag_matrix(&Tensor::new(
                    diag.as_slice(),
                    &rat_train::cli::test_device()?,
                )?)?
            }
            Policy::Categorical(d) => {
                // In log-probability coordinates the metric diag(p) gives the same Fisher.
                diag_matrix(&d.probs()?.squeeze(0)?)?
            }
        };
        f = f.add(&ji.t()?.matmul(&m.matmul(&ji)?)?)?;
    }
    Ok(f.affine(1.0 / b as f64, 0.0)?)
}

#[test]
fn the_fisher_vector_product_equals_the_explicit_fisher() -> anyhow::Result<()> {
    for actor in [
        Box::new(gaussian()?) as Box<dyn Actor>,
        Box::new(categorical()?),
    ] {
        let bt = batch(0.7, 9, actor.as_ref())?;
        let f = explicit_fisher(actor.as_ref(), &bt.obs)?;
        let ps = actor.params();
        let shapes: Vec<Shape> = ps.iter().map(|p| p.shape().clone()).collect();
        let p = f.dims()[0];
        let v = grid(p, 0.37, 0.2)?;
        let policy = actor.policy(&bt.obs, None)?;
        let got = rat_train::rules::fvp::fisher_vector_product(
            actor.as_ref(),
            &policy,
            &bt.obs,
            &params::unflatten(&v, &shapes)?,
            LAMBDA,
        )?;
        let want = f
            .matmul(&v.unsqueeze(1)?)?
            .squeeze(1)?
            .add(&v.affine(LAMBDA, 0.0)?)?;
        let e = params::flatten(&got)?
            .sub(&want)?
            .abs()?
            .max_all()?
            .to_scalar::<f64>()?;
        assert!(e < 1e-10, "max |F v − explicit| = {e:e}");
    }
    Ok(())
}

#[test]
fn an_fvp_step_equals_the_explicit_natural_gradient_step() -> anyhow::Result<()> {
    for (stepped, by_hand) in actor_pairs()? {
        let config = rat_train::config::AlgoConfig {
            cg_damping: LAMBDA,
            max_grad_norm: MAX_NORM,
            cg_steps: 500,
            ..Default::default()
        };
        let mut fvp = rat_train::rules::fvp::FvpActor::new(&config)?;
        let bt = batch(0.3, 12, by_hand.as_ref())?;
        let info = fvp.step(stepped.as_ref(), &bt, LR)?;
        // By hand: g = −Jᵀ(r ⊙ a ⊙ 1[0.1 < r < 10])/b, d = (F + λI)⁻¹ g, q = dᵀ(F + λI)d,
        // d ← d·min(0.5/q, 1).
        let b = bt.obs.dims()[0];
        let (j, r, a) = explicit_parts(by_hand.as_ref(), &bt)?;
        let free = r.gt(0.1)?.mul(&r.lt(10.0)?)?.to_dtype(DType::F64)?;
        let w = r.mul(&a)?.mul(&free)?;
        let g = j
            .t()?
            .matmul(&w.unsqueeze(1)?)?
            .squeeze(1)?
            .affine(-1.0 / b as f64, 0.0)?;
        let p = j.dims()[1];
        let f = explicit_fisher(by_hand.as_ref(), &bt.obs)?.add(
            &Tensor::eye(p, DType::F64, &rat_train::cli::test_device()?)?.affine(LAMBDA, 0.0)?,
        )?;
        let d = linalg::lu_solve(&f, &g)?;
        let q = d
            .mul(&f.matmul(&d.unsqueeze(1)?)?.squeeze(1)?)?
            .sum_all()?
            .to_scalar::<f64>()?;
        assert!(
            (info.grad_norm - q).abs() < 1e-6 * q.max(1.0),
            "q {} vs {q}",
            info.grad_norm
        );
        apply(by_hand.as_ref(), &d.affine((MAX_NORM / q).min(1.0), 0.0)?)?;
        let e = max_diff(stepped.as_ref(), by_hand.as_ref())?;
        // CG stops once r·r < 1e-10, so agreement is to ~1e-6, not to rounding.
        assert!(e < 1e-6, "fvp step: max |Δθ| = {e:e}");
    }
    Ok(())
}

/// diag(v) as a dense matrix.
fn diag_matrix(v: &Tensor) -> anyhow::Result<Tensor> {
    let n = v.dims()[0];
    Ok(Tensor::eye(n, DType::F64, &rat_train::cli::test_device()?)?
        .broadcast_mul(&v.unsqueeze(0)?)?)
}

#[test]
fn a_ppo_step_equals_the_hand_computed_clipped_surrogate_gradient() -> anyhow::Result<()> {
    for (stepped, by_hand) in actor_pairs()? {
        let config = rat_train::config::AlgoConfig {
            clip_coef: 0.2,
            max_grad_norm: MAX_NORM,
            ..Default::default()
        };
        let mut ppo = rat_train::rules::ppo::PpoActor::new(&config)?;
        let bt = batch(0.3, 12, by_hand.as_ref())?;
        ppo.step(stepped.as_ref(), &bt, LR)?;

        let b = bt.obs.dims()[0];
        let (j, _, _) = explicit_parts(by_hand.as_ref(), &bt)?;
        let logp = by_hand.policy(&bt.obs, None)?.log_prob(&bt.actions)?;
        let r = logp
            .sub(&bt.old.log_prob(&bt.actions)?)?
            .exp()?
            .to_vec1::<f64>()?;
        let av = bt.advantages.to_vec1::<f64>()?;
        let mean = av.iter().sum::<f64>() / b as f64;
        let std = (av.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (b - 1) as f64).sqrt();
        let mut masked = 0;
        let w: Vec<f64> = (0..b)
            .map(|i| {
                let a = (av[i] - mean) / (std + 1e-8);
                // d/dθ min(r a, clip(r) a): zero where the clipped branch is the (constant) minimum.
                let unclipped = r[i] * a;
                let clipped = r[i].clamp(0.8, 1.2) * a;
                if clipped < unclipped {
                    masked += 1;
                    0.0
                } else {
                    -unclipped / b as f64
                }
            })
            .collect();
        assert!(
            masked > 0 && masked < b,
            "the batch should clip some samples ({masked})"
        );
        let g = j
            .t()?
            .matmul(&Tensor::new(w.as_slice(), &rat_train::cli::test_device()?)?.unsqueeze(1)?)?
            .squeeze(1)?;
        let g = clip::clip_grad_norm(&[g], MAX_NORM)?.0.remove(0);
        // Adam's first step: m̂ = g, v̂ = g², Δθ = −lr·g / (|g| + 1e-5).
        let step = g.div(&g.abs()?.affine(1.0, 1e-5)?)?;
        apply(by_hand.as_ref(), &step)?;
        let e = max_diff(stepped.as_ref(), by_hand.as_ref())?;
        assert!(e < 1e-10, "ppo step: max |Δθ| = {e:e}");
    }
    Ok(())
}

#[test]
fn a_pg_step_is_the_clipped_surrogate_gradient() -> anyhow::Result<()> {
    let (stepped, by_hand) = (gaussian()?, gaussian()?);
    let config = rat_train::config::AlgoConfig {
        max_grad_norm: MAX_NORM,
        ..Default::default()
    };
    let mut pg = rat_train::rules::pg::PgActor::new(&config)?;
    let bt = batch(0.5, 12, &by_hand)?;
    pg.step(&stepped, &bt, LR)?;
    let b = bt.obs.dims()[0];
    let (j, r, a) = explicit_parts(&by_hand, &bt)?;
    let g = j
        .t()?
        .matmul(&r.mul(&a)?.unsqueeze(1)?)?
        .squeeze(1)?
        .affine(-1.0 / b as f64, 0.0)?;
    apply(&by_hand, &clip::clip_grad_norm(&[g], MAX_NORM)?.0.remove(0))?;
    let e = max_diff(&stepped, &by_hand)?;
    assert!(e < 1e-10, "pg step: max |Δθ| = {e:e}");
    Ok(())
}

/// An actor to step and an identical one to update by hand.
type ActorPair = (Box<dyn Actor>, Box<dyn Actor>);

/// Two identical Gaussian actors and two identical categorical ones: one to step, one by hand.
fn actor_pairs() -> anyhow::Result<Vec<ActorPair>> {
    Ok(vec![
        (Box::new(gaussian()?), Box::new(gaussian()?)),
        (Box::new(categorical()?), Box::new(categorical()?)),
    ])
}
