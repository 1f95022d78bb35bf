//! RAT's solve options (`solve: cholesky | lu`, `solve_dtype: f32 | f64`) run in both loops, and
//! `solve_diagnostics` writes the solve's residual and condition number to TensorBoard.

use rat_train::config::Config;
use rat_train::loops::{RunOptions, detach, shared};

fn options(root: &std::path::Path) -> RunOptions {
    RunOptions {
        seed: Some(3),
        log_root: root.to_path_buf(),
        verbose: false,
        device: rat_train::cli::test_device().expect("RAT_TEST_DEVICE names a usable device"),
        ..RunOptions::default()
    }
}

fn small(file: &str, keys: &[(&str, &str)]) -> anyhow::Result<Config> {
    let mut c = Config::load(file)?;
    for (k, v) in [
        ("env_name", "Pendulum-v1"),
        ("num_envs", "2"),
        ("nsteps", "32"),
    ] {
        c.set(k, v)?;
    }
    for (k, v) in keys {
        c.set(k, v)?;
    }
    c.env_config.timesteps_per_proc = 64;
    Ok(c)
}

/// The `solve/…` scalars of a run directory's event files.
fn solve_scalars(dir: &std::path::Path) -> anyhow::Result<Vec<(String, f32)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.to_string_lossy().contains("tfevents") {
            for (tag, _, v) in rat_train::io::tensorboard::read_scalars(&p)? {
                if tag.starts_with("solve/") {
                    out.push((tag, v));
                }
            }
        }
    }
    Ok(out)
}

#[test]
fn every_solve_runs_and_diagnostics_are_logged() -> anyhow::Result<()> {
    let root = std::env::temp_dir().join(format!("rat-solve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    for (solve, dtype) in [
        ("cholesky", "f32"),
        ("lu", "f32"),
        ("cholesky", "f64"),
        ("lu", "f64"),
    ] {
        let keys = [
            ("solve", solve),
            ("solve_dtype", dtype),
            ("solve_diagnostics", "True"),
            ("pi_minibatches", "2"),
            ("v_minibatches", "2"),
            ("a_hidden_size", "16"),
            ("c_hidden_size", "16"),
        ];
        let out = detach::run(&small("rat_mlp.yaml", &keys)?, &options(&root))?;
        let joint = [
            ("solve", solve),
            ("solve_dtype", dtype),
            ("solve_diagnostics", "True"),
            ("minibatches", "2"),
            ("hidden_size", "16"),
        ];
        let out_shared = shared::run(&small("rat_mlp_shared.yaml", &joint)?, &options(&root))?;
        for dir in [&out.log_dir, &out_shared.log_dir] {
            let s = solve_scalars(dir)?;
            let residuals: Vec<f32> = s
                .iter()
                .filter(|x| x.0 == "solve/residual")
                .map(|x| x.1)
                .collect();
            let conds: Vec<f32> = s
                .iter()
                .filter(|x| x.0 == "solve/condition")
                .map(|x| x.1)
                .collect();
            assert_eq!(residuals.len(), 3, "{solve}/{dtype}: one per iteration");
            assert!(
                residuals.iter().all(|r| r.is_finite() && *r < 1e-2),
                "{residuals:?}"
            );
            assert!(conds.iter().all(|c| *c >= 1.0), "{conds:?}");
            if dtype == "f64" {
                // Solved in f64 and rounded to the networks' f32: the rounding is what remains.
                assert!(
                    residuals.iter().all(|r| *r < 1e-6),
                    "{solve} f64: {residuals:?}"
                );
            }
            println!("{solve}/{dtype}: residuals {residuals:?}, conditions {conds:?}");
        }
    }
    // Off by default: nothing logged.
    let keys = [("pi_minibatches", "2"), ("v_minibatches", "2")];
    let out = detach::run(&small("rat_mlp.yaml", &keys)?, &options(&root))?;
    assert!(solve_scalars(&out.log_dir)?.is_empty());
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}
