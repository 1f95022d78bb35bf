//! MinAtar against the Python package (`minatar==1.0.15`) as a black box:
//!
//! * frames: with sticky actions off, the Python game plays random actions; the Rust game starts
//!   from the same initial frame (the only random draw of the deterministic games' starts) and
//!   replays the actions; every frame, reward and terminal flag must agree;
//! * statistics: with the wrapper's defaults (sticky 0.1, ramping), the mean return and length
//!   of many random-policy episodes agree within sampling error (5 standard errors).
//!
//! The Python comes from `RAT_PARITY_PYTHON` (`scripts/parity-venv.sh` installs minatar there);
//! without it the tests print a line saying they were skipped and pass.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_envs::Env;
use rat_envs::minatar::{Breakout, Game, MinAtar, SpaceInvaders};
use serde::Deserialize;

fn reference(spec: &str) -> Result<Option<Vec<String>>> {
    let Some(python) = std::env::var_os("RAT_PARITY_PYTHON") else {
        println!("skipped: set RAT_PARITY_PYTHON (scripts/parity-venv.sh creates it)");
        return Ok(None);
    };
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/parity/minatar_reference.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {python:?} {script}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(spec.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No module named 'minatar'") {
            println!("skipped: minatar is not installed in {python:?} (scripts/parity-venv.sh)");
            return Ok(None);
        }
        anyhow::bail!("{script} failed: {err}");
    }
    Ok(Some(
        String::from_utf8(out.stdout)?
            .lines()
            .map(str::to_string)
            .collect(),
    ))
}

#[derive(Deserialize)]
struct Episode {
    frame0: Vec<usize>,
    steps: Vec<StepRecord>,
}

#[derive(Deserialize)]
struct StepRecord {
    action: usize,
    reward: f64,
    terminal: bool,
    frame: Vec<usize>,
}

fn cells(obs: &[f64]) -> Vec<usize> {
    obs.iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(i, _)| i)
        .collect()
}

/// Replays every reference episode of `game` from a start chosen by `start(frame0)`.
fn frames_agree<G: Game>(game: &str, policy: &str, start: impl Fn(&[usize]) -> G) -> Result<()> {
    let spec = format!(
        r#"{{"game": "{game}", "mode": "frames", "episodes": 30, "seed": 11, "max_steps": 3000, "policy": "{policy}"}}"#
    );
    let Some(lines) = reference(&spec)? else {
        return Ok(());
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut steps = 0;
    for (e, line) in lines.iter().enumerate() {
        let ep: Episode = serde_json::from_str(line)?;
        let mut g = start(&ep.frame0);
        let c = g.channels();
        let mut obs = vec![0.0; 100 * c];
        g.render(&mut obs);
        ensure!(
            cells(&obs) == ep.frame0,
            "{game} episode {e}: initial frames differ"
        );
        for (t, s) in ep.steps.iter().enumerate() {
            let (r, done) = g.act(s.action, &mut rng);
            obs.fill(0.0);
            g.render(&mut obs);
            ensure!(
                cells(&obs) == s.frame && r == s.reward && done == s.terminal,
                "{game} episode {e} step {t} (action {}): got reward {r} terminal {done} frame {:?}, \
                 expected reward {} terminal {} frame {:?}",
                s.action,
                cells(&obs),
                s.reward,
                s.terminal,
                s.frame
            );
            steps += 1;
        }
    }
    println!(
        "{game} ({policy} actions): {} episodes, {steps} steps agree frame by frame",
        lines.len()
    );
    Ok(())
}

/// Mean and standard error.
fn mean_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (var / n).sqrt())
}

#[derive(Deserialize)]
struct Stats {
    returns: Vec<f64>,
    lengths: Vec<f64>,
}

/// Random-policy statistics of the Rust environment `id` and of the package agree.
fn statistics_agree(game: &str, id: &str, episodes: usize) -> Result<()> {
    let spec =
        format!(r#"{{"game": "{game}", "mode": "stats", "episodes": {episodes}, "seed": 5}}"#);
    let Some(lines) = reference(&spec)? else {
        return Ok(());
    };
    let py: Stats = serde_json::from_str(&lines[0])?;
    let mut env = rat_envs::make_env(id)?;
    let dim = env.observation_space().flat_dim();
    let mut obs = vec![0.0; dim];
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (mut returns, mut lengths) = (Vec::new(), Vec::new());
    for e in 0..episodes {
        env.reset(Some(e as u64 + 100), &mut obs)?;
        let (mut total, mut n) = (0.0, 0.0);
        loop {
            let s = env.step(&[rng.random_range(0..6) as f32], &mut obs)?;
            total += s.reward;
            n += 1.0;
            if s.done() {
                break;
            }
        }
        returns.push(total);
        lengths.push(n);
    }
    for (what, ours, theirs) in [
        ("return", &returns, &py.returns),
        ("length", &lengths, &py.lengths),
    ] {
        let ((m1, s1), (m2, s2)) = (mean_se(ours), mean_se(theirs));
        let z = (m1 - m2).abs() / (s1 * s1 + s2 * s2).sqrt().max(1e-12);
        println!("{game} {what}: ours {m1:.3} ± {s1:.3}, package {m2:.3} ± {s2:.3}, z = {z:.2}");
        ensure!(
            z < 5.0,
            "{game}: mean {what} differs by {z:.1} standard errors"
        );
    }
    Ok(())
}

#[test]
fn breakout_frames_agree_with_the_package() -> Result<()> {
    // The start's one random draw: the ball on the left (column 0) or the right.
    for policy in ["random", "track"] {
        frames_agree("breakout", policy, |frame0| {
            let left = frame0.contains(&((3 * 10) * 4 + 1));
            Breakout::start(left)
        })?;
    }
    Ok(())
}

#[test]
fn space_invaders_frames_agree_with_the_package() -> Result<()> {
    for policy in ["random", "aim"] {
        frames_agree("space_invaders", policy, |_| SpaceInvaders::start(true))?;
    }
    Ok(())
}

#[test]
fn space_invaders_random_play_statistics_agree_with_the_package() -> Result<()> {
    statistics_agree("space_invaders", "minatar:space_invaders", 1000)
}

#[test]
fn breakout_random_play_statistics_agree_with_the_package() -> Result<()> {
    statistics_agree("breakout", "minatar:breakout", 3000)
}

#[test]
fn minatar_ids_and_spaces() -> Result<()> {
    for (id, n) in [
        ("minatar:breakout", 6),
        ("minatar:breakout-minimal", 3),
        ("MinAtar/Breakout-v0", 6),
        ("MinAtar/Breakout-v1", 3),
    ] {
        let env = rat_envs::make_env(id)?;
        assert_eq!(env.action_space(), rat_envs::Space::Discrete { n }, "{id}");
        assert_eq!(env.observation_space().flat_dim(), 400, "{id}");
    }
    // Minimal actions map to the full set: right moves the paddle right.
    let mut env = MinAtar::with_sticky("minatar:breakout-minimal", Breakout::default(), true, 0.0);
    let mut obs = vec![0.0; 400];
    env.reset(Some(1), &mut obs)?;
    env.step(&[2.0], &mut obs)?;
    assert_eq!(obs[(9 * 10 + 5) * 4], 1.0, "paddle moved to column 5");
    assert!(
        env.step(&[3.0], &mut obs).is_err(),
        "action 3 is outside the minimal set"
    );
    Ok(())
}
