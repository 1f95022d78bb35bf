//! `train_shared` end to end: RAT's joint update learns CartPole-v1 (about a minute in the test
//! profile) and writes the shared script's outputs; every shared config, the exact joint mode
//! and dropout run on discrete and continuous tasks; every rule resumes; bad settings are errors.

use std::path::PathBuf;

use rat_train::config::Config;
use rat_train::loops::RunOptions;
use rat_train::loops::shared::run;
use rat_train::nets::ActionMode;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rat-test-shared-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options(root: &std::path::Path, seed: u64) -> RunOptions {
    RunOptions {
        seed: Some(seed),
        log_root: root.to_path_buf(),
        verbose: false,
        device: rat_train::cli::test_device().expect("RAT_TEST_DEVICE names a usable device"),
        ..RunOptions::default()
    }
}

/// A config shrunk to a few seconds: 2 envs x 32 steps, 16-unit network, `iterations` iterations.
fn tiny(name: &str, env: &str, iterations: usize) -> anyhow::Result<Config> {
    let mut c = Config::load(name)?;
    for (k, v) in [
        ("env_name", env),
        ("num_envs", "2"),
        ("nsteps", "32"),
        ("minibatches", "2"),
        ("epochs", "2"),
        ("hidden_size", "16"),
        ("log_interval", "1"),
    ] {
        c.set(k, v)?;
    }
    c.env_config.timesteps_per_proc = (iterations.max(2) - 2) * 64;
    Ok(c)
}

#[test]
fn rat_joint_update_solves_cartpole_and_writes_the_shared_outputs() -> anyhow::Result<()> {
    let mut config = Config::load("rat_mlp_shared.yaml")?;
    for (k, v) in [
        ("env_name", "CartPole-v1"),
        ("num_envs", "8"),
        ("nsteps", "256"),
        ("minibatches", "4"),
        ("hidden_size", "64"),
        ("timesteps_per_proc", "200000"),
    ] {
        config.set(k, v)?;
    }
    let root = temp_dir("cartpole");
    let out = run(&config, &options(&root, 1))?;
    assert_eq!(out.iterations, 200_000 / 2048 + 2);
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

    // The shared script's directory name and learning-rate columns.
    let group = out
        .log_dir
        .parent()
        .and_then(|p| p.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert_eq!(
        group,
        "shared.rat.karzmarz_True.mlp.a64x2x0.0e4x4.clip_grad_0.5.vector.damping_0.1.lr_0.05"
    );
    let csv = std::fs::read_to_string(out.log_dir.join("progress.csv"))?;
    let header: Vec<&str> = csv.lines().next().unwrap_or_default().split(',').collect();
    for col in ["curr_lr", "lr", "kl", "loss_v", "eprewmean", "grad_norm"] {
        assert!(header.contains(&col), "progress.csv lacks {col}");
    }
    assert!(!header.contains(&"lr_pi") && !header.contains(&"lr_v"));
    // The reference's columns sorted, then the 8 this project adds (`actor_steps` first).
    let reference = &header[..header.len() - 8];
    let mut sorted = reference.to_vec();
    sorted.sort();
    assert_eq!(
        reference,
        sorted.as_slice(),
        "the reference's columns are sorted"
    );
    assert_eq!(header[header.len() - 8], "actor_steps");
    // Every 10th iteration and the last one.
    assert_eq!(csv.lines().count(), 1 + out.iterations.div_ceil(10));
    let tb = std::fs::read_dir(&out.log_dir)?
        .filter_map(|e| e.ok())
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("events.out.tfevents")
        })
        .map(|e| e.path())
        .ok_or_else(|| anyhow::anyhow!("no TensorBoard event file"))?;
    let scalars = rat_train::io::tensorboard::read_scalars(&tb)?;
    for tag in ["train/curr_lr", "train/lr", "time/joint", "train/eprewmean"] {
        let n = scalars.iter().filter(|s| s.0 == tag).count();
        assert_eq!(n, out.iterations, "{tag} once per iteration");
    }
    assert!(out.log_dir.join("config.yaml").is_file());
    assert!(out.log_dir.join("time.json").is_file());

    // The checkpoint evaluates (deterministic policy).
    let eval = rat_train::loops::evaluate::evaluate(
        &out.log_dir.join("model.safetensors"),
        3,
        7,
        ActionMode::Mode,
        &rat_train::cli::test_device()?,
    )?;
    let (mean, _) = eval.mean_std();
    println!("deterministic evaluation: {mean:.1}");
    assert!(mean >= 400.0, "evaluation of the checkpoint: {mean}");
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn every_shared_config_mode_and_dropout_runs() -> anyhow::Result<()> {
    let root = temp_dir("configs");
    let cases: [(&str, &[(&str, &str)]); 6] = [
        ("rat_mlp_shared.yaml", &[]),
        ("rat_mlp_shared.yaml", &[("joint_mode", "exact")]),
        ("rat_mlp_shared.yaml", &[("dropout", "0.2")]),
        ("diag_mlp_shared.yaml", &[("dropout", "0.2")]),
        ("kfac_mlp_shared.yaml", &[]),
        (
            "kfac_mlp_shared.yaml",
            &[("algo", "ekfac"), ("optimizer", "ekfac")],
        ),
    ];
    for (name, overrides) in cases {
        for env in ["CartPole-v1", "Pendulum-v1"] {
            let mut c = tiny(name, env, 3)?;
            for (k, v) in overrides {
                c.set(k, v)?;
            }
            let out = run(&c, &options(&root, 3))?;
            assert_eq!(out.iterations, 3, "{name} {overrides:?} on {env}");
            let csv = std::fs::read_to_string(out.log_dir.join("progress.csv"))?;
            let header: Vec<&str> = csv.lines().next().unwrap_or_default().split(',').collect();
            let last: Vec<f64> = csv
                .lines()
                .last()
                .unwrap_or_default()
                .split(',')
                .map(|x| x.parse().unwrap_or(f64::NAN))
                .collect();
            for col in ["kl", "grad_norm", "loss_v", "entropy", "lr"] {
                let i = header.iter().position(|h| *h == col).expect("column");
                assert!(
                    last[i].is_finite(),
                    "{name} {overrides:?} on {env}: {col} = {}",
                    last[i]
                );
            }
            // Resume continues to one more iteration with the rule's own state.
            let mut longer = c.clone();
            longer.env_config.timesteps_per_proc += 64;
            let mut opts = options(&root, 3);
            opts.resume = Some(out.log_dir.join("model.safetensors"));
            assert_eq!(run(&longer, &opts)?.iterations, 4, "{name} resumed");
        }
    }
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn bad_shared_settings_are_clear_errors() -> anyhow::Result<()> {
    let root = temp_dir("bad");
    let check = |c: Config, what: &str| {
        let err = run(&c, &options(&root, 1))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(what),
            "expected an error about {what}, got '{err}'"
        );
    };
    let mut c = tiny("rat_mlp_shared.yaml", "CartPole-v1", 2)?;
    c.set("algo", "fvp")?;
    check(c, "train_detach");
    let mut c = tiny("rat_mlp_shared.yaml", "Pendulum-v1", 2)?;
    c.set("sigma_type", "mu_shared")?;
    check(c, "sigma_type");
    let mut c = tiny("rat_mlp_shared.yaml", "CartPole-v1", 2)?;
    c.set("dropout", "1.0")?;
    check(c, "dropout");
    let mut c = tiny("rat_mlp_shared.yaml", "CartPole-v1", 2)?;
    c.set("optimizer", "adam")?;
    check(c, "optimizer: sgd");
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn shared_cnn_trains_on_minatar_with_every_joint_rule() -> anyhow::Result<()> {
    // One MinAtar CNN encoder under the policy and value heads, through RAT (both joint modes),
    // diag and K-FAC, with dropout in a hidden layer after the encoder.
    let root = temp_dir("cnn");
    let cases: [(&str, &[(&str, &str)]); 5] = [
        ("rat_cnn_shared.yaml", &[]),
        // The exact joint direction takes λ as given (a relative λ is refused there).
        (
            "rat_cnn_shared.yaml",
            &[("joint_mode", "exact"), ("damping_mode", "absolute")],
        ),
        (
            "rat_cnn_shared.yaml",
            &[("num_layers", "1"), ("dropout", "0.2")],
        ),
        ("diag_mlp_shared.yaml", &[]),
        ("kfac_mlp_shared.yaml", &[]),
    ];
    for (name, overrides) in cases {
        let mut c = tiny(name, "minatar:breakout", 3)?;
        for (k, v) in [
            ("type", "minatar_cnn"),
            ("num_layers", "0"),
            ("norm_obs", "False"),
        ] {
            c.set(k, v)?;
        }
        for (k, v) in overrides {
            c.set(k, v)?;
        }
        let out = run(&c, &options(&root, 3))?;
        assert_eq!(out.iterations, 3, "{name} {overrides:?}");
        let ckpt = out.log_dir.join("model.safetensors");
        let eval = rat_train::loops::evaluate::evaluate(
            &ckpt,
            1,
            1,
            rat_train::nets::ActionMode::Mode,
            &rat_train::cli::test_device()?,
        )?;
        assert_eq!(eval.returns.len(), 1, "{name}: the checkpoint evaluates");
    }
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}
