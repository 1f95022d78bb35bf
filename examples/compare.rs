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
//! Each rule runs its `configs/<algo>_<net>.yaml`, where `--net` is `mlp` (the default) or `cnn`
//! (e.g. `--net cnn --env_name minatar:breakout --algos rat,ppo`); any other `--key value`
//! overrides every config.
//! `--from_csv <curves.csv>` redraws the plot and table of an earlier comparison without training;
//! `--from_logs <dir>[,<dir>…]` rebuilds them from the runs' own `progress.csv` files under the
//! given `logs` directories (e.g. to merge comparisons run in parallel, or a stopped one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rat_train::config::Config;
use rat_train::io::png::{PALETTE, Series, plot_curves};
use rat_train::loops::{RunOptions, detach::run};

const USAGE: &str = "usage: compare --env_name <env> [--algos rat,fvp,diag,kfac,ppo] [--seeds 1,2] \
                     [--net mlp|cnn (configs/<algo>_<net>.yaml)] \
                     [--out <dir> (logs/compare/<env>)] [--from_csv <curves.csv>] \
                     [--from_logs <logs dir>[,<logs dir>...]] \
                     [--<config key> <value>]...";

/// One iteration of one run: (algo, seed, steps, eprewmean, seconds).
type Row = (String, u64, f64, f64, f64);

fn main() -> ExitCode {
    match compare() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

/// (steps, eprewmean, seconds) of every iteration in a run's progress.csv, by column name.
fn read_curve(dir: &Path) -> anyhow::Result<Vec<(f64, f64, f64)>> {
    let path = dir.join("progress.csv");
    let mut reader = csv::Reader::from_path(&path)?;
    let header = reader.headers()?.clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| anyhow::anyhow!("{}: no column {name}", path.display()))
    };
    let (s, r, t) = (
        col("misc/serial_timesteps")?,
        col("eprewmean")?,
        col("misc/time_elapsed")?,
    );
    reader
        .records()
        .map(|rec| {
            let rec = rec?;
            let num = |i: usize| rec.get(i).and_then(|x| x.parse().ok()).unwrap_or(f64::NAN);
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
    let (mut env, mut out, mut from_csv, mut overrides) = (None, None, None, Vec::new());
    let mut from_logs: Option<Vec<PathBuf>> = None;
    let mut net = "mlp".to_string();
    use rat_train::cli::{Item, items};
    for item in items(std::env::args().skip(1), &[])? {
        let (key, value) = match item {
            Item::Help => {
                println!("{USAGE}");
                return Ok(());
            }
            Item::Flag(k, v) => (k, v),
            Item::Switch(k) => anyhow::bail!("unexpected switch --{k}"),
            Item::Positional(p) => anyhow::bail!("unexpected argument '{p}'\n{USAGE}"),
        };
        match key.as_str() {
            "algos" => algos = value.split(',').map(str::to_string).collect(),
            "seeds" => seeds = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "out" => out = Some(PathBuf::from(value)),
            "env_name" => env = Some(value),
            "net" => net = value,
            "from_csv" => from_csv = Some(PathBuf::from(value)),
            "from_logs" => from_logs = Some(value.split(',').map(PathBuf::from).collect()),
            _ => overrides.push((key, value)),
        }
    }
    let env = env.ok_or_else(|| anyhow::anyhow!("--env_name is required"))?;
    let out = out.unwrap_or_else(|| Path::new("logs/compare").join(&env));
    std::fs::create_dir_all(&out)?;
    let rows = match (&from_csv, &from_logs) {
        (Some(path), _) => read_rows(path)?,
        (None, Some(dirs)) => rows_from_logs(dirs)?,
        (None, None) => train(&env, &net, &algos, &seeds, &overrides, &out)?,
    };
    if from_csv.is_none() {
        let mut csv = String::from("algo,seed,steps,eprewmean,seconds\n");
        for (algo, seed, steps, ret, secs) in &rows {
            csv.push_str(&format!("{algo},{seed},{steps},{ret},{secs}\n"));
        }
        std::fs::write(out.join("curves.csv"), csv)?;
    }
    report(&env, &rows, &out)
}

/// Trains every rule for every seed and returns every iteration's row.
fn train(
    env: &str,
    net: &str,
    algos: &[String],
    seeds: &[u64],
    overrides: &[(String, String)],
    out: &Path,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for algo in algos {
        let mut config = Config::load(format!("{algo}_{net}.yaml"))?;
        config.set("env_name", env)?;
        config.set("log_interval", "1")?;
        for (key, value) in overrides {
            config.set(key, value)?;
        }
        for &seed in seeds {
            let opts = RunOptions {
                seed: Some(seed),
                log_root: out.join("logs"),
                verbose: false,
                ..RunOptions::default()
            };
            eprintln!("{algo}, seed {seed}: training on {env}...");
            let outcome = run(&config, &opts)?;
            for (steps, ret, secs) in read_curve(&outcome.log_dir)? {
                rows.push((algo.clone(), seed, steps, ret, secs));
            }
        }
    }
    Ok(rows)
}

/// The rows of every run under `logs` directories laid out as `train_detach` writes them:
/// `<logs>/<algo>.karzmarz_…/<env>.<time>_<seed>/progress.csv`.
fn rows_from_logs(dirs: &[PathBuf]) -> anyhow::Result<Vec<Row>> {
    let mut runs = Vec::new();
    for dir in dirs {
        for group in std::fs::read_dir(dir)? {
            let group = group?.path();
            let name = group
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let algo = name.split('.').next().unwrap_or_default().to_string();
            for run in std::fs::read_dir(&group)? {
                let run = run?.path();
                let tail = run
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                let seed: u64 = tail.rsplit('_').next().unwrap_or_default().parse()?;
                runs.push((algo.clone(), seed, run));
            }
        }
    }
    // A stable order: by the rules' usual order, then seed.
    let rank = |a: &str| {
        ["rat", "fvp", "diag", "kfac", "ekfac", "pg", "ppo"]
            .iter()
            .position(|x| *x == a)
    };
    runs.sort_by_key(|(a, s, _)| (rank(a), a.clone(), *s));
    let mut rows = Vec::new();
    for (algo, seed, dir) in runs {
        // A run stopped before its first iteration leaves an empty progress.csv.
        let empty = std::fs::metadata(dir.join("progress.csv")).map_or(true, |m| m.len() == 0);
        if empty {
            eprintln!("skipping {}: no iterations logged", dir.display());
            continue;
        }
        for (steps, ret, secs) in read_curve(&dir)? {
            rows.push((algo.clone(), seed, steps, ret, secs));
        }
    }
    anyhow::ensure!(!rows.is_empty(), "no runs under {dirs:?}");
    Ok(rows)
}

/// The rows of a `curves.csv`.
fn read_rows(path: &Path) -> anyhow::Result<Vec<Row>> {
    #[derive(serde::Deserialize)]
    struct Record {
        algo: String,
        seed: u64,
        steps: f64,
        eprewmean: f64,
        seconds: f64,
    }
    csv::Reader::from_path(path)?
        .deserialize()
        .map(|r| {
            let r: Record = r.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Ok((r.algo, r.seed, r.steps, r.eprewmean, r.seconds))
        })
        .collect()
}

/// The table of final returns and wall times, and the plot of mean ± std over seeds.
fn report(env: &str, rows: &[Row], out: &Path) -> anyhow::Result<()> {
    let mut algos: Vec<&str> = Vec::new();
    for r in rows {
        if !algos.contains(&r.0.as_str()) {
            algos.push(&r.0);
        }
    }
    let seeds = rows
        .iter()
        .map(|r| r.1)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    println!("| algo | final eprewmean (mean ± std over {seeds} seeds) | wall seconds (mean) |");
    println!("|---|---|---|");
    let mut series = Vec::new();
    for (k, algo) in algos.iter().enumerate() {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.0 == *algo).collect();
        let mut by_step: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        let mut last: BTreeMap<u64, (f64, f64, f64)> = BTreeMap::new();
        for r in &mine {
            by_step.entry(r.2 as u64).or_default().push(r.3);
            if last.get(&r.1).is_none_or(|l| r.2 >= l.0) {
                last.insert(r.1, (r.2, r.3, r.4));
            }
        }
        let finals: Vec<f64> = last.values().map(|l| l.1).collect();
        let walls: Vec<f64> = last.values().map(|l| l.2).collect();
        let (m, s) = mean_std(&finals);
        println!("| {algo} | {m:.1} ± {s:.1} | {:.0} |", mean_std(&walls).0);
        let (x, stats): (Vec<f64>, Vec<(f64, f64)>) = by_step
            .iter()
            .map(|(x, v)| (*x as f64, mean_std(v)))
            .unzip();
        series.push(Series {
            label: algo.to_string(),
            color: PALETTE[k % PALETTE.len()],
            x,
            mean: stats.iter().map(|p| p.0).collect(),
            std: stats.iter().map(|p| p.1).collect(),
        });
    }
    let title = format!(
        "{} - eprewmean, mean +- std over {seeds} seeds",
        env.to_lowercase()
    );
    plot_curves(&out.join("curves.png"), &title, "env steps", &series)?;
    println!("wrote {}", out.join("curves.png").display());
    Ok(())
}
