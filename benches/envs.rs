//! Environment throughput: env steps per second of one environment on one thread, and of the
//! threaded vectoriser (32 environments) with 1 and 2 workers, for the built-in classic-control
//! and MinAtar games and, with `--features mujoco`, the MuJoCo tasks. Then Procgen (when
//! `scripts/fetch-procgen.sh` has fetched it): 32 environments in one batch stepped by the
//! library on the calling thread (0 threads), and on 1 and 2 threads of its own.
//!
//! `cargo bench --bench envs [--features mujoco]` prints the table. `RAT_BENCH_SECONDS` sets the
//! time spent per row (default 1.0).

use std::hint::black_box;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_envs::{Env, Space, VecEnv};

/// Random actions for one step of `n` environments, from a pre-drawn pool (drawing is not timed).
struct Actions {
    pool: Vec<f32>,
    width: usize,
    next: usize,
}

impl Actions {
    fn new(space: &Space, n: usize, rng: &mut ChaCha8Rng) -> Self {
        let width = space.flat_dim() * n;
        let pool = (0..width * 1024)
            .map(|k| match space {
                Space::Discrete { n } => rng.random_range(0..*n) as f32,
                Space::Box { low, high } => {
                    let j = k % low.len();
                    rng.random_range(low[j].max(-1.0) as f32..=high[j].min(1.0) as f32)
                }
            })
            .collect();
        Self {
            pool,
            width,
            next: 0,
        }
    }

    fn take(&mut self) -> &[f32] {
        let start = self.next * self.width;
        self.next = (self.next + 1) % 1024;
        &self.pool[start..start + self.width]
    }
}

fn single(env: &mut dyn Env, budget: Duration) -> rat_envs::Result<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut acts = Actions::new(&env.action_space(), 1, &mut rng);
    let mut obs = vec![0.0; env.observation_space().flat_dim()];
    env.reset(Some(0), &mut obs)?;
    let (start, mut steps) = (Instant::now(), 0u64);
    while start.elapsed() < budget {
        for _ in 0..256 {
            if env.step(acts.take(), &mut obs)?.done() {
                env.reset(None, &mut obs)?;
            }
        }
        steps += 256;
    }
    black_box(&obs);
    Ok(steps as f64 / start.elapsed().as_secs_f64())
}

fn vectorised(id: &str, n: usize, workers: usize, budget: Duration) -> rat_envs::Result<f64> {
    let envs = (0..n)
        .map(|_| rat_envs::make_env(id))
        .collect::<rat_envs::Result<Vec<_>>>()?;
    steps_per_second(VecEnv::new(envs, workers, 0)?, budget)
}

/// Env steps per second of `venv` over `budget`, random actions.
fn steps_per_second(mut venv: VecEnv, budget: Duration) -> rat_envs::Result<f64> {
    let n = venv.num_envs();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut acts = Actions::new(venv.action_space(), n, &mut rng);
    let mut buf = venv.buffers();
    venv.reset(&mut buf.obs)?;
    let (start, mut steps) = (Instant::now(), 0u64);
    while start.elapsed() < budget {
        venv.step(acts.take(), &mut buf)?;
        steps += n as u64;
    }
    Ok(steps as f64 / start.elapsed().as_secs_f64())
}

fn main() -> rat_envs::Result<()> {
    let secs: f64 = std::env::var("RAT_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    let minatar: Vec<String> = rat_envs::minatar::GAMES
        .iter()
        .map(|g| format!("minatar:{g}"))
        .collect();
    let mut ids: Vec<&str> = rat_envs::classic::IDS.to_vec();
    ids.extend(minatar.iter().map(String::as_str));
    if cfg!(feature = "mujoco") {
        ids.extend([
            "Hopper-v4",
            "HalfCheetah-v4",
            "Walker2d-v4",
            "Ant-v4",
            "Humanoid-v4",
            "HumanoidStandup-v4",
        ]);
        ids.extend([
            "Reacher-v4",
            "Swimmer-v4",
            "InvertedPendulum-v4",
            "InvertedDoublePendulum-v4",
        ]);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("env steps per second ({cores} cores; {secs} s per cell; random actions)");
    println!(
        "{:<28} {:>14} {:>16} {:>16} {:>8}",
        "env", "1 env, 1 thr", "32 envs, 1 wkr", "32 envs, 2 wkr", "2w/1w"
    );
    for id in ids {
        let mut env = rat_envs::make_env(id)?;
        let one = single(env.as_mut(), budget)?;
        let v1 = vectorised(id, 32, 1, budget)?;
        let v2 = vectorised(id, 32, 2, budget)?;
        println!(
            "{id:<28} {one:>14.0} {v1:>16.0} {v2:>16.0} {:>7.2}x",
            v2 / v1
        );
    }
    procgen(budget)
}

fn procgen(budget: Duration) -> rat_envs::Result<()> {
    if !rat_envs::procgen::is_fetched() {
        println!("procgen: skipped (run scripts/fetch-procgen.sh)");
        return Ok(());
    }
    println!(
        "\n{:<28} {:>16} {:>16} {:>16} {:>8}",
        "procgen (easy), 32 envs", "0 threads", "1 thread", "2 threads", "2t/1t"
    );
    for game in ["coinrun", "starpilot", "bigfish", "bossfight"] {
        let rate = |t: usize| {
            steps_per_second(
                rat_envs::make(&format!("procgen:{game}?threads={t}"), 32, 0)?,
                budget,
            )
        };
        let (t0, t1, t2) = (rate(0)?, rate(1)?, rate(2)?);
        println!(
            "{:<28} {t0:>16.0} {t1:>16.0} {t2:>16.0} {:>7.2}x",
            format!("procgen:{game}"),
            t2 / t1
        );
    }
    Ok(())
}
