//! The shared actor–critic's joint updates against explicit computations on small f64 networks:
//! the factored joint kernel vs per-sample backward passes (with and without dropout), the
//! two-column [ψ, φ] solve with the Kaczmarz correction vs an explicit LU solve, the exact joint
//! variant vs a P x P solve, and the diagonal rule vs the materialised diagonal.

mod common;

use candle_core::{DType, Tensor};
use common::{entropy_advantages_by_hand, grid};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rat_core::jacobian::ScoreJacobian;
use rat_core::linalg;
use rat_envs::Space;
use rat_train::config::{AlgoConfig, EntMode, JointMode, NormObj};
use rat_train::nets::Policy;
use rat_train::nets::encoders::Encoder;
use rat_train::nets::shared::{DropoutMasks, SharedActorCritic, TrunkSpec};
use rat_train::rules::joint::{JointBatch, JointParams, JointPass, JointUpdate, RatJoint};

const B: usize = 6;

fn net(space: &Space, dropout: f64, seed: u64) -> anyhow::Result<SharedActorCritic> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Ok(SharedActorCritic::new(
        Encoder::identity(3),
        space,
        TrunkSpec {
            width: 5,
            layers: 2,
            dropout,
            popart: true,
        },
        DType::F64,
        &rat_train::cli::test_device()?,
        &mut rng,
    )?)
}

/// A batch whose old policy comes from another network, so the ratios differ from 1.
fn batch(
    net: &SharedActorCritic,
    other: &SharedActorCritic,
    seed: f64,
) -> anyhow::Result<JointBatch> {
    let dev = rat_train::cli::test_device()?;
    let obs = grid(B * 3, 0.77, seed)?.reshape((B, 3))?;
    let old = other.forward(&obs, None, None)?.policy.detach()?;
    let actions = match &old {
        Policy::Gaussian(_) => grid(B * 2, 1.31, seed)?.reshape((B, 2))?,
        Policy::Categorical(_) => Tensor::new(&[0u32, 2, 1, 3, 3, 0], &dev)?,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed as u64 + 11);
    let masks = net.sample_masks(B, &dev, &mut rng)?;
    Ok(JointBatch {
        obs,
        actions,
        advantages: grid(B, 2.03, seed)?.affine(3.0, 1.0)?,
        returns: grid(B, 0.61, seed)?.affine(2.0, -0.5)?,
        old,
        noise: grid(B, 1.7, seed)?.affine(1.2, 0.0)?,
        masks,
        ent_coef: 0.0,
    })
}

/// ∇Θ Σ `t` as one flat row over `params` (zeros where `t` does not depend on a parameter).
fn gradient_row(params: &[candle_core::Var], t: &Tensor) -> anyhow::Result<Tensor> {
    let g = t.sum_all()?.backward()?;
    let flat: Vec<Tensor> = params
        .iter()
        .map(|p| {
            g.get(p.as_tensor())
                .cloned()
                .map_or_else(|| p.as_tensor().zeros_like(), Ok)
        })
        .map(|t| t.and_then(|t| t.flatten_all()))
        .collect::<candle_core::Result<_>>()?;
    Ok(Tensor::cat(&flat, 0)?)
}

/// H (b x P) row by row: ∇Θ [log π_i + 2ε_i v_i] from single-sample backward passes.
fn materialised_rows(net: &SharedActorCritic, batch: &JointBatch) -> anyhow::Result<Tensor> {
    let params = net.params();
    let mut rows = Vec::new();
    for i in 0..B {
        let masks = batch
            .masks
            .as_ref()
            .map(|m| -> candle_core::Result<DropoutMasks> {
                Ok(DropoutMasks(
                    m.0.iter()
                        .map(|t| t.narrow(0, i, 1))
                        .collect::<candle_core::Result<_>>()?,
                ))
            })
            .transpose()?;
        let out = net.forward(&batch.obs.narrow(0, i, 1)?, None, masks.as_ref())?;
        let a = batch.actions.narrow(0, i, 1)?;
        let eps = batch.noise.narrow(0, i, 1)?;
        let ell = out
            .policy
            .log_prob(&a)?
            .add(&out.value.mul(&eps.affine(2.0, 0.0)?)?)?;
        rows.push(gradient_row(&params, &ell)?);
    }
    Ok(Tensor::stack(&rows, 0)?)
}

fn max_abs(a: &Tensor, b: &Tensor) -> anyhow::Result<f64> {
    Ok(a.sub(b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?)
}

fn flat(ts: &[Tensor]) -> anyhow::Result<Tensor> {
    let v: Vec<Tensor> = ts
        .iter()
        .map(|t| t.flatten_all())
        .collect::<candle_core::Result<_>>()?;
    Ok(Tensor::cat(&v, 0)?)
}

fn spaces() -> [Space; 2] {
    [Space::uniform_box(2, -1.0, 1.0), Space::Discrete { n: 4 }]
}

#[test]
fn joint_kernel_and_jacobian_equal_per_sample_backward_passes() -> anyhow::Result<()> {
    for space in spaces() {
        for dropout in [0.0, 0.3] {
            let (n, other) = (net(&space, dropout, 1)?, net(&space, dropout, 2)?);
            let batch = batch(&n, &other, 0.3)?;
            assert_eq!(batch.masks.is_some(), dropout > 0.0);
            let pass = JointPass::new(&n, &batch, Some((0.1, 10.0)))?;
            let h = materialised_rows(&n, &batch)?;
            let k = h.matmul(&h.t()?)?;
            let e = max_abs(&pass.jac.kernel()?, &k)?;
            assert!(e < 1e-10, "{space:?} dropout {dropout}: kernel error {e:e}");
            let w = grid(B, 0.9, 0.1)?;
            let e = max_abs(
                &flat(&pass.jac.vjp(&w)?)?,
                &h.t()?.matmul(&w.unsqueeze(1)?)?.squeeze(1)?,
            )?;
            assert!(e < 1e-10, "{space:?} dropout {dropout}: vjp error {e:e}");
        }
    }
    Ok(())
}

fn params(mode: JointMode) -> JointParams {
    JointParams {
        mode,
        ..JointParams::from_config(&AlgoConfig::default())
    }
}

#[test]
fn value_weights_equal_the_explicit_two_column_solve_with_the_kaczmarz_correction()
-> anyhow::Result<()> {
    for space in spaces() {
        let (n, other) = (net(&space, 0.0, 3)?, net(&space, 0.0, 4)?);
        let mut rule = RatJoint::new(params(JointMode::Reference))?;
        // A first step creates the momentum buffer (the Kaczmarz vector g).
        rule.step(&n, &batch(&n, &other, 0.5)?, 0.05)?;
        let g = rule
            .momentum_buffer()
            .expect("a buffer after one step")
            .to_vec();
        let batch = batch(&n, &other, 0.9)?;
        let pass = JointPass::new(&n, &batch, Some((0.1, 10.0)))?;
        let r = pass.ratio_value();
        let a = rat_train::rules::normalise_advantages(&batch.advantages, &r, NormObj::Adv)?;
        let (psi, phi) = rule.transformed_weights(&pass.jac, &r, &a)?;

        let h = materialised_rows(&n, &batch)?;
        let c = h.matmul(&flat(&g)?.unsqueeze(1)?)?.squeeze(1)?;
        let m = h
            .matmul(&h.t()?)?
            .broadcast_mul(&r.unsqueeze(0)?)?
            .affine(1.0 / B as f64, 0.0)?
            .add(&Tensor::eye(B, DType::F64, &rat_train::cli::test_device()?)?.affine(0.1, 0.0)?)?;
        let psi_hand = linalg::lu_solve(&m, &a.sub(&c)?)?;
        let phi_hand = linalg::lu_solve(&m, &c.ones_like()?.sub(&c)?)?;
        assert!(max_abs(&psi, &psi_hand)? < 1e-9, "{space:?}: ψ");
        assert!(max_abs(&phi, &phi_hand)? < 1e-9, "{space:?}: φ");
        assert!(
            max_abs(&c, &c.zeros_like()?)? > 1e-6,
            "the correction must be exercised"
        );
    }
    Ok(())
}

#[test]
fn exact_joint_direction_equals_the_explicit_regularised_natural_gradient() -> anyhow::Result<()> {
    for space in spaces() {
        let (n, other) = (net(&space, 0.0, 5)?, net(&space, 0.0, 6)?);
        let batch = batch(&n, &other, 1.3)?;
        let pass = JointPass::new(&n, &batch, Some((0.1, 10.0)))?;
        let r = pass.ratio_value();
        let g: Vec<Tensor> = n
            .params()
            .iter()
            .enumerate()
            .map(|(k, p)| Ok(grid(p.elem_count(), 0.37, k as f64)?.reshape(p.shape())?))
            .collect::<anyhow::Result<_>>()?;
        let x = RatJoint::regularised_natural_gradient(&pass.jac, &r, &g, 0.1)?;
        let h = materialised_rows(&n, &batch)?;
        let p = h.dims()[1];
        let f = h
            .t()?
            .broadcast_mul(&r.unsqueeze(0)?)?
            .matmul(&h)?
            .affine(1.0 / B as f64, 0.0)?
            .add(&Tensor::eye(p, DType::F64, &rat_train::cli::test_device()?)?.affine(0.1, 0.0)?)?;
        let x_hand = linalg::lu_solve(&f, &flat(&g)?)?;
        let e = max_abs(&flat(&x)?, &x_hand)?;
        assert!(e < 1e-8, "{space:?}: (F_R + λI)⁻¹g error {e:e} (P = {p})");
    }
    Ok(())
}

#[test]
fn diagonal_of_the_joint_fisher_equals_the_materialised_one() -> anyhow::Result<()> {
    let space = Space::uniform_box(2, -1.0, 1.0);
    let (n, other) = (net(&space, 0.3, 7)?, net(&space, 0.3, 8)?);
    let batch = batch(&n, &other, 2.1)?;
    let pass = JointPass::new(&n, &batch, None)?;
    let h = materialised_rows(&n, &batch)?;
    let e = max_abs(&flat(&pass.jac.sq_col_sums()?)?, &h.sqr()?.sum(0)?)?;
    assert!(e < 1e-10, "diag(HᵀH) error {e:e}");
    Ok(())
}

/// Per-sample rows of ∇Θ log π_i and of ∇Θ v_i, from single-sample backward passes.
fn score_and_value_rows(
    net: &SharedActorCritic,
    batch: &JointBatch,
) -> anyhow::Result<(Tensor, Tensor)> {
    let params = net.params();
    let row = |t: &Tensor| gradient_row(&params, t);
    let (mut hp, mut hv) = (Vec::new(), Vec::new());
    for i in 0..B {
        let out = net.forward(&batch.obs.narrow(0, i, 1)?, None, None)?;
        hp.push(row(&out
            .policy
            .log_prob(&batch.actions.narrow(0, i, 1)?)?)?);
        hv.push(row(&out.value)?);
    }
    Ok((Tensor::stack(&hp, 0)?, Tensor::stack(&hv, 0)?))
}

#[test]
fn reference_joint_steps_equal_a_hand_computation() -> anyhow::Result<()> {
    const LR: f64 = 0.05;
    // Without a bonus, and with ent_mode normalised_advantage: â = Â − c·(log π + ℋ), the bonus
    // added to the advantages once they are normalised.
    for (space, (ent_mode, ent_coef)) in spaces().into_iter().flat_map(|s| {
        [
            (EntMode::Gradient, 0.0),
            (EntMode::NormalisedAdvantage, 0.3),
        ]
        .map(|e| (s.clone(), e))
    }) {
        let (n, other) = (net(&space, 0.0, 9)?, net(&space, 0.0, 10)?);
        let mut rule = RatJoint::new(JointParams {
            ent_mode,
            ..params(JointMode::Reference)
        })?;
        let mut buf: Option<Tensor> = None;
        for step in 0..2 {
            let batch = JointBatch {
                ent_coef,
                ..batch(&n, &other, 0.4 + step as f64)?
            };
            let theta = flat(
                &n.params()
                    .iter()
                    .map(|p| p.as_tensor().clone())
                    .collect::<Vec<_>>(),
            )?;
            // By hand: ratio, clamp mask, scaled advantages, [ψ, φ] with c = H g, the gradient.
            let out = n.forward(&batch.obs, None, None)?;
            let rho = out
                .policy
                .log_prob(&batch.actions)?
                .sub(&batch.old.log_prob(&batch.actions)?)?
                .exp()?;
            let r = rho.clamp(0.1, 10.0)?;
            let inside = rho.ge(0.1)?.mul(&rho.le(10.0)?)?.to_dtype(DType::F64)?;
            let a = rat_train::rules::normalise_advantages(&batch.advantages, &r, NormObj::Adv)?;
            let a = entropy_advantages_by_hand(&out.policy, &batch.actions, &a, ent_coef)?;
            let h = materialised_rows(&n, &batch)?;
            let c = match &buf {
                Some(g) => h.matmul(&g.unsqueeze(1)?)?.squeeze(1)?,
                None => a.zeros_like()?,
            };
            let m = h
                .matmul(&h.t()?)?
                .broadcast_mul(&r.unsqueeze(0)?)?
                .affine(1.0 / B as f64, 0.0)?
                .add(
                    &Tensor::eye(B, DType::F64, &rat_train::cli::test_device()?)?
                        .affine(0.1, 0.0)?,
                )?;
            let psi = linalg::lu_solve(&m, &a.sub(&c)?)?;
            let phi = linalg::lu_solve(&m, &c.ones_like()?.sub(&c)?)?;
            let (hp, hv) = score_and_value_rows(&n, &batch)?;
            let wp = r.mul(&psi)?.mul(&inside)?.affine(-1.0 / B as f64, 0.0)?;
            let wv = phi
                .mul(&out.value.sub(&batch.returns)?)?
                .affine(2.0 / B as f64, 0.0)?;
            let grad = hp
                .t()?
                .matmul(&wp.unsqueeze(1)?)?
                .add(&hv.t()?.matmul(&wv.unsqueeze(1)?)?)?
                .squeeze(1)?;
            let norm = grad.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?;
            let clipped = grad.affine((0.5 / (norm + 1e-6)).min(1.0), 0.0)?;
            // SGD with momentum 1e-6: θ ← θ − lr·buf, buf ← 1e-6·buf + ĝ after the first step.
            let next_buf = match &buf {
                Some(b) => b.affine(1e-6, 0.0)?.add(&clipped)?,
                None => clipped.clone(),
            };
            let expected = theta.sub(&next_buf.affine(LR, 0.0)?)?;

            let info = rule.step(&n, &batch, LR)?;
            let got = flat(
                &n.params()
                    .iter()
                    .map(|p| p.as_tensor().clone())
                    .collect::<Vec<_>>(),
            )?;
            let e = max_abs(&got, &expected)?;
            assert!(
                e < 1e-9,
                "{space:?} {ent_mode:?} step {step}: θ error {e:e}"
            );
            assert!((info.step.grad_norm - norm).abs() < 1e-9 * norm.max(1.0));
            // The KL is measured after the step.
            let new = n.forward(&batch.obs, None, None)?.policy;
            let kl = batch.old.kl(&new)?.mean_all()?.to_scalar::<f64>()?;
            assert!((info.step.kl - kl).abs() < 1e-12, "{space:?}: post-step KL");
            buf = Some(next_buf);
        }
    }
    Ok(())
}

#[test]
fn ent_mode_advantage_transforms_the_bonus_with_the_advantages() -> anyhow::Result<()> {
    const LR: f64 = 0.05;
    let c = 0.3;
    for space in spaces() {
        for mode in [JointMode::Reference, JointMode::Exact] {
            let other = net(&space, 0.0, 12)?;
            let [in_advantage, by_hand, in_gradient] = [0; 3].map(|_| net(&space, 0.0, 11));
            let (in_advantage, by_hand, in_gradient) = (in_advantage?, by_hand?, in_gradient?);
            let mut bt = batch(&in_advantage, &other, 0.7)?;
            bt.ent_coef = c;
            // The same step with ent_coef 0 on â = A − c·(log π + ℋ), computed by hand.
            let policy = by_hand.forward(&bt.obs, None, None)?.policy;
            let manual = JointBatch {
                advantages: entropy_advantages_by_hand(&policy, &bt.actions, &bt.advantages, c)?,
                ent_coef: 0.0,
                ..bt.clone()
            };
            let theta = |n: &SharedActorCritic| {
                flat(
                    &n.params()
                        .iter()
                        .map(|p| p.as_tensor().clone())
                        .collect::<Vec<_>>(),
                )
            };
            let start = theta(&by_hand)?;
            let advantage_mode = JointParams {
                ent_mode: EntMode::Advantage,
                ..params(mode)
            };
            RatJoint::new(advantage_mode)?.step(&in_advantage, &bt, LR)?;
            RatJoint::new(params(mode))?.step(&by_hand, &manual, LR)?;
            RatJoint::new(params(mode))?.step(&in_gradient, &bt, LR)?;
            let size = max_abs(&theta(&by_hand)?, &start)?;
            let err = max_abs(&theta(&in_advantage)?, &theta(&by_hand)?)?;
            assert!(
                err < 1e-10 * size,
                "{space:?} {mode:?}: off the hand-built advantages by {err:e}"
            );
            // The default mode puts c·ℋ in the loss instead: another step.
            let apart = max_abs(&theta(&in_advantage)?, &theta(&in_gradient)?)?;
            assert!(
                apart > 1e-6 * size,
                "{space:?} {mode:?}: the two modes agree"
            );
        }
    }
    Ok(())
}
