//! Fixtures shared by rat-train's test binaries (each binary uses a part of them).
#![allow(dead_code)]

pub mod actors;

use candle_core::{DType, Tensor};

/// Options of a quiet test run with `seed`, logging under `root`, on the test device.
pub fn quiet_run(
    root: &std::path::Path,
    seed: u64,
) -> anyhow::Result<rat_train::loops::RunOptions> {
    Ok(rat_train::loops::RunOptions {
        seed: Some(seed),
        log_root: root.to_path_buf(),
        verbose: false,
        device: rat_train::cli::test_device()?,
        ..rat_train::loops::RunOptions::default()
    })
}

/// n smooth, seeded values sin(k·i + seed), i = 0..n, in f64 on the test device.
pub fn grid(n: usize, k: f64, seed: f64) -> candle_core::Result<Tensor> {
    Tensor::arange(
        0u32,
        n as u32,
        &rat_train::cli::test_device().map_err(candle_core::Error::wrap)?,
    )?
    .to_dtype(DType::F64)?
    .affine(k, seed)?
    .sin()
}

/// Runs this test binary's test `test` again under `mpirun -np 2`, each rank with `var` set to
/// `dir`, and returns the ranks' standard output; an error with their output if mpirun fails.
pub fn on_two_ranks(test: &str, var: &str, dir: &std::path::Path) -> anyhow::Result<String> {
    let out = std::process::Command::new("mpirun")
        .args(["--oversubscribe", "--allow-run-as-root", "-np", "2"])
        .arg(std::env::current_exe()?)
        .args([test, "--exact", "--nocapture"])
        .env(var, dir)
        .output()
        .map_err(|e| anyhow::anyhow!("mpirun: {e} (apt install openmpi-bin)"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    anyhow::ensure!(
        out.status.success(),
        "mpirun -np 2 failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

/// rat_mlp.yaml on CartPole-v1 with the learning test's settings (tests/learn_cartpole.rs):
/// 8 environments x 256 steps, 4 minibatches, 64 hidden units, 110 000 steps.
pub fn cartpole_learning_config() -> anyhow::Result<rat_train::config::Config> {
    let mut config = rat_train::config::Config::load("rat_mlp.yaml")?;
    for (k, v) in [
        ("env_name", "CartPole-v1"),
        ("num_envs", "8"),
        ("nsteps", "256"),
        ("pi_minibatches", "4"),
        ("v_minibatches", "4"),
        ("a_hidden_size", "64"),
        ("c_hidden_size", "64"),
        ("timesteps_per_proc", "110000"),
    ] {
        config.set(k, v)?;
    }
    Ok(config)
}

/// A run's progress.csv row by row, without the clock's columns (`fps`, `time/*`,
/// `misc/time_elapsed`): what two runs of the same computation must share.
pub fn clockless_rows(progress_csv: &std::path::Path) -> anyhow::Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(progress_csv)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let timed = |h: &str| h == "fps" || h.starts_with("time/") || h == "misc/time_elapsed";
    Ok(lines
        .map(|l| {
            l.split(',')
                .zip(&header)
                .filter(|(_, h)| !timed(h))
                .map(|(v, _)| v.to_string())
                .collect()
        })
        .collect())
}

/// log π(a_i|s_i) and ℋ(s_i) from the distribution's parameters by the textbook formulas, on
/// the host (categorical: log p[a] and −Σ p log p; Gaussian: Σ_k −(a−μ)²/2σ² − log σ − ½ log 2π
/// and Σ_k log σ + ½ log 2πe).
pub fn explicit_logp_entropy(
    policy: &rat_train::nets::Policy,
    actions: &Tensor,
) -> anyhow::Result<Vec<(f64, f64)>> {
    use rat_train::nets::Policy;
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    Ok(match policy {
        Policy::Categorical(d) => {
            let lp = d.log_probs().to_vec2::<f64>()?;
            let a = actions.to_vec1::<u32>()?;
            lp.iter()
                .zip(&a)
                .map(|(row, &a)| {
                    let h = -row.iter().map(|l| l.exp() * l).sum::<f64>();
                    (row[a as usize], h)
                })
                .collect()
        }
        Policy::Gaussian(d) => {
            let mu = d.mean().to_vec2::<f64>()?;
            let ls = d
                .log_std()
                .broadcast_as(d.mean().shape())?
                .to_vec2::<f64>()?;
            let a = actions.to_vec2::<f64>()?;
            (0..mu.len())
                .map(|i| {
                    let mut lp = 0.0;
                    let mut h = 0.0;
                    for k in 0..mu[i].len() {
                        let z = (a[i][k] - mu[i][k]) / ls[i][k].exp();
                        lp += -0.5 * z * z - ls[i][k] - 0.5 * ln2pi;
                        h += ls[i][k] + 0.5 * (ln2pi + 1.0);
                    }
                    (lp, h)
                })
                .collect()
        }
    })
}

/// â_i = A_i − c·(log π(a_i|s_i) + ℋ(s_i)) by hand ([`explicit_logp_entropy`]): the advantages a
/// step with `ent_mode: advantage` transforms.
pub fn entropy_advantages_by_hand(
    policy: &rat_train::nets::Policy,
    actions: &Tensor,
    advantages: &Tensor,
    c: f64,
) -> anyhow::Result<Tensor> {
    let hat: Vec<f64> = explicit_logp_entropy(policy, actions)?
        .iter()
        .zip(&advantages.to_vec1::<f64>()?)
        .map(|(&(lp, h), a)| a - c * (lp + h))
        .collect();
    Ok(Tensor::new(hat, advantages.device())?)
}
