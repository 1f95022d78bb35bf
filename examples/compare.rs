//! Trains several update rules on one environment over a list of seeds with `train_detach` and
//! writes their learning curves: `curves.csv` (one row per rule, seed and iteration) and
//! `curves.png` (mean ± std of `eprewmean` over the seeds), plus a summary table on stdout.
//!
//! ```text
//! cargo run --release --features mujoco --example compare -- --env_name hopper \
//!     --algos rat,fvp,diag,kfac,ppo --seeds 1,2 --timesteps_per_proc 1000000 --out docs/results/hopper
//! cargo run --release --example compare -- --env_name CartPole-v1 --seeds 1,2 --timesteps_per_proc 100000
//! ```
//!
//! Each rule runs its `configs/<algo>_mlp.yaml`; any other `--key value` overrides every config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rat_train::config::Config;
use rat_train::detach::{RunOptions, run};
use rat_train::png::{PALETTE, Series, plot_curves};

const USAGE: &str = "usage: compare --env_name <env> [--algos rat,fvp,diag,kfac,ppo] [--seeds 1,2] \
                     [--out <dir> (logs/compare/<env>)] [--<config key> <value>]...";

fn main() -> ExitCode {
    match compare() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

/// (steps, eprewmean, seconds) of every iteration in a run's progress.csv.
fn read_curve(dir: &Path) -> anyhow::Result<Vec<(f64, f64, f64)>> {
    let text = std::fs::read_to_string(dir.join("progress.csv"))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| anyhow::anyhow!("progress.csv has no {name}"))
    };
    let (s, r, t) = (
        col("misc/serial_timesteps")?,
        col("eprewmean")?,
        col("misc/time_elapsed")?,
    );
    lines
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            let num = |i: usize| {
                v.get(i)
                    .and_then(|x| x.parse::<f64>().ok())
                    .unwrap_or(f64::NAN)
            };
            Ok((num(s), num(r), num(t)))
        })
        .collect()
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt(),
    )
}

fn compare() -> anyhow::Result<()> {
    let (mut algos, mut seeds) = (vec!["rat".to_string(), "ppo".to_string()], vec![1u64, 2]);
    let (mut env, mut out, mut overrides) = (None, None, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return Ok(());
        }
        let key = flag.trim_start_matches("--").replace('-', "_");
        let value = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match key.as_str() {
            "algos" => algos = value.split(',').map(str::to_string).collect(),
            "seeds" => seeds = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "out" => out = Some(PathBuf::from(value)),
            "env_name" => env = Some(value),
            _ => overrides.push((key, value)),
        }
    }
    let env = env.ok_or_else(|| anyhow::anyhow!("--env_name is required"))?;
    let out = out.unwrap_or_else(|| Path::new("logs/compare").join(&env));
    std::fs::create_dir_all(&out)?;
    let mut csv = String::from("algo,seed,steps,eprewmean,seconds\n");
    let mut series = Vec::new();
    println!(
        "| algo | final eprewmean (mean ± std over {} seeds) | wall seconds (mean) |",
        seeds.len()
    );
    println!("|---|---|---|");
    for (k, algo) in algos.iter().enumerate() {
        let mut config = Config::load(format!("{algo}_mlp.yaml"))?;
        config.set("env_name", &env)?;
        config.set("log_interval", "1")?;
        for (key, value) in &overrides {
            config.set(key, value)?;
        }
        let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        let (mut finals, mut walls) = (Vec::new(), Vec::new());
        for &seed in &seeds {
            let opts = RunOptions {
                seed: Some(seed),
                log_root: out.join("logs"),
                verbose: false,
                ..RunOptions::default()
            };
            eprintln!("{algo}, seed {seed}: training on {env}...");
            let outcome = run(&config, &opts)?;
            let curve = read_curve(&outcome.log_dir)?;
            for &(steps, ret, secs) in &curve {
                csv.push_str(&format!("{algo},{seed},{steps},{ret},{secs}\n"));
                by_step.entry(steps as u64).or_default().push(ret);
            }
            finals.push(outcome.eprewmean);
            walls.push(curve.last().map_or(f64::NAN, |c| c.2));
        }
        let (m, s) = mean_std(&finals);
        println!("| {algo} | {m:.1} ± {s:.1} | {:.0} |", mean_std(&walls).0);
        let (x, stats): (Vec<f64>, Vec<(f64, f64)>) = by_step
            .iter()
            .map(|(x, v)| (*x as f64, mean_std(v)))
            .unzip();
        series.push(Series {
            label: algo.clone(),
            color: PALETTE[k % PALETTE.len()],
            x,
            mean: stats.iter().map(|p| p.0).collect(),
            std: stats.iter().map(|p| p.1).collect(),
        });
    }
    std::fs::write(out.join("curves.csv"), csv)?;
    let title = format!(
        "{} - eprewmean, mean +- std over {} seeds",
        env.to_lowercase(),
        seeds.len()
    );
    plot_curves(&out.join("curves.png"), &title, "env steps", &series)?;
    println!(
        "wrote {} and {}",
        out.join("curves.csv").display(),
        out.join("curves.png").display()
    );
    Ok(())
}
