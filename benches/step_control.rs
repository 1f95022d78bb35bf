//! What issue 16's step control costs per actor step: one RAT step on MinAtar's CNN (10 x 10 x 4
//! Breakout grids, 3 actions, b = 1024, f32) and on the Hopper-sized MLP (b = 1024), plain; with
//! `step_diagnostics` (the predicted KL by one forward tangent pass, the kernel scale, and the
//! loop's two forward passes, before and after, for the KL the step moved); with `max_kl` (the forward tangent pass); and
//! the forward pass `target_kl` adds before a step.
//!
//! `cargo bench --bench step_control` prints one table (median of `RAT_BENCH_RUNS` = 15 steps).

use std::hint::black_box;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rat_train::config::{AlgoConfig, SigmaType};
use rat_train::loops::control::kl_to;
use rat_train::nets::encoders::{Encoder, NetType};
use rat_train::nets::{Actor, CategoricalActor, GaussianActor};
use rat_train::rules::rat::{RatActor, RatParams};
use rat_train::rules::{ActorBatch, ActorUpdate};

const B: usize = 1024;
/// Small enough that the policy barely moves over a benchmark.
const LR: f64 = 1e-7;

fn median_ms(mut f: impl FnMut() -> anyhow::Result<()>, runs: usize) -> anyhow::Result<f64> {
    let mut t = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t0 = Instant::now();
        f()?;
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    Ok(t[t.len() / 2])
}

fn batch(
    actor: &dyn Actor,
    obs: Tensor,
    actions: Tensor,
    dev: &Device,
) -> anyhow::Result<ActorBatch> {
    Ok(ActorBatch {
        old: actor.policy(&obs, None)?.detach()?,
        obs,
        actions,
        advantages: Tensor::randn(0f32, 1.0, B, dev)?,
        block: (0..B).collect(),
        ent_coef: 0.0,
    })
}

/// Median ms of a RAT step with `tweak` applied to the default config, plus the loop's forward
/// passes before and after the step when `measure_after`.
fn step_ms(
    actor: &dyn Actor,
    bt: &ActorBatch,
    tweak: impl Fn(&mut AlgoConfig),
    measure_after: bool,
    runs: usize,
) -> anyhow::Result<f64> {
    let mut c = AlgoConfig::default();
    tweak(&mut c);
    let mut rule = RatActor::new(RatParams::from_config(&c))?;
    rule.step(actor, bt, LR)?;
    median_ms(
        || {
            let before = match measure_after {
                true => Some(actor.policy(&bt.obs, None)?.detach()?),
                false => None,
            };
            black_box(rule.step(actor, bt, LR)?);
            if let Some(before) = &before {
                black_box(kl_to(actor, before, &bt.obs)?);
            }
            Ok(())
        },
        runs,
    )
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("RAT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let enc = Encoder::new(
        NetType::MinatarCnn,
        400,
        Some([10, 10, 4]),
        DType::F32,
        &dev,
        &mut rng,
    )?;
    let cnn = CategoricalActor::on(enc, 3, &[], DType::F32, &dev, &mut rng)?;
    let obs = Tensor::rand(0f32, 1.0, (B, 400), &dev)?
        .ge(0.9)?
        .to_dtype(DType::F32)?;
    let idx: Vec<u32> = (0..B as u32).map(|i| i % 3).collect();
    let cnn_batch = batch(&cnn, obs, Tensor::new(idx.as_slice(), &dev)?, &dev)?;
    let mlp = GaussianActor::new(
        11,
        3,
        &[256, 256],
        SigmaType::Vector,
        DType::F32,
        &dev,
        &mut rng,
    )?;
    let mlp_batch = batch(
        &mlp,
        Tensor::randn(0f32, 1.0, (B, 11), &dev)?,
        Tensor::randn(0f32, 1.0, (B, 3), &dev)?,
        &dev,
    )?;
    let cases: [(&str, &dyn Actor, &ActorBatch); 2] = [
        ("MinAtar CNN", &cnn, &cnn_batch),
        ("Hopper MLP", &mlp, &mlp_batch),
    ];
    println!("\nOne RAT step, b = {B}, f32, CPU, median of {runs} (ms)");
    println!("| policy | plain | step_diagnostics | max_kl | target_kl's forward pass |");
    println!("|---|---|---|---|---|");
    for (name, actor, bt) in cases {
        let plain = step_ms(actor, bt, |_| {}, false, runs)?;
        let diag = step_ms(actor, bt, |c| c.step_diagnostics = true, true, runs)?;
        let bounded = step_ms(actor, bt, |c| c.max_kl = Some(1e-3), false, runs)?;
        let forward = median_ms(
            || {
                black_box(kl_to(actor, &bt.old, &bt.obs)?);
                Ok(())
            },
            runs,
        )?;
        let pct = |x: f64| format!("{x:.1} (+{:.0} %)", 100.0 * (x - plain) / plain);
        println!(
            "| {name} | {plain:.1} | {} | {} | {forward:.1} ({:.0} % of a step) |",
            pct(diag),
            pct(bounded),
            100.0 * forward / plain
        );
    }
    Ok(())
}
