//! Small f64 actors and a minibatch whose old policy is shifted from the current one.

use candle_core::{DType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rat_core::distributions::{Categorical, DiagGaussian};
use rat_train::config::SigmaType;
use rat_train::nets::{Actor, CategoricalActor, GaussianActor, Policy};
use rat_train::rules::ActorBatch;

use super::grid;

/// A Gaussian actor: 3 inputs, one hidden layer of 6, 2 actions, state-independent σ.
pub fn gaussian() -> anyhow::Result<GaussianActor> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    Ok(GaussianActor::new(
        3,
        2,
        &[6],
        SigmaType::Vector,
        DType::F64,
        &rat_train::cli::test_device()?,
        &mut rng,
    )?)
}

/// A categorical actor: 3 inputs, one hidden layer of 6, 4 actions.
pub fn categorical() -> anyhow::Result<CategoricalActor> {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    Ok(CategoricalActor::new(
        3,
        4,
        &[6],
        DType::F64,
        &rat_train::cli::test_device()?,
        &mut rng,
    )?)
}

/// A batch whose old policy is shifted from the current one, so the ratios differ from 1 and some
/// clamp.
pub fn batch(seed: f64, b: usize, actor: &dyn Actor) -> anyhow::Result<ActorBatch> {
    let obs = grid(b * 3, 0.77, seed)?.reshape((b, 3))?;
    let advantages = grid(b, 2.03, seed)?.affine(3.0, 1.0)?;
    let (actions, old) = match actor.policy(&obs, None)? {
        Policy::Gaussian(d) => {
            let actions = grid(b * 2, 1.31, seed)?.reshape((b, 2))?.affine(1.5, 0.0)?;
            let shift = grid(b * 2, 0.4, seed)?.reshape((b, 2))?.affine(0.9, 0.0)?;
            let mean = d.mean().add(&shift)?.detach();
            let log_std = d.log_std().affine(1.0, -0.2)?.detach();
            (actions, Policy::Gaussian(DiagGaussian::new(mean, log_std)?))
        }
        Policy::Categorical(d) => {
            let idx: Vec<u32> = (0..b as u32)
                .map(|i| (i * 7 + (seed * 10.0) as u32) % 4)
                .collect();
            let actions = Tensor::new(idx.as_slice(), &rat_train::cli::test_device()?)?;
            let shift = grid(b * 4, 0.9, seed)?.reshape((b, 4))?.affine(1.5, 0.0)?;
            let logits = d.log_probs().add(&shift)?.detach();
            (actions, Policy::Categorical(Categorical::new(&logits)?))
        }
    };
    Ok(ActorBatch {
        obs,
        actions,
        advantages,
        old,
        block: (0..b).collect(),
        ent_coef: 0.0,
    })
}
