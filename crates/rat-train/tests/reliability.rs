//! No silent wrong runs: every failure mode found by a hostile user, reproduced and refused (or
//! fixed): resume semantics, exclusive run directories, stop requests, the config validator,
//! checkpoints that refuse to lie, errors that name the key, and the last iteration logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rat_train::config::Config;
use rat_train::io::checkpoint;
use rat_train::loops::{RunOptions, detach, shared};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rat-rel-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// 2 environments x 32 steps, 16-unit networks, `iterations` iterations, a row every iteration.
fn tiny(iterations: usize) -> anyhow::Result<Config> {
    let mut c = Config::load("rat_mlp.yaml")?;
    for (k, v) in [
        ("env_name", "CartPole-v1"),
        ("num_envs", "2"),
        ("nsteps", "32"),
        ("pi_minibatches", "2"),
        ("v_minibatches", "2"),
        ("a_hidden_size", "16"),
        ("c_hidden_size", "16"),
        ("log_interval", "1"),
    ] {
        c.set(k, v)?;
    }
    c.env_config.timesteps_per_proc = (iterations - 2) * 64;
    Ok(c)
}

fn options(root: &Path) -> RunOptions {
    RunOptions {
        seed: Some(11),
        log_root: root.to_path_buf(),
        verbose: false,
        device: rat_train::cli::test_device().expect("RAT_TEST_DEVICE names a usable device"),
        ..RunOptions::default()
    }
}

/// The `misc/nupdates` column of a run's progress.csv.
fn logged_iterations(dir: &Path) -> anyhow::Result<Vec<usize>> {
    let csv = std::fs::read_to_string(dir.join("progress.csv"))?;
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "misc/nupdates")
        .ok_or_else(|| anyhow::anyhow!("no misc/nupdates in {header:?}"))?;
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            anyhow::ensure!(cells.len() == header.len(), "a row of another width: {l}");
            Ok(cells[col].parse::<f64>()? as usize)
        })
        .collect()
}

fn err_text<T: std::fmt::Debug>(r: rat_train::Result<T>) -> String {
    r.expect_err("must be refused").to_string()
}

#[test]
fn a_resume_refuses_changed_settings_and_seeds_but_takes_a_larger_budget() -> anyhow::Result<()> {
    let root = temp_dir("resume");
    let c = tiny(3)?;
    let first = detach::run(&c, &options(&root))?;
    let ckpt = first.log_dir.join("model.safetensors");
    let mut opts = options(&root);
    opts.resume = Some(ckpt.clone());

    let mut lr = c.clone();
    lr.set("lr_pi", "0.001")?;
    let e = err_text(detach::run(&lr, &opts));
    assert!(
        e.contains("lr_pi: 0.05 in the checkpoint, 0.001 now"),
        "{e}"
    );

    let mut ppo = c.clone();
    ppo.set("algo", "ppo")?;
    ppo.set("optimizer", "adam")?;
    let e = err_text(detach::run(&ppo, &opts));
    assert!(e.contains("algo: rat in the checkpoint, ppo now"), "{e}");

    let mut seed = options(&root);
    seed.resume = Some(ckpt.clone());
    seed.seed = Some(99);
    let e = err_text(detach::run(&c, &seed));
    assert!(e.contains("--seed 99") && e.contains("seed 11"), "{e}");

    // The budget and the logging cadence may change.
    let mut longer = c.clone();
    longer.set("timesteps_per_proc", "192")?;
    longer.set("log_interval", "2")?;
    assert_eq!(detach::run(&longer, &opts)?.iterations, 5);
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn two_runs_started_together_never_share_a_directory() -> anyhow::Result<()> {
    let root = temp_dir("unique");
    let (a, b) = std::thread::scope(|s| {
        let run = || -> anyhow::Result<rat_train::loops::Outcome> {
            Ok(detach::run(&tiny(3)?, &options(&root))?)
        };
        let a = s.spawn(run);
        let b = s.spawn(run);
        (a.join(), b.join())
    });
    let (a, b) = (
        a.map_err(|_| anyhow::anyhow!("panicked"))??,
        b.map_err(|_| anyhow::anyhow!("panicked"))??,
    );
    assert_ne!(a.log_dir, b.log_dir);
    for out in [&a, &b] {
        assert_eq!(logged_iterations(&out.log_dir)?, [0, 1, 2]);
    }
    // The same name twice in one second: the second gets a suffix.
    let dir = root.join("group").join("run_1");
    let first = rat_train::loops::start::create_unique_dir(&dir)?;
    let second = rat_train::loops::start::create_unique_dir(&dir)?;
    assert_eq!(first, dir);
    assert_eq!(second, root.join("group").join("run_1-1"));
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn a_stop_request_checkpoints_the_iteration_and_a_resume_logs_nothing_twice() -> anyhow::Result<()>
{
    let root = temp_dir("stop");
    let c = tiny(6)?;
    // A request already pending: the run ends after its first iteration, saved and logged.
    let mut opts = options(&root);
    opts.stop = Some(Arc::new(AtomicBool::new(true)));
    let out = detach::run(&c, &opts)?;
    assert!(out.interrupted);
    assert_eq!(out.iterations, 1);
    let ckpt = out.log_dir.join("model.safetensors");
    assert_eq!(logged_iterations(&out.log_dir)?, [0]);
    let times: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.log_dir.join("time.json"))?)?;
    assert_eq!(times["updates"].as_u64(), Some(1), "time.json is current");

    // Resume to iteration 3, keep that checkpoint, go on to 6, then "kill" the run by putting
    // the iteration-3 checkpoint back: the next resume must cut the logs back to it.
    let mut resume = options(&root);
    resume.resume = Some(ckpt.clone());
    let mut three = c.clone();
    three.set("timesteps_per_proc", "64")?;
    assert!(!detach::run(&three, &resume)?.interrupted);
    let at_three = std::fs::read(&ckpt)?;
    detach::run(&c, &resume)?;
    assert_eq!(logged_iterations(&out.log_dir)?, [0, 1, 2, 3, 4, 5]);
    std::fs::write(&ckpt, at_three)?;
    assert_eq!(detach::run(&c, &resume)?.iterations, 6);
    assert_eq!(logged_iterations(&out.log_dir)?, [0, 1, 2, 3, 4, 5]);
    // Every TensorBoard step once per tag, across all event files.
    let mut steps = Vec::new();
    for entry in std::fs::read_dir(&out.log_dir)? {
        let path = entry?.path();
        if path.to_string_lossy().contains("tfevents") {
            let scalars = rat_train::io::tensorboard::read_scalars(&path)?;
            steps.extend(
                scalars
                    .into_iter()
                    .filter(|s| s.0 == "train/kl")
                    .map(|s| s.1),
            );
        }
    }
    steps.sort();
    assert_eq!(steps, [0, 1, 2, 3, 4, 5]);
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn settings_that_cannot_learn_are_refused_before_a_directory_exists() -> anyhow::Result<()> {
    let root = temp_dir("validate");
    let mut big = tiny(3)?;
    big.set("num_envs", "8")?;
    big.set("nsteps", "32")?;
    let cases: Vec<(Config, &str)> = vec![
        (
            {
                let mut c = big.clone();
                c.set("pi_minibatches", "255")?;
                c
            },
            "pi_minibatches = 255",
        ),
        (
            {
                let mut c = big.clone();
                c.set("pi_minibatches", "256")?;
                c
            },
            "pi_minibatches = 256",
        ),
        (
            {
                let mut c = big.clone();
                c.set("v_minibatches", "0")?;
                c
            },
            "v_minibatches = 0",
        ),
        (
            {
                let mut c = big.clone();
                c.set("max_ratio", "0.5")?;
                c.set("min_ratio", "2")?;
                c
            },
            "max_ratio = 0.5",
        ),
        (
            {
                let mut c = big.clone();
                c.set("pi_epochs", "0")?;
                c
            },
            "pi_epochs = 0",
        ),
        (
            {
                let mut c = big.clone();
                c.set("lr_pi", "inf")?;
                c
            },
            "lr_pi = inf",
        ),
        (
            {
                let mut c = big.clone();
                c.set("lr_v", "inf")?;
                c
            },
            "lr_v = inf",
        ),
        (
            {
                let mut c = big.clone();
                c.set("ent_coef", "NaN")?;
                c
            },
            "ent_coef = NaN",
        ),
        (
            {
                let mut c = big.clone();
                c.set("a_hidden_size", "1000000000")?;
                c
            },
            "a_hidden_size = 1000000000",
        ),
        (
            {
                let mut c = big.clone();
                c.set("lr", "1e6")?;
                c
            },
            "lr is read by train_shared",
        ),
        (
            {
                let mut c = big.clone();
                c.set("hidden_size", "7")?;
                c
            },
            "hidden_size is read by train_shared",
        ),
    ];
    for (c, needle) in cases {
        let e = err_text(detach::run(&c, &options(&root)));
        assert!(e.contains(needle), "{needle}: {e}");
    }
    // train_shared refuses the separate loop's keys and config files.
    let mut s = Config::load("rat_mlp_shared.yaml")?;
    s.set("lr_pi", "1e6")?;
    let e = err_text(shared::run(&s, &options(&root)));
    assert!(e.contains("lr_pi is read by train_detach"), "{e}");
    let e = err_text(shared::run(&Config::load("rat_mlp.yaml")?, &options(&root)));
    assert!(e.contains("is read by train_detach"), "{e}");
    assert!(!root.exists(), "a refused run created {}", root.display());
    Ok(())
}

#[test]
fn checkpoints_refuse_corruption_and_keep_exact_values() -> anyhow::Result<()> {
    let root = temp_dir("ckpt");
    let mut opts = options(&root);
    opts.seed = Some((1 << 60) + 1); // not an f64
    let out = detach::run(&tiny(2)?, &opts)?;
    let path = out.log_dir.join("model.safetensors");
    let ck = checkpoint::load(&path)?;
    assert_eq!(ck.seed()?, (1 << 60) + 1);
    assert_eq!(
        ck.meta.get("rat.format").map(String::as_str),
        Some(checkpoint::FORMAT)
    );
    for name in [
        "actor.net.0.weight",
        "actor.net.4.bias",
        "critic.trunk.0.weight",
        "critic.head.bias",
    ] {
        assert!(ck.contains_key(name), "no {name} in {:?}", ck.keys());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    // 200 flipped bytes at the end (tensor data): refused, naming the file.
    let good = std::fs::read(&path)?;
    let mut bad = good.clone();
    let n = bad.len();
    for b in &mut bad[n - 200..] {
        *b ^= 0x5A;
    }
    let flipped = root.join("flipped.safetensors");
    std::fs::write(&flipped, &bad)?;
    let e = checkpoint::load(&flipped)
        .expect_err("corrupted")
        .to_string();
    assert!(
        e.contains("corrupted") && e.contains("flipped.safetensors"),
        "{e}"
    );
    let e = err_text(rat_train::loops::evaluate::evaluate(
        &flipped,
        1,
        0,
        rat_train::nets::ActionMode::Mode,
        &candle_core::Device::Cpu,
    ));
    assert!(e.contains("corrupted"), "{e}");

    // Truncated: the error names the file.
    let cut = root.join("cut.safetensors");
    std::fs::write(&cut, &good[..good.len() / 2])?;
    let e = checkpoint::load(&cut).expect_err("truncated").to_string();
    assert!(e.contains("cut.safetensors"), "{e}");

    // A network of another shape: the error names the tensor by its place.
    let mut wider = tiny(2)?;
    wider.set("a_hidden_size", "32")?;
    let env = rat_envs::make("CartPole-v1", 1, 0)?;
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut agent = rat_train::nets::Agent::new(
        &wider,
        env.observation_space(),
        None,
        env.action_space(),
        &candle_core::Device::Cpu,
        &mut rng,
    )?;
    let e = agent.load(&ck).expect_err("shape mismatch").to_string();
    assert!(e.contains("actor.net.0.weight"), "{e}");
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn config_errors_name_the_key_and_the_value() {
    for (yaml, needles) in [
        (
            "algo: rat\nenv_config:\n  num_envs: -4\n",
            ["env_config.num_envs", "-4"],
        ),
        (
            "algo: rat\nalgo_config:\n  lr_pi: fast\n",
            ["algo_config.lr_pi", "'fast'"],
        ),
        (
            "algo: rat\nnets_config:\n  norm_obs: maybe\n",
            ["nets_config.norm_obs", "'maybe'"],
        ),
    ] {
        let e = Config::from_yaml(yaml, "test.yaml")
            .expect_err(yaml)
            .to_string();
        for n in needles {
            assert!(e.contains(n), "{yaml}: {e}");
        }
    }
    let mut c = Config::default_rat();
    let e = c.set("num_envs", "-4").expect_err("negative").to_string();
    assert!(
        e.contains("--num_envs -4") && e.contains("non-negative"),
        "{e}"
    );
    // A whole number written as a float is an integer.
    c.set("timesteps_per_proc", "1e6").expect("1e6");
    assert_eq!(c.env_config.timesteps_per_proc, 1_000_000);
    assert!(c.set("timesteps_per_proc", "1.5e0").is_err());
    let c =
        Config::from_yaml("algo: rat\nenv_config:\n  timesteps_per_proc: 2e6\n", "t").expect("2e6");
    assert_eq!(c.env_config.timesteps_per_proc, 2_000_000);
}

#[test]
fn the_last_iteration_is_always_in_progress_csv() -> anyhow::Result<()> {
    let root = temp_dir("last");
    let mut c = tiny(3)?;
    c.set("log_interval", "10")?;
    let out = detach::run(&c, &options(&root))?;
    assert_eq!(logged_iterations(&out.log_dir)?, [2]);
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

/// Every column of two progress.csv files but the timing ones.
fn assert_same_curve(a: &Path, b: &Path) -> anyhow::Result<()> {
    let read = |d: &Path| -> anyhow::Result<Vec<Vec<String>>> {
        Ok(std::fs::read_to_string(d.join("progress.csv"))?
            .lines()
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect())
    };
    let (a, b) = (read(a)?, read(b)?);
    assert_eq!(a.len(), b.len(), "row counts");
    assert_eq!(a[0], b[0], "headers");
    for (i, h) in a[0].iter().enumerate() {
        if h == "fps" || h == "misc/time_elapsed" {
            continue;
        }
        for (r, (x, y)) in a.iter().zip(&b).enumerate().skip(1) {
            assert_eq!(x[i], y[i], "row {r}, column {h}");
        }
    }
    Ok(())
}

/// Runs `config` for 6 iterations straight, and again as 3 iterations, a checkpoint, and a
/// resume to 6 (what a kill at the checkpoint leaves); the two curves must be identical.
fn resume_is_exact(
    config: &Config,
    run: fn(&Config, &RunOptions) -> rat_train::Result<rat_train::loops::Outcome>,
    name: &str,
) -> anyhow::Result<()> {
    let root = temp_dir(name);
    let n = config.env_config.num_envs * config.env_config.nsteps;
    let mut six = config.clone();
    six.env_config.timesteps_per_proc = 4 * n;
    let mut three = config.clone();
    three.env_config.timesteps_per_proc = n;
    let straight = run(&six, &options(&root.join("straight")))?;
    let first = run(&three, &options(&root.join("killed")))?;
    assert_eq!(first.iterations, 3);
    let mut opts = options(&root.join("killed"));
    opts.resume = Some(first.log_dir.join("model.safetensors"));
    let resumed = run(&six, &opts)?;
    assert_eq!(resumed.iterations, 6);
    assert_same_curve(&straight.log_dir, &resumed.log_dir)?;
    assert_eq!(straight.episode_returns, resumed.episode_returns, "{name}");
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn kill_at_a_checkpoint_and_resume_is_the_uninterrupted_run_on_cartpole() -> anyhow::Result<()> {
    resume_is_exact(&tiny(6)?, detach::run, "exact-cartpole")?;
    let mut s = Config::load("rat_mlp_shared.yaml")?;
    for (k, v) in [
        ("env_name", "CartPole-v1"),
        ("num_envs", "2"),
        ("nsteps", "32"),
        ("minibatches", "2"),
        ("hidden_size", "16"),
        ("log_interval", "1"),
    ] {
        s.set(k, v)?;
    }
    resume_is_exact(&s, shared::run, "exact-shared")
}

#[test]
fn kill_at_a_checkpoint_and_resume_is_the_uninterrupted_run_on_minatar() -> anyhow::Result<()> {
    let mut c = Config::load("rat_cnn.yaml")?;
    for (k, v) in [
        ("env_name", "minatar:breakout"),
        ("num_envs", "2"),
        ("nsteps", "16"),
        ("pi_minibatches", "2"),
        ("v_minibatches", "2"),
        ("pi_epochs", "1"),
        ("v_epochs", "1"),
        ("log_interval", "1"),
    ] {
        c.set(k, v)?;
    }
    resume_is_exact(&c, detach::run, "exact-minatar")
}

#[cfg(feature = "mujoco")]
#[test]
fn kill_at_a_checkpoint_and_resume_is_the_uninterrupted_run_on_hopper() -> anyhow::Result<()> {
    let mut c = tiny(6)?;
    c.set("env_name", "Hopper-v4")?;
    // Short episodes end and reset inside the rollouts, so both replay paths are exercised.
    c.set("nsteps", "64")?;
    resume_is_exact(&c, detach::run, "exact-hopper")
}
