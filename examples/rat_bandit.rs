//! RAT from `rat-core` alone, on a built-in continuous contextual bandit.
//!
//! Context s ~ N(0, I₄); the best action is a*(s) = tanh(W* s) ∈ (−1, 1)²; the reward is
//! −‖a − a*(s)‖². A Gaussian policy (MLP mean, state-independent log-σ) is trained with the
//! reference's RAT step: centred, RMS-normalised advantages; ψ = (K R / b + λI)⁻¹ (a − J g);
//! step Jᵀ(r ⊙ ψ)/b; L2 clip 0.5; SGD whose momentum buffer g is the Kaczmarz vector. The same
//! loop with `--algo pg` takes the plain policy gradient instead, for comparison.
//!
//! ```text
//! cargo run --release --example rat_bandit -- [--algo rat|pg] [--iters 100] [--lr 0.05] [--seed 0]
//! ```

use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rat_core::distributions::DiagGaussian;
use rat_core::jacobian::FactoredJacobian;
use rat_core::kaczmarz::ReferenceKaczmarz;
use rat_core::layers::{Broadcast, Dense, Layer, Recorder, Sequential};
use rat_core::{clip, params};

const OBS: usize = 4;
const ACT: usize = 2;
const BATCH: usize = 1024;

fn normal(rng: &mut ChaCha8Rng, shape: (usize, usize)) -> anyhow::Result<Tensor> {
    let v: Vec<f32> = (0..shape.0 * shape.1)
        .map(|_| StandardNormal.sample(rng))
        .collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let algo = flag("--algo", "rat");
    let iters: usize = flag("--iters", "100").parse()?;
    let seed: u64 = flag("--seed", "0").parse()?;
    anyhow::ensure!(
        algo == "rat" || algo == "pg",
        "--algo must be rat or pg, got {algo}"
    );

    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w_star = normal(&mut rng, (ACT, OBS))?;
    let mean = Sequential::new(vec![
        Layer::Dense(Dense::pytorch_init(OBS, 64, DType::F32, &dev, &mut rng)?),
        Layer::Relu,
        Layer::Dense(Dense::pytorch_init(64, 64, DType::F32, &dev, &mut rng)?),
        Layer::Relu,
        Layer::Dense(Dense::pytorch_init(64, ACT, DType::F32, &dev, &mut rng)?),
    ]);
    let log_std = Broadcast::new(Var::zeros(ACT, DType::F32, &dev)?)?;
    // RAT's default is the reference's lr_pi; the plain gradient needs a larger step to move.
    let lr: f64 = flag("--lr", if algo == "rat" { "0.05" } else { "0.5" }).parse()?;
    let (damping, max_norm) = (0.1, 0.5);
    let mut kaczmarz = ReferenceKaczmarz::new(damping)?;
    println!("algo {algo}, batch {BATCH}, lr {lr}; reward is −‖a − a*(s)‖² (0 is perfect)");

    for it in 0..iters {
        // Collect a batch with the current policy.
        let s = normal(&mut rng, (BATCH, OBS))?;
        let mu = mean.forward(&s, None)?.detach();
        let sigma = log_std.param().as_tensor().exp()?.unsqueeze(0)?;
        let a = mu.add(&normal(&mut rng, (BATCH, ACT))?.broadcast_mul(&sigma)?)?;
        let best = s.matmul(&w_star.t()?)?.tanh()?;
        let reward = a.sub(&best)?.sqr()?.sum(1)?.neg()?;
        let greedy = mu
            .sub(&best)?
            .sqr()?
            .sum(1)?
            .neg()?
            .mean_all()?
            .to_scalar::<f32>()?;

        // Advantage: centred, RMS-normalised (the reference's norm_obj = adv).
        let centred = reward.broadcast_sub(&reward.mean_all()?)?;
        let adv = centred.broadcast_div(&centred.sqr()?.mean_all()?.sqrt()?.affine(1.0, 1e-8)?)?;

        // One forward with a recorder and one backward of Σ log π give everything.
        let mut rec = Recorder::new();
        let ls = log_std.forward(BATCH, Some(&mut rec))?;
        let logp = DiagGaussian::new(mean.forward(&s, Some(&mut rec))?, ls)?.log_prob(&a)?;
        let jac = FactoredJacobian::from_objective(&rec, &logp)?;
        let ratio = Tensor::ones(BATCH, DType::F32, &dev)?; // on-policy: r = 1
        let ascent = if algo == "rat" {
            kaczmarz.block_step(&jac, &ratio, &adv)?.direction
        } else {
            rat_core::woodbury::natural_gradient(&jac, &ratio, &adv)? // Jᵀ a / b: the plain gradient
        };
        let (clipped, grad_norm) = clip::clip_grad_norm(&params::scale(&ascent, -1.0)?, max_norm)?;
        let step = if algo == "rat" {
            kaczmarz.momentum_step(&clipped)?.to_vec()
        } else {
            clipped
        };
        for (p, d) in jac.params().iter().zip(&step) {
            p.set(&p.as_tensor().sub(&d.affine(lr, 0.0)?)?)?;
        }
        if it % 5 == 0 || it + 1 == iters {
            println!(
                "iter {it:>3}  mean reward {:>8.4}  greedy reward {greedy:>8.4}  grad norm {grad_norm:>7.3}  σ {:.3}",
                reward.mean_all()?.to_scalar::<f32>()?,
                sigma.mean_all()?.to_scalar::<f32>()?
            );
        }
    }
    Ok(())
}
