//! Runs a `train_detach` checkpoint deterministically (mean action, squashed as in training) for
//! n episodes and prints the mean ± std return.
//!
//! ```text
//! cargo run --release --example evaluate -- logs/<run>/model.safetensors [--episodes 10] [--seed 0] [--stochastic]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use rat_train::nets::ActionMode;

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
    use rat_train::cli::{Item, integer, items};
    let (mut path, mut episodes, mut seed, mut mode, mut device) =
        (None, 10usize, 0u64, ActionMode::Mode, -1i64);
    let bad = |m: String| rat_train::Error::Invalid(m);
    for item in items(std::env::args().skip(1), &["stochastic"])? {
        match item {
            Item::Help => {
                println!("{USAGE}");
                return Ok(());
            }
            Item::Switch(_) => mode = ActionMode::Sample,
            Item::Flag(k, v) => match k.as_str() {
                "episodes" => episodes = integer(&k, &v)?,
                "seed" => seed = integer(&k, &v)?,
                "device" => device = integer(&k, &v)?,
                _ => return Err(bad(format!("unknown flag --{k}"))),
            },
            Item::Positional(p) if path.is_none() => path = Some(PathBuf::from(p)),
            Item::Positional(p) => return Err(bad(format!("unexpected argument '{p}'"))),
        }
    }
    let path = path.ok_or_else(|| bad("no checkpoint given".into()))?;
    let device = rat_train::cli::device(device)?;
    let eval = rat_train::loops::evaluate::evaluate(&path, episodes, seed, mode, &device)?;
    let (mean, std) = eval.mean_std();
    let mean_len = eval.lengths.iter().sum::<usize>() as f64 / eval.lengths.len() as f64;
    println!("{episodes} episodes: return {mean:.2} ± {std:.2} (mean length {mean_len:.1})");
    Ok(())
}
