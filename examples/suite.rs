//! Runs a benchmark suite and reports it: every (environment, rule, seed) run of a suite file
//! that is not finished is trained into `<out>/runs/<env>/<algo>/seed_<seed>/`; a finished run
//! is skipped and an interrupted one resumes from its checkpoint, so the suite can be stopped
//! (Ctrl-C: the run in progress checkpoints) and started again at any time, on several machines
//! sharing `--out` (a lock file per run keeps them apart) or as a Slurm array (`--shard i/n`).
//! After every run it rewrites `<out>/summary.csv`, `<out>/table.md` (mean ± std, IQM with a
//! stratified-bootstrap interval, the anchors) and the plots `<out>/curves_<env>.png`.
//!
//! ```text
//! cargo run --release --features mujoco --example suite -- suites/mujoco-1m.yaml --out docs/results/suite
//! cargo run --release --example suite -- suites/mujoco-1m.yaml --dry-run
//! cargo run --release --example suite -- --env_name CartPole-v1 --algos rat,ppo --seeds 1,2 \
//!     --timesteps_per_proc 100000
//! ```
//!
//! Without a suite file it compares rules on one environment: `--env_name`, `--algos` (each
//! runs `configs/<algo>_<net>.yaml`), `--seeds`, `--net mlp|cnn`, and any `--<config key>
//! <value>` for every run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rat_train::cli::{EXIT_INTERRUPTED, Item, integer, items, stop_on_signals};
use rat_train::suite::driver::{self, Context, Planned};
use rat_train::suite::runs::Settings;
use rat_train::suite::{State, Suite, report};

const USAGE: &str = "\
usage: suite <suite.yaml> [options]
       suite --env_name <env> [--algos rat,ppo] [--seeds 1,2] [--net mlp|cnn] [--<key> <value>]... [options]

  <suite.yaml>            runs: [{env|envs, config|configs, seeds, budget, overrides, label, trainer}],
                          anchors: [{env, algo, name, value}] (see suites/)
  --out <dir>             where runs and results go (default: logs/suite/<suite name or env>)
  --dry-run               list every run, its state and an estimate of its time; train nothing
  --report                rewrite summary.csv, table.md and the plots from the finished runs only
  --shard <i>/<n>         take every n-th run from the i-th (0 <= i < n), for n processes
  --dist mpi              under `mpirun -np R` (a build with --features mpi): rank r takes shard
                          r/R, rank 0 writes the reports once every rank is done
  --checkpoint_every <k>  checkpoint every k iterations (default 10)
  --device <k>            as train_detach's: -1 (default) CUDA when built with it and present, else
                          the CPU; k >= 0 GPU k
  --quiet                 no per-iteration progress lines
  Ctrl-C / SIGTERM        the run in progress checkpoints and the suite exits 130; run it again to resume";

fn main() -> ExitCode {
    match suite() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

/// The command line.
#[derive(Default)]
struct Args {
    file: Option<PathBuf>,
    out: Option<PathBuf>,
    dry_run: bool,
    report: bool,
    quiet: bool,
    shard: Option<String>,
    dist: Option<String>,
    checkpoint_every: usize,
    device: i64,
    env: Option<String>,
    algos: Vec<String>,
    seeds: Vec<u64>,
    net: String,
    overrides: Vec<(String, String)>,
}

fn parse() -> anyhow::Result<Option<Args>> {
    let mut a = Args {
        checkpoint_every: 10,
        device: -1,
        algos: vec!["rat".into(), "ppo".into()],
        seeds: vec![1, 2],
        net: "mlp".into(),
        ..Args::default()
    };
    for item in items(std::env::args().skip(1), &["dry_run", "report", "quiet"])? {
        match item {
            Item::Help => return Ok(None),
            Item::Positional(p) if a.file.is_none() => a.file = Some(PathBuf::from(p)),
            Item::Positional(p) => anyhow::bail!("unexpected argument '{p}'"),
            Item::Switch(k) => match k.as_str() {
                "dry_run" => a.dry_run = true,
                "report" => a.report = true,
                _ => a.quiet = true,
            },
            Item::Flag(k, v) => match k.as_str() {
                "out" => a.out = Some(PathBuf::from(v)),
                "shard" => a.shard = Some(v),
                "dist" => a.dist = Some(v),
                "checkpoint_every" => a.checkpoint_every = integer("checkpoint_every", &v)?,
                "device" => a.device = integer("device", &v)?,
                "env_name" => a.env = Some(v),
                "algos" => a.algos = v.split(',').map(str::to_string).collect(),
                "seeds" => a.seeds = v.split(',').map(str::parse).collect::<Result<_, _>>()?,
                "net" => a.net = v,
                _ => a.overrides.push((k, v)),
            },
        }
    }
    Ok(Some(a))
}

/// The suite (from its file, or one entry from the flags), its title and default folder.
fn load(a: &Args) -> anyhow::Result<(Suite, String, PathBuf)> {
    match (&a.file, &a.env) {
        (Some(file), None) => {
            anyhow::ensure!(
                a.overrides.is_empty(),
                "config keys (--{}) go into the suite file's `overrides`",
                a.overrides[0].0
            );
            let name = file.file_stem().unwrap_or_default().to_string_lossy();
            let out = Path::new("logs/suite").join(name.as_ref());
            Ok((Suite::load(file)?, format!("Suite {name}"), out))
        }
        (None, Some(env)) => {
            let suite = Suite::comparison(env, &a.algos, &a.net, &a.seeds, &a.overrides)?;
            let out = Path::new("logs/suite").join(env.replace([':', '/'], "_"));
            Ok((suite, format!("Comparison on {env}"), out))
        }
        (Some(_), Some(_)) => anyhow::bail!("give a suite file or --env_name, not both"),
        (None, None) => anyhow::bail!("give a suite file or --env_name"),
    }
}

fn suite() -> anyhow::Result<ExitCode> {
    let Some(a) = parse()? else {
        println!("{USAGE}");
        return Ok(ExitCode::SUCCESS);
    };
    let (suite, title, default_out) = load(&a)?;
    let out = a.out.clone().unwrap_or(default_out);
    let all = suite.jobs()?;
    let mine = match &a.shard {
        Some(spec) => driver::shard(all.clone(), spec)?,
        None => all.clone(),
    };
    if a.dry_run {
        print_plan(&suite, &driver::plan(&mine, &out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let comm = rat_train::cli::communicator(a.dist.as_deref())?;
    anyhow::ensure!(
        comm.size() == 1 || a.shard.is_none(),
        "--shard and --dist mpi both split the suite; give one"
    );
    if !a.report {
        let settings = Settings {
            device: Some(rat_train::cli::device(a.device)?),
            checkpoint_every: a.checkpoint_every,
            verbose: !a.quiet,
            write_reports: true,
            stop: Some(stop_on_signals()?),
        };
        let rank = comm.rank();
        let mut say = |line: &str| match comm.size() {
            1 => eprintln!("{line}"),
            _ => eprintln!("rank {rank}: {line}"),
        };
        let cx = Context {
            suite: &suite,
            all: &all,
            out: &out,
            title: &title,
        };
        let pass = driver::run_ranked(comm.as_ref(), cx, &mine, &settings, &mut say)?;
        eprintln!(
            "suite{}: {} trained, {} already finished, {} held by other processes, {} failed",
            if comm.size() > 1 {
                format!(" (rank {rank})")
            } else {
                String::new()
            },
            pass.trained,
            pass.skipped,
            pass.locked,
            pass.failed.len()
        );
        if pass.interrupted {
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        if !pass.failed.is_empty() {
            for (job, e) in &pass.failed {
                eprintln!("failed: {} {} seed {}: {e}", job.env, job.algo, job.seed);
            }
            return Ok(ExitCode::FAILURE);
        }
        if !comm.is_root() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let rows = report::write(&suite, &all, &out, &title)?;
    if rows.is_empty() {
        eprintln!("no finished runs under {} yet", out.display());
    } else {
        print!("{}", std::fs::read_to_string(out.join("table.md"))?);
        println!(
            "\nwrote {0}/summary.csv, {0}/table.md and the plots",
            out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--dry-run` listing.
fn print_plan(suite: &Suite, plan: &[Planned]) {
    if !suite.description.is_empty() {
        println!("{}\n", suite.description.trim());
    }
    println!("| env | algo | seed | budget | state | estimate |\n|---|---|---|---|---|---|");
    let mut total = Some(0.0);
    for p in plan {
        let state = match (&p.state, &p.locked_by) {
            (_, Some(holder)) => format!("training by {holder}"),
            (State::Resume { steps, .. }, _) => format!("resume at {steps}"),
            (s, _) => s.word().to_string(),
        };
        let estimate = match (&p.state, p.estimate_s) {
            (State::Finished(_), _) => "-".to_string(),
            (_, Some(s)) => format!("{:.1} h", s / 3600.0),
            (_, None) => {
                total = None;
                "unknown (no finished run of this env yet)".to_string()
            }
        };
        if let (Some(t), Some(s)) = (total.as_mut(), p.estimate_s) {
            *t += s;
        }
        println!(
            "| {} | {} | {} | {} | {state} | {estimate} |",
            p.job.env, p.job.algo, p.job.seed, p.job.config.env_config.timesteps_per_proc
        );
    }
    let todo = plan
        .iter()
        .filter(|p| !matches!(p.state, State::Finished(_)))
        .count();
    match total {
        Some(t) => println!(
            "\n{todo} of {} runs to train, about {:.1} h",
            plan.len(),
            t / 3600.0
        ),
        None => println!(
            "\n{todo} of {} runs to train; the time is known once a run of each env has finished",
            plan.len()
        ),
    }
}
