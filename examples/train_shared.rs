//! `train_shared`: one shared actor–critic network trained by RAT's joint update (or `diag`,
//! `kfac`, `ekfac`) on any registered environment, driven by a reference YAML config with CLI
//! overrides.
//!
//! ```text
//! cargo run --release --example train_shared -- --config rat_mlp_shared.yaml --env_name CartPole-v1
//! cargo run --release --features mujoco --example train_shared -- --config rat_mlp_shared.yaml --env_name humanoid
//! cargo run --release --example train_shared -- --help
//! ```

use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::from(rat_train::cli::EXIT_INTERRUPTED),
        Ok(false) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Trains; returns whether a signal stopped the run early.
fn run() -> rat_train::Result<bool> {
    let Some(mut cli) = rat_train::cli::parse(std::env::args().skip(1))? else {
        println!("{}", rat_train::cli::USAGE);
        return Ok(false);
    };
    cli.options.stop = Some(rat_train::cli::stop_on_signals()?);
    let result = rat_train::loops::shared::run(&cli.config, &cli.options);
    // Under --dist mpi, rank 0 reports for every rank.
    let Some(out) = rat_train::cli::on_ranks(&*cli.options.comm, result)? else {
        return Ok(false);
    };
    let [rollout, joint, _, gather] = out.phase_seconds;
    println!(
        "per iteration: rollout {rollout:.2} s (gathering the ranks' rollouts {gather:.3} s), \
         joint updates {joint:.2} s"
    );
    println!(
        "done: {} iterations, {} env steps, eprewmean {:.1} over the last {} episodes, \
         {:.0} steps/s, median joint update {:.1} ms per minibatch; run directory {}",
        out.iterations,
        out.timesteps,
        out.eprewmean,
        out.episode_returns.len(),
        out.fps,
        out.median_step_seconds * 1e3,
        out.log_dir.display()
    );
    if let Some((seconds, bytes)) = out.actor_collectives {
        println!(
            "dist_mode exact: the joint steps' collectives took {:.2} ms and brought {:.2} MB \
             to this rank per step",
            seconds * 1e3,
            bytes / 1e6
        );
    }
    if out.interrupted {
        eprintln!(
            "stopped by a signal after iteration {}; resume with --resume {}",
            out.iterations,
            out.log_dir.join("model.safetensors").display()
        );
    }
    Ok(out.interrupted)
}
