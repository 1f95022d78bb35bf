//! One actor update per rule on identical minibatches (b = 1024, f32, CPU) for the Hopper-sized
//! (11 → 256 → 256 → 3) and Humanoid-sized (376 → 256 → 256 → 17) Gaussian policies with a
//! state-independent log-σ: rat (reference and exact Kaczmarz), fvp (10 CG iterations on the
//! exact Fisher), diag, kfac and ekfac (each timed separately on ordinary steps and on the
//! every-10th step that refreshes G and the eigen-decompositions, plus the mean over whole
//! 10-step cycles), pg and ppo, all through `rat_train`'s `ActorUpdate` rules; then the joint
//! updates of the shared network (`train_shared`; Humanoid-sized, 376 → 256 → 256 → 17 + value,
//! P = 166 947): rat (reference and exact joint mode), diag and kfac. The kernel alone
//! (factored vs materialised) is `benches/kernel.rs`.
//!
//! `cargo bench --bench solvers` prints a summary table (median of `RAT_BENCH_RUNS` = 15 timed
//! steps each, relative to pg), then criterion's timings. `RAT_BENCH_QUICK=1` skips criterion.
//! `RAT_BENCH_DEVICE=0` (a `--device` value; needs `--features cuda`) runs everything on that
//! GPU, each timed step ending with a device synchronisation.

use std::hint::black_box;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use criterion::Criterion;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rat_train::config::{Algo, AlgoConfig, Config, KaczmarzKind, SigmaType};
use rat_train::nets::{Actor, GaussianActor};
use rat_train::rules::{ActorBatch, ActorUpdate};

const B: usize = 1024;
/// Small enough that the policy barely moves over a benchmark, so every step sees the same data.
const LR: f64 = 1e-7;

/// A rule name, its config file and an optional Kaczmarz mode.
const RULES: [(&str, &str, Option<KaczmarzKind>); 8] = [
    ("rat", "rat_mlp.yaml", Some(KaczmarzKind::Reference)),
    (
        "rat (exact Kaczmarz)",
        "rat_mlp.yaml",
        Some(KaczmarzKind::Exact),
    ),
    ("fvp (10 CG)", "fvp_mlp.yaml", None),
    ("diag", "diag_mlp.yaml", None),
    ("kfac", "kfac_mlp.yaml", None),
    ("ekfac", "ekfac_mlp.yaml", None),
    ("pg", "pg_mlp.yaml", None),
    ("ppo", "ppo_mlp.yaml", None),
];

fn algo_config(file: &str, mode: Option<KaczmarzKind>) -> anyhow::Result<(Algo, AlgoConfig)> {
    let c = Config::load(file)?;
    let mut a = c.algo_config;
    if let Some(m) = mode {
        a.kaczmarz_mode = m;
    }
    Ok((c.algo, a))
}

fn rule(file: &str, mode: Option<KaczmarzKind>) -> anyhow::Result<Box<dyn ActorUpdate>> {
    let (algo, algo_config) = algo_config(file, mode)?;
    let config = Config {
        algo,
        algo_config,
        ..Config::default_rat()
    };
    Ok(rat_train::rules::actor_update(&config)?)
}

struct Setup {
    name: &'static str,
    dev: Device,
    actor: GaussianActor,
    batch: ActorBatch,
}

fn setup(
    name: &'static str,
    obs_dim: usize,
    act_dim: usize,
    dev: &Device,
) -> anyhow::Result<Setup> {
    let dev = dev.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let actor = GaussianActor::new(
        obs_dim,
        act_dim,
        &[256, 256],
        SigmaType::Vector,
        DType::F32,
        &dev,
        &mut rng,
    )?;
    let obs = Tensor::randn(0f32, 1.0, (B, obs_dim), &dev)?;
    let actions = Tensor::randn(0f32, 1.0, (B, act_dim), &dev)?;
    let advantages = Tensor::randn(0f32, 1.0, B, &dev)?;
    let old = actor.policy(&obs, None)?.detach()?;
    Ok(Setup {
        name,
        dev,
        actor,
        batch: ActorBatch {
            obs,
            actions,
            advantages,
            old,
            block: (0..B).collect(),
            ent_coef: 0.0,
        },
    })
}

/// A rule ready to step: one step taken first, so rat's momentum buffer (the Kaczmarz vector)
/// exists as in every step after a run's first.
fn warmed(
    s: &Setup,
    file: &str,
    mode: Option<KaczmarzKind>,
) -> anyhow::Result<Box<dyn ActorUpdate>> {
    let mut r = rule(file, mode)?;
    r.begin_rollout(B, &s.batch.advantages)?;
    r.step(&s.actor, &s.batch, LR)?;
    Ok(r)
}

/// Steps a rule with a refresh every 10 steps (`taken` steps so far) until the next step is
/// (or is not) a refresh step, then times that one step.
fn time_phase(
    r: &mut dyn ActorUpdate,
    s: &Setup,
    taken: &mut usize,
    refresh: bool,
) -> anyhow::Result<Duration> {
    while taken.is_multiple_of(10) != refresh {
        r.step(&s.actor, &s.batch, LR)?;
        *taken += 1;
    }
    let t0 = Instant::now();
    black_box(r.step(&s.actor, &s.batch, LR)?);
    s.dev.synchronize()?;
    *taken += 1;
    Ok(t0.elapsed())
}

/// Whether a rule refreshes its factors every 10 steps.
fn refreshes(name: &str) -> bool {
    name == "kfac" || name == "ekfac"
}

/// Median and mean milliseconds of `runs` calls.
fn time_ms(mut f: impl FnMut(), runs: usize) -> (f64, f64) {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let mean = t.iter().sum::<f64>() / runs as f64;
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], mean)
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("RAT_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let dev = rat_train::cli::device_from_env("RAT_BENCH_DEVICE")?;
    println!("device: {dev:?}");
    let setups = [
        setup("hopper", 11, 3, &dev)?,
        setup("humanoid", 376, 17, &dev)?,
    ];
    let mut table = vec![Vec::new(); RULES.len()];
    // Per refreshing rule: (no-refresh median, refresh median, cycle mean) per setup.
    let mut phases: Vec<(&str, Vec<[f64; 3]>)> = Vec::new();
    for s in &setups {
        for (k, (name, file, mode)) in RULES.iter().enumerate() {
            let mut r = warmed(s, file, *mode)?;
            let (median, _) = time_ms(
                || {
                    drop(black_box(r.step(&s.actor, &s.batch, LR)));
                    drop(s.dev.synchronize());
                },
                runs,
            );
            table[k].push(median);
            if refreshes(name) {
                let mut r = warmed(s, file, *mode)?;
                let mut taken = 1;
                let mut phase = |refresh: bool| -> anyhow::Result<f64> {
                    let mut t = (0..3.max(runs / 5))
                        .map(|_| Ok(time_phase(r.as_mut(), s, &mut taken, refresh)?.as_secs_f64()))
                        .collect::<anyhow::Result<Vec<f64>>>()?;
                    t.sort_by(f64::total_cmp);
                    Ok(t[t.len() / 2] * 1e3)
                };
                let (plain, refresh) = (phase(false)?, phase(true)?);
                let cycle = (9.0 * plain + refresh) / 10.0;
                match phases.iter_mut().find(|p| p.0 == *name) {
                    Some(p) => p.1.push([plain, refresh, cycle]),
                    None => phases.push((name, vec![[plain, refresh, cycle]])),
                }
            }
        }
    }
    println!(
        "\nOne actor update, b = {B}, f32, {dev:?}, median of {runs} steps (ms; x = relative to pg)"
    );
    println!("| rule | Hopper ms | x pg | Humanoid ms | x pg |");
    println!("|---|---|---|---|---|");
    let pg = RULES
        .iter()
        .position(|r| r.0 == "pg")
        .expect("pg is listed");
    let row = |name: &str, h: f64, u: f64| {
        println!(
            "| {name} | {h:.1} | {:.2} | {u:.1} | {:.2} |",
            h / table[pg][0],
            u / table[pg][1]
        );
    };
    for (k, (name, ..)) in RULES.iter().enumerate() {
        match phases.iter().find(|p| p.0 == *name) {
            None => row(name, table[k][0], table[k][1]),
            Some((_, t)) => {
                let labels = ["no refresh", "refresh step", "mean over a 10-step cycle"];
                for (j, what) in labels.iter().enumerate() {
                    row(&format!("{name} ({what})"), t[0][j], t[1][j]);
                }
            }
        }
    }
    joint_table(runs, &dev)?;
    if std::env::var_os("RAT_BENCH_QUICK").is_some() {
        return Ok(());
    }
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for s in &setups {
        let mut g = c.benchmark_group(format!("actor_update_{}_b{B}", s.name));
        for (name, file, mode) in RULES {
            if !refreshes(name) {
                let mut r = warmed(s, file, mode)?;
                g.bench_function(name, |bch| {
                    bch.iter(|| black_box(r.step(&s.actor, &s.batch, LR).unwrap()))
                });
                continue;
            }
            for refresh in [false, true] {
                let (mut r, mut taken) = (warmed(s, file, mode)?, 1);
                let id = format!(
                    "{name} ({})",
                    if refresh { "refresh" } else { "no refresh" }
                );
                g.bench_function(id, |bch| {
                    bch.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| time_phase(r.as_mut(), s, &mut taken, refresh).unwrap())
                            .sum()
                    })
                });
            }
        }
        g.finish();
    }
    c.final_summary();
    Ok(())
}

/// The shared network's joint updates on one Humanoid-sized minibatch, median ms.
fn joint_table(runs: usize, dev: &Device) -> anyhow::Result<()> {
    use rat_train::nets::shared::SharedActorCritic;
    use rat_train::rules::joint::JointBatch;
    use rat_train::rules::joint::joint_update;
    let dev = dev.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let space = rat_envs::Space::uniform_box(17, -0.4, 0.4);
    let net = SharedActorCritic::new(
        rat_train::nets::encoders::Encoder::identity(376),
        &space,
        rat_train::nets::shared::TrunkSpec {
            width: 256,
            layers: 2,
            dropout: 0.0,
            popart: true,
        },
        DType::F32,
        &dev,
        &mut rng,
    )?;
    let obs = Tensor::randn(0f32, 1.0, (B, 376), &dev)?;
    let batch = JointBatch {
        old: net.forward(&obs, None, None)?.policy.detach()?,
        obs,
        actions: Tensor::randn(0f32, 1.0, (B, 17), &dev)?,
        advantages: Tensor::randn(0f32, 1.0, B, &dev)?,
        returns: Tensor::randn(0f32, 1.0, B, &dev)?,
        noise: Tensor::randn(0f32, 1.0, B, &dev)?,
        masks: None,
        ent_coef: 0.0,
    };
    println!(
        "\nJoint update of the shared network (Humanoid-sized), b = {B}, f32, median of {runs} steps (ms)"
    );
    println!("| rule | ms |");
    println!("|---|---|");
    for (name, file, overrides) in [
        ("rat", "rat_mlp_shared.yaml", &[][..]),
        (
            "rat (joint_mode exact)",
            "rat_mlp_shared.yaml",
            &[("joint_mode", "exact")][..],
        ),
        ("diag", "diag_mlp_shared.yaml", &[][..]),
        (
            "kfac (mean over a 10-step cycle)",
            "kfac_mlp_shared.yaml",
            &[][..],
        ),
    ] {
        let mut c = Config::load(file)?;
        for (k, v) in overrides {
            c.set(k, v)?;
        }
        let mut rule = joint_update(&c)?;
        rule.step(&net, &batch, LR)?;
        // K-FAC: two whole 10-step cycles (the warm-up step above was step 0 of the first).
        let kfac = name.starts_with("kfac");
        let n = if kfac { 20 } else { runs };
        let (median, mean) = time_ms(
            || {
                drop(black_box(rule.step(&net, &batch, LR)));
                drop(dev.synchronize());
            },
            n,
        );
        let shown = if kfac { mean } else { median };
        println!("| {name} | {shown:.1} |");
    }
    Ok(())
}
