//! MinAtar against the Python package (`minatar==1.0.15`) as a black box:
//!
//! * frames: with sticky actions off, the Python game plays random actions; the Rust game starts
//!   from the same initial frame (the only random draw of the deterministic games' starts) and
//!   replays the actions; every frame, reward and terminal flag must agree;
//! * states (Asterix, Freeway, Seaquest, whose games draw random numbers during play): the
//!   Python game plays random actions with sticky actions off and reports, after every step, its
//!   full state read from its public attributes and whether it drew random numbers. The Rust
//!   game starts from the package's initial state and replays the actions; on every step
//!   without a draw the frame, reward, terminal flag and the whole game state (every position,
//!   timer and speed) must agree. A step with a draw (a spawn; Freeway's new speeds after a
//!   crossing) cannot be replayed with another RNG, so there the Rust game takes over the
//!   package's state and its frame is checked against the package's; those steps' own moves are
//!   not compared;
//! * statistics: with the wrapper's defaults (sticky 0.1, ramping), the mean return and length
//!   of many random-policy episodes agree within sampling error (5 standard errors).
//!
//! The Python comes from `RAT_PARITY_PYTHON` (`scripts/parity-venv.sh` installs minatar there);
//! without it the tests print a line saying they were skipped and pass (and fail under
//! `CI=true`).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_envs::Env;
use rat_envs::minatar::{
    Asterix, Breakout, Bullet, Car, Entity, Freeway, Game, MinAtar, Seaquest, SpaceInvaders,
    Swimmer,
};
use serde::Deserialize;
use serde_json::Value;

fn reference(spec: &str) -> Result<Option<Vec<String>>> {
    let Some(python) = std::env::var_os("RAT_PARITY_PYTHON") else {
        rat_envs::testing::skip("set RAT_PARITY_PYTHON (scripts/parity-venv.sh creates it)")?;
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
            rat_envs::testing::skip(&format!(
                "minatar is not installed in {python:?} (scripts/parity-venv.sh)"
            ))?;
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

#[derive(Deserialize)]
struct StateEpisode {
    frame0: Vec<usize>,
    state0: Value,
    steps: Vec<StateStep>,
}

#[derive(Deserialize)]
struct StateStep {
    action: usize,
    reward: f64,
    terminal: bool,
    frame: Vec<usize>,
    drew: bool,
    state: Value,
}

fn int(v: &Value, key: &str) -> Result<i32> {
    let n = v[key].as_i64().with_context(|| format!("{key} in {v}"))?;
    Ok(i32::try_from(n)?)
}

fn flag(v: &Value, key: &str) -> Result<bool> {
    v[key].as_bool().with_context(|| format!("{key} in {v}"))
}

fn list<T>(v: &Value, key: &str, f: impl Fn(&Value) -> Result<T>) -> Result<Vec<T>> {
    let items = v[key].as_array().with_context(|| format!("{key} in {v}"))?;
    items.iter().map(f).collect()
}

fn asterix_state(v: &Value) -> Result<Asterix> {
    let lanes = list(v, "lanes", |e| {
        Ok((!e.is_null()).then_some(()).map(|()| -> Result<Entity> {
            Ok(Entity {
                x: int(e, "x")?,
                right: flag(e, "right")?,
                gold: flag(e, "gold")?,
            })
        }))
    })?
    .into_iter()
    .map(Option::transpose)
    .collect::<Result<Vec<_>>>()?;
    let player = v["player"].as_array().context("player")?;
    let coord =
        |i: usize| -> Result<i32> { Ok(i32::try_from(player[i].as_i64().context("player")?)?) };
    Ok(Asterix {
        player: (coord(0)?, coord(1)?),
        lanes: lanes.try_into().map_err(|_| anyhow::anyhow!("8 lanes"))?,
        spawn_speed: int(v, "spawn_speed")?,
        spawn_timer: int(v, "spawn_timer")?,
        move_speed: int(v, "move_speed")?,
        move_timer: int(v, "move_timer")?,
        ramp_timer: int(v, "ramp_timer")?,
        ramp_index: int(v, "ramp_index")? as u32,
        ramping: true,
    })
}

fn freeway_state(v: &Value) -> Result<Freeway> {
    let cars = list(v, "cars", |c| {
        Ok(Car {
            x: int(c, "x")?,
            timer: int(c, "timer")?,
            speed: int(c, "speed")?,
        })
    })?;
    Ok(Freeway {
        pos: int(v, "pos")?,
        move_timer: int(v, "move_timer")?,
        cars: cars.try_into().map_err(|_| anyhow::anyhow!("8 cars"))?,
        terminate_timer: int(v, "terminate_timer")?,
    })
}

fn seaquest_state(v: &Value) -> Result<Seaquest> {
    let bullet = |b: &Value| -> Result<Bullet> {
        Ok(Bullet {
            x: int(b, "x")?,
            y: int(b, "y")?,
            right: flag(b, "right")?,
        })
    };
    let swimmer = |e: &Value| -> Result<Swimmer> {
        Ok(Swimmer {
            x: int(e, "x")?,
            y: int(e, "y")?,
            right: flag(e, "right")?,
            move_timer: int(e, "move_timer")?,
            shot_timer: int(e, "shot_timer")?,
        })
    };
    Ok(Seaquest {
        sub_x: int(v, "sub_x")?,
        sub_y: int(v, "sub_y")?,
        sub_right: flag(v, "sub_right")?,
        oxygen: int(v, "oxygen")?,
        divers_held: int(v, "divers_held")?,
        f_bullets: list(v, "f_bullets", bullet)?,
        e_bullets: list(v, "e_bullets", bullet)?,
        fish: list(v, "fish", swimmer)?,
        subs: list(v, "subs", swimmer)?,
        divers: list(v, "divers", swimmer)?,
        e_spawn_speed: int(v, "e_spawn_speed")?,
        e_spawn_timer: int(v, "e_spawn_timer")?,
        d_spawn_timer: int(v, "d_spawn_timer")?,
        move_speed: int(v, "move_speed")?,
        ramp_index: int(v, "ramp_index")? as u32,
        shot_timer: int(v, "shot_timer")?,
        surface: flag(v, "surface")?,
        ramping: true,
    })
}

/// Seaquest's lists in a canonical order (the order of objects is not part of the game).
fn sorted(mut g: Seaquest) -> Seaquest {
    g.f_bullets.sort_by_key(|b| (b.y, b.x, b.right));
    g.e_bullets.sort_by_key(|b| (b.y, b.x, b.right));
    for l in [&mut g.fish, &mut g.subs, &mut g.divers] {
        l.sort_by_key(|e| (e.y, e.x, e.right, e.move_timer, e.shot_timer));
    }
    g
}

/// Replays the package's `states` episodes of `game` (see the module docs); `spec_extra` adds
/// fields to the reference spec (e.g. a `setup`); `canon` puts a state in a canonical form.
fn states_agree<G: Game + PartialEq + Clone + std::fmt::Debug>(
    game: &str,
    episodes: usize,
    max_steps: usize,
    spec_extra: &str,
    state: impl Fn(&Value) -> Result<G>,
    canon: impl Fn(G) -> G,
) -> Result<()> {
    let spec = format!(
        r#"{{"game": "{game}", "mode": "states", "episodes": {episodes}, "seed": 17, "max_steps": {max_steps}{spec_extra}}}"#
    );
    let Some(lines) = reference(&spec)? else {
        return Ok(());
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let (mut compared, mut taken_over, mut rewards) = (0, 0, 0.0);
    for (e, line) in lines.iter().enumerate() {
        let ep: StateEpisode = serde_json::from_str(line)?;
        let mut g = state(&ep.state0)?;
        let mut obs = vec![0.0; 100 * g.channels()];
        g.render(&mut obs);
        ensure!(
            cells(&obs) == ep.frame0,
            "{game} episode {e}: initial frames differ"
        );
        for (t, s) in ep.steps.iter().enumerate() {
            let expected = canon(state(&s.state)?);
            if s.drew {
                g = expected;
                taken_over += 1;
            } else {
                let before = format!("{g:?}");
                let (r, done) = g.act(s.action, &mut rng);
                g = canon(g);
                ensure!(
                    r == s.reward && done == s.terminal && g == expected,
                    "{game} episode {e} step {t} (action {}) from {before}:\n got reward {r} \
                     terminal {done} {g:?}\n expected reward {} terminal {} {expected:?}",
                    s.action,
                    s.reward,
                    s.terminal
                );
                compared += 1;
                rewards += r;
            }
            obs.fill(0.0);
            g.render(&mut obs);
            ensure!(
                cells(&obs) == s.frame,
                "{game} episode {e} step {t}: frame {:?}, expected {:?}",
                cells(&obs),
                s.frame
            );
        }
    }
    println!(
        "{game} [random{spec_extra}]: {} episodes, {compared} steps agree in frame and state \
         (reward {rewards} among them), {taken_over} steps with a random draw took over the \
         package's state",
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
fn asterix_states_agree_with_the_package() -> Result<()> {
    // Dodging keeps episodes going into the difficulty ramping (faster spawns and moves).
    for extra in ["", r#", "policy": "dodge""#] {
        states_agree("asterix", 40, 3000, extra, asterix_state, |g| g)?;
    }
    Ok(())
}

#[test]
fn freeway_states_agree_with_the_package() -> Result<()> {
    // Mostly up: many crossings (new speeds) and collisions.
    for extra in ["", r#", "policy": "up""#] {
        states_agree("freeway", 3, 3000, extra, freeway_state, |g| g)?;
    }
    Ok(())
}

#[test]
fn seaquest_states_agree_with_the_package() -> Result<()> {
    // Random play mostly ends by surfacing without divers; diving play collects divers and
    // surfaces with them; starting with 5 divers held reaches full-load surfacings (rewards,
    // the −1 quirk) and repeated ramping.
    for extra in [
        "",
        r#", "policy": "dive""#,
        r#", "policy": "dive", "setup": {"diver_count": 5}"#,
    ] {
        states_agree("seaquest", 40, 3000, extra, seaquest_state, sorted)?;
    }
    Ok(())
}

#[test]
fn asterix_random_play_statistics_agree_with_the_package() -> Result<()> {
    statistics_agree("asterix", "minatar:asterix", 20000)
}

#[test]
fn freeway_random_play_statistics_agree_with_the_package() -> Result<()> {
    statistics_agree("freeway", "minatar:freeway", 400)
}

#[test]
fn seaquest_random_play_statistics_agree_with_the_package() -> Result<()> {
    statistics_agree("seaquest", "minatar:seaquest", 20000)
}

#[test]
fn minatar_ids_and_spaces() -> Result<()> {
    for (id, n, c) in [
        ("minatar:asterix", 6, 4),
        ("minatar:asterix-minimal", 5, 4),
        ("MinAtar/Asterix-v0", 6, 4),
        ("MinAtar/Asterix-v1", 5, 4),
        ("minatar:freeway", 6, 7),
        ("minatar:freeway-minimal", 3, 7),
        ("MinAtar/Freeway-v0", 6, 7),
        ("MinAtar/Freeway-v1", 3, 7),
        ("minatar:seaquest", 6, 10),
        ("minatar:seaquest-minimal", 6, 10),
        ("MinAtar/Seaquest-v0", 6, 10),
        ("MinAtar/Seaquest-v1", 6, 10),
    ] {
        let env = rat_envs::make_env(id)?;
        assert_eq!(env.action_space(), rat_envs::Space::Discrete { n }, "{id}");
        assert_eq!(env.observation_space().flat_dim(), 100 * c, "{id}");
        assert_eq!(env.image_shape(), Some([10, 10, c]), "{id}");
    }
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
