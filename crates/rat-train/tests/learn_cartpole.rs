//! RAT learns CartPole-v1 end to end through `train_detach` (about a minute in the test
//! profile), and the run's outputs are complete: progress.csv with the reference's columns,
//! TensorBoard scalars for every iteration, config.yaml, time.json and a checkpoint that
//! `evaluate` can run.

mod common;

use std::path::PathBuf;

use rat_train::loops::{RunOptions, detach::run};
use rat_train::nets::ActionMode;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rat-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn rat_solves_cartpole_and_writes_every_output() -> anyhow::Result<()> {
    let config = common::cartpole_learning_config()?;
    let root = temp_dir("cartpole");
    let opts = RunOptions {
        seed: Some(2),
        log_root: root.clone(),
        verbose: false,
        checkpoint_every: 20,
        ..RunOptions::default()
    };
    let out = run(&config, &opts)?;
    let n = 8 * 256;
    assert_eq!(out.iterations, 110_000 / n + 2);
    let last20 = &out.episode_returns[out.episode_returns.len().saturating_sub(20)..];
    let mean20 = last20.iter().sum::<f64>() / last20.len() as f64;
    println!(
        "last 20 episodes: mean return {mean20:.1}; fps {:.0}",
        out.fps
    );
    assert!(
        mean20 >= 450.0,
        "CartPole not solved: mean of the last 20 returns {mean20}"
    );

    // progress.csv: the reference's columns, sorted, then this project's; one row per 10
    // iterations.
    let csv = std::fs::read_to_string(out.log_dir.join("progress.csv"))?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    for col in [
        "action_max",
        "action_min",
        "adv_avg",
        "adv_max",
        "adv_med",
        "adv_min",
        "adv_var",
        "clipfrac",
        "entropy",
        "eplenmean",
        "eprewmean",
        "fps",
        "grad_norm",
        "kl",
        "loss_pi",
        "loss_v",
        "lr_pi",
        "lr_v",
        "misc/nupdates",
        "misc/serial_timesteps",
        "misc/time_elapsed",
        "misc/total_timesteps",
        "ratio_max",
        "ratio_min",
        "ret_avg",
        "ret_max",
        "ret_med",
        "ret_min",
        "ret_var",
    ] {
        assert!(header.contains(&col), "progress.csv lacks {col}");
    }
    // The reference's columns first, sorted; this project's after them, in their order.
    let reference = &header[..header.len() - 8];
    let mut sorted = reference.to_vec();
    sorted.sort();
    assert_eq!(reference, sorted.as_slice());
    assert_eq!(
        &header[header.len() - 8..],
        [
            "actor_steps",
            "kl_step_mean",
            "kl_step_max",
            "kl_pred_mean",
            "kl_pred_max",
            "kernel_scale",
            "damping_ratio",
            "ent_coef"
        ]
    );
    // Every 10th iteration, and the last one.
    assert_eq!(lines.count(), out.iterations.div_ceil(10));

    // The run directory is named as the reference names it.
    let group = out
        .log_dir
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str());
    assert_eq!(
        group,
        Some(
            "rat.karzmarz_True.mlp.a64x2x0.0e4x4.c64x2x0.0e4x4.npg_fisher_clip_0.5.vector.damping_0.1.lr_pi_0.05"
        )
    );
    let leaf = out
        .log_dir
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    assert!(
        leaf.starts_with("CartPole-v1.") && leaf.ends_with("_2"),
        "{leaf}"
    );

    // config.yaml: the four sections, no `algo`.
    let snapshot: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(out.log_dir.join("config.yaml"))?)?;
    assert!(snapshot.get("algo").is_none());
    assert_eq!(
        snapshot["env_config"]["env_name"].as_str(),
        Some("CartPole-v1")
    );

    // time.json: one entry per iteration.
    let times: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.log_dir.join("time.json"))?)?;
    assert_eq!(times["updates"].as_u64(), Some(out.iterations as u64));
    assert_eq!(
        times["compute_time_array"].as_array().map(Vec::len),
        Some(out.iterations)
    );

    // TensorBoard: every iteration's eprewmean, readable with valid CRCs.
    let events = std::fs::read_dir(&out.log_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().contains("events.out.tfevents"))
        .expect("an event file");
    let scalars = rat_train::io::tensorboard::read_scalars(&events)?;
    let steps: Vec<i64> = scalars
        .iter()
        .filter(|s| s.0 == "train/eprewmean")
        .map(|s| s.1)
        .collect();
    assert_eq!(steps, (0..out.iterations as i64).collect::<Vec<_>>());

    // The checkpoint runs deterministically.
    let eval = rat_train::loops::evaluate::evaluate(
        &out.log_dir.join("model.safetensors"),
        3,
        7,
        ActionMode::Mode,
        &rat_train::cli::test_device()?,
    )?;
    let (mean, _) = eval.mean_std();
    println!("deterministic evaluation: {mean:.1}");
    assert!(mean >= 400.0, "evaluation return {mean}");
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}
