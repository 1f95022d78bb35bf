//! Runs a `train_detach` checkpoint deterministically (mean action, squashed as in training) for
//! n episodes and prints the mean ± std return.
//!
//! ```text
//! cargo run --release --example evaluate -- logs/<run>/model.safetensors [--episodes 10] [--seed 0] [--stochastic]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use rat_train::runner::ActionMode;

const USAGE: &str = "usage: evaluate <model.safetensors> [--episodes n (10)] [--seed s (0)] \
                     [--stochastic] [--device k (-1)]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> rat_train::Result<()> {
    let (mut path, mut episodes, mut seed, mut mode, mut device) =
        (None, 10usize, 0u64, ActionMode::Mode, -1i64);
    let mut args = std::env::args().skip(1);
    let bad = |m: String| rat_train::Error::Invalid(m);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| bad(format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--episodes" => {
                episodes = value("--episodes")?
                    .parse()
                    .map_err(|_| bad("--episodes: not a number".into()))?
            }
            "--seed" => {
                seed = value("--seed")?
                    .parse()
                    .map_err(|_| bad("--seed: not a number".into()))?
            }
            "--device" => {
                device = value("--device")?
                    .parse()
                    .map_err(|_| bad("--device: not a number".into()))?
            }
            "--stochastic" => mode = ActionMode::Sample,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            p if !p.starts_with("--") && path.is_none() => path = Some(PathBuf::from(p)),
            other => return Err(bad(format!("unexpected argument '{other}'"))),
        }
    }
    let path = path.ok_or_else(|| bad("no checkpoint given".into()))?;
    let device = rat_train::cli::device(device)?;
    let eval = rat_train::evaluate::evaluate(&path, episodes, seed, mode, &device)?;
    let (mean, std) = eval.mean_std();
    let mean_len = eval.lengths.iter().sum::<usize>() as f64 / eval.lengths.len() as f64;
    println!("{episodes} episodes: return {mean:.2} ± {std:.2} (mean length {mean_len:.1})");
    Ok(())
}
