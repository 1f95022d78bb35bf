//! Parity of the built-in classic-control environments with Gymnasium 1.4.0 itself.
//!
//! `tests/parity/classic.py` runs Gymnasium's environments (through `gymnasium.make`, so with
//! Gymnasium's time limits) and prints each episode's initial state, actions, observations,
//! rewards and flags. Each test injects Gymnasium's initial state into the Rust environment,
//! replays the same actions and requires the same observations (float32, to 1e-6 relative),
//! rewards (to 1e-9) and terminated/truncated flags, over several episodes that end both by
//! termination and by the time limit.
//!
//! The Python comes from `RAT_PARITY_PYTHON` (a virtual environment with
//! `gymnasium==1.4.0`); without it the tests print a line saying they were skipped and pass (and fail under
//! `CI=true`).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use rat_envs::classic::{Acrobot, CartPole, MountainCar, MountainCarContinuous, Pendulum};
use rat_envs::{Env, TimeLimit};
use serde::Deserialize;

/// Observations are float32: equal to within 1e-6 relative to their magnitude (at least 1).
const OBS_TOL: f64 = 1e-6;
const REWARD_TOL: f64 = 1e-9;

/// Runs the reference script on `spec`; `None` (and a printed line) when no Python is set.
fn reference(spec: &str) -> Result<Option<Vec<Episode>>> {
    let Some(python) = std::env::var_os("RAT_PARITY_PYTHON") else {
        rat_envs::testing::skip("set RAT_PARITY_PYTHON (scripts/parity-venv.sh creates it)")?;
        return Ok(None);
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parity/classic.py");
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
    ensure!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let episodes = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(episodes))
}

/// One episode of the reference script's output (one JSON object per line).
#[derive(Deserialize)]
struct Episode {
    seed: u64,
    state0: Vec<f64>,
    obs0: Vec<f64>,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    action: Vec<f64>,
    obs: Vec<f64>,
    reward: f64,
    terminated: bool,
    truncated: bool,
}

/// What the parity check needs of a concrete environment besides [`Env`].
struct Replay<E> {
    set_state: fn(&mut E, &[f64]) -> rat_envs::Result<()>,
    state: fn(&E) -> Vec<f64>,
    observe: fn(&E, &mut [f64]) -> rat_envs::Result<()>,
}

/// Totals over a run, to show what was covered.
#[derive(Debug, Default)]
struct Coverage {
    steps: usize,
    terminated: usize,
    truncated: usize,
    max_obs_err: f64,
    max_reward_err: f64,
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

/// Replays every episode of the reference run on `env` and compares step by step.
fn check<E: Env>(mut env: TimeLimit<E>, replay: Replay<E>, spec: &str) -> Result<Option<Coverage>> {
    let Some(episodes) = reference(spec)? else {
        return Ok(None);
    };
    ensure!(!episodes.is_empty(), "the reference produced no episodes");
    let dim = env.observation_space().flat_dim();
    let mut obs = vec![0.0; dim];
    let mut cov = Coverage::default();
    for (e, ep) in episodes.iter().enumerate() {
        env.reset(Some(ep.seed), &mut obs)?;
        (replay.set_state)(env.inner_mut(), &ep.state0)?;
        ensure!(
            (replay.state)(env.inner()) == ep.state0,
            "episode {e}: state() does not return the injected state"
        );
        (replay.observe)(env.inner(), &mut obs)?;
        for (i, (a, b)) in obs.iter().zip(&ep.obs0).enumerate() {
            ensure!(
                close(*a, *b, OBS_TOL),
                "episode {e}: initial obs[{i}] = {a}, Gymnasium {b}"
            );
        }
        for (t, step) in ep.steps.iter().enumerate() {
            let action: Vec<f32> = step.action.iter().map(|a| *a as f32).collect();
            let got = env
                .step(&action, &mut obs)
                .with_context(|| format!("episode {e} step {t}"))?;
            let want_obs = &step.obs;
            ensure!(
                want_obs.len() == dim,
                "episode {e} step {t}: Gymnasium obs has {} values",
                want_obs.len()
            );
            for (i, (a, b)) in obs.iter().zip(want_obs).enumerate() {
                cov.max_obs_err = cov.max_obs_err.max((a - b).abs());
                if !close(*a, *b, OBS_TOL) {
                    bail!(
                        "episode {e} step {t} (action {action:?}): obs[{i}] = {a}, Gymnasium {b}\n  rust {obs:?}\n  gym  {want_obs:?}"
                    );
                }
            }
            let reward = step.reward;
            cov.max_reward_err = cov.max_reward_err.max((got.reward - reward).abs());
            ensure!(
                close(got.reward, reward, REWARD_TOL),
                "episode {e} step {t}: reward {} vs Gymnasium {reward}",
                got.reward
            );
            let (term, trunc) = (step.terminated, step.truncated);
            ensure!(
                got.terminated == term,
                "episode {e} step {t}: terminated {} vs Gymnasium {term}",
                got.terminated
            );
            ensure!(
                got.truncated == trunc,
                "episode {e} step {t}: truncated {} vs Gymnasium {trunc}",
                got.truncated
            );
            cov.steps += 1;
            cov.terminated += usize::from(term);
            cov.truncated += usize::from(trunc);
        }
    }
    println!("{}: {cov:?}", env.id());
    Ok(Some(cov))
}

/// Requires at least `steps` compared steps and the given numbers of terminal/truncated steps.
fn require(cov: Option<Coverage>, steps: usize, terminated: usize, truncated: usize) -> Result<()> {
    let Some(cov) = cov else { return Ok(()) };
    ensure!(cov.steps >= steps, "only {} steps compared", cov.steps);
    ensure!(
        cov.terminated >= terminated,
        "only {} terminations (want {terminated})",
        cov.terminated
    );
    ensure!(
        cov.truncated >= truncated,
        "only {} truncations (want {truncated})",
        cov.truncated
    );
    Ok(())
}

#[test]
fn cartpole_matches_gymnasium() -> Result<()> {
    let spec = r#"{"env": "CartPole-v1", "episodes": [
        {"seed": 0, "policy": "balance"},
        {"seed": 1, "policy": "balance"},
        {"seed": 2, "policy": "random", "action_seed": 2, "steps_after_done": 3},
        {"seed": 3, "policy": "random", "action_seed": 3},
        {"seed": 4, "policy": "random", "action_seed": 4},
        {"seed": 5, "actions": [[1], [1], [1], [1], [1], [1], [1], [1], [1], [1], [1], [1], [1], [1], [1], [1]]},
        {"seed": 6, "state": [2.35, 1.0, 0.0, 0.0], "actions": [[1], [1], [1], [1], [1]]},
        {"seed": 7, "state": [-2.35, -1.0, 0.0, 0.0], "actions": [[0], [0], [0], [0], [0]]},
        {"seed": 8, "state": [0.0, 0.0, 0.2, 0.5], "actions": [[1], [1], [1]]}
    ]}"#;
    let replay = Replay {
        set_state: CartPole::set_state,
        state: CartPole::state,
        observe: CartPole::observe,
    };
    let cov = check(
        TimeLimit::new(CartPole::new(), CartPole::MAX_EPISODE_STEPS),
        replay,
        spec,
    )?;
    require(cov, 1000, 3, 2)
}

#[test]
fn pendulum_matches_gymnasium() -> Result<()> {
    let spec = r#"{"env": "Pendulum-v1", "episodes": [
        {"seed": 0, "policy": "random", "action_seed": 0},
        {"seed": 1, "policy": "random", "action_seed": 1},
        {"seed": 2, "actions": [[2.0], [-2.0], [3.5], [-7.25], [0.0], [0.001], [1.9999999], [-2.0000002], [0.5]]},
        {"seed": 3, "state": [3.0, 7.95], "actions": [[2.0], [2.0], [2.0], [2.0], [2.0], [2.0], [2.0], [2.0]]},
        {"seed": 4, "state": [-3.0, -7.95], "actions": [[-2.5], [-2.0], [-2.0], [-2.0], [-2.0], [-2.0]]},
        {"seed": 5, "state": [12.0, 0.0], "actions": [[0.0], [1.0]]},
        {"seed": 6, "state": [-9.5, 0.3], "actions": [[0.0], [-1.0]]}
    ]}"#;
    let replay = Replay {
        set_state: Pendulum::set_state,
        state: Pendulum::state,
        observe: Pendulum::observe,
    };
    let cov = check(
        TimeLimit::new(Pendulum::new(), Pendulum::MAX_EPISODE_STEPS),
        replay,
        spec,
    )?;
    require(cov, 400, 0, 2)
}

#[test]
fn acrobot_matches_gymnasium() -> Result<()> {
    let spec = r#"{"env": "Acrobot-v1", "episodes": [
        {"seed": 0, "policy": "pump"},
        {"seed": 1, "policy": "pump"},
        {"seed": 2, "policy": "pump"},
        {"seed": 3, "policy": "random", "action_seed": 3},
        {"seed": 4, "state": [0.0, 0.0, 12.5, 28.0], "actions": [[2], [2], [0], [1], [2]]},
        {"seed": 5, "state": [3.1, -3.1, 3.0, -3.0], "actions": [[1], [1], [1]]},
        {"seed": 6, "state": [-3.1, 3.1, -3.0, 3.0], "actions": [[0], [0], [0]]}
    ]}"#;
    let replay = Replay {
        set_state: Acrobot::set_state,
        state: Acrobot::state,
        observe: Acrobot::observe,
    };
    let cov = check(
        TimeLimit::new(Acrobot::new(), Acrobot::MAX_EPISODE_STEPS),
        replay,
        spec,
    )?;
    require(cov, 600, 3, 1)
}

#[test]
fn mountain_car_matches_gymnasium() -> Result<()> {
    let (left, right) = (vec!["[0]"; 150], vec!["[2]"; 20]);
    let spec = format!(
        r#"{{"env": "MountainCar-v0", "episodes": [
        {{"seed": 0, "policy": "momentum"}},
        {{"seed": 1, "policy": "momentum"}},
        {{"seed": 2, "policy": "momentum"}},
        {{"seed": 3, "policy": "random", "action_seed": 3}},
        {{"seed": 4, "actions": [{}]}},
        {{"seed": 5, "state": [-1.15, -0.065], "policy": "momentum"}},
        {{"seed": 6, "state": [-0.8, 0.0695], "actions": [{}]}},
        {{"seed": 7, "state": [-0.3, -0.0695], "actions": [{}]}}
    ]}}"#,
        left.join(", "),
        right.join(", "),
        left[..20].join(", ")
    );
    let replay = Replay {
        set_state: MountainCar::set_state,
        state: MountainCar::state,
        observe: MountainCar::observe,
    };
    let cov = check(
        TimeLimit::new(MountainCar::new(), MountainCar::MAX_EPISODE_STEPS),
        replay,
        &spec,
    )?;
    require(cov, 400, 3, 1)
}

#[test]
fn mountain_car_continuous_matches_gymnasium() -> Result<()> {
    // 1.5 is clipped to a Python float 1.0, -1.0 stays a float32: both arithmetic paths.
    let (left, right) = (vec!["[-1.0]"; 150], vec!["[1.5]"; 20]);
    let spec = format!(
        r#"{{"env": "MountainCarContinuous-v0", "episodes": [
        {{"seed": 0, "policy": "momentum"}},
        {{"seed": 1, "policy": "momentum"}},
        {{"seed": 2, "policy": "momentum"}},
        {{"seed": 3, "policy": "random", "action_seed": 3}},
        {{"seed": 4, "actions": [{}]}},
        {{"seed": 5, "state": [-1.15, -0.065], "policy": "momentum"}},
        {{"seed": 6, "state": [-0.8, 0.0695], "actions": [{}]}},
        {{"seed": 7, "state": [-0.3, -0.0695], "actions": [{}]}}
    ]}}"#,
        left.join(", "),
        right.join(", "),
        left[..20].join(", ")
    );
    let replay = Replay {
        set_state: MountainCarContinuous::set_state,
        state: MountainCarContinuous::state,
        observe: MountainCarContinuous::observe,
    };
    let env = TimeLimit::new(
        MountainCarContinuous::new(),
        MountainCarContinuous::MAX_EPISODE_STEPS,
    );
    let cov = check(env, replay, &spec)?;
    require(cov, 1000, 3, 1)
}
