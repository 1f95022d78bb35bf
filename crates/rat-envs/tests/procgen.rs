//! Procgen over its prebuilt library (`scripts/fetch-procgen.sh`). Without the library the tests
//! print a line saying they were skipped and pass (`procgen_missing.rs` checks that error).

use anyhow::{Result, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_envs::procgen::{DistributionMode, ProcgenOptions};
use rat_envs::{Space, VecEnv};

fn available() -> Result<bool> {
    if rat_envs::procgen::is_fetched() {
        return Ok(true);
    }
    rat_envs::testing::skip("Procgen is not fetched (scripts/fetch-procgen.sh)")?;
    Ok(false)
}

/// Every observation of a run, and its finished episodes as (return, length).
type Played = (Vec<Vec<f64>>, Vec<(f64, usize)>);

/// Plays `steps` steps of seeded random actions; returns every observation and the episodes.
fn play(env: &mut VecEnv, steps: usize, seed: u64) -> Result<Played> {
    let n = env.num_envs();
    let mut buf = env.buffers();
    env.reset(&mut buf.obs)?;
    let mut frames = vec![buf.obs.clone()];
    let mut episodes = Vec::new();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..steps {
        let actions: Vec<f32> = (0..n).map(|_| rng.random_range(0..15) as f32).collect();
        env.step(&actions, &mut buf)?;
        frames.push(buf.obs.clone());
        episodes.extend(buf.episodes().map(|(_, r, l)| (r, l)));
    }
    Ok((frames, episodes))
}

#[test]
fn coinrun_runs_with_images_actions_and_episodes() -> Result<()> {
    if !available()? {
        return Ok(());
    }
    let mut env = rat_envs::make("procgen:coinrun?threads=2", 4, 7)?;
    assert_eq!(env.id(), "procgen:coinrun?threads=2");
    assert_eq!(env.num_envs(), 4);
    assert_eq!(env.workers(), 2);
    assert_eq!(env.action_space(), &Space::Discrete { n: 15 });
    assert_eq!(env.observation_space().flat_dim(), 64 * 64 * 3);
    assert_eq!(env.image_shape(), Some([64, 64, 3]));
    let (frames, episodes) = play(&mut env, 1200, 1)?;
    let first = &frames[0];
    ensure!(
        first.iter().all(|v| (0.0..=1.0).contains(v)),
        "pixels in [0, 1]"
    );
    let distinct = first[..64 * 64 * 3]
        .iter()
        .map(|v| (v * 255.0).round() as u32)
        .collect::<std::collections::BTreeSet<_>>();
    ensure!(
        distinct.len() > 20,
        "a real picture, not a blank frame ({} values)",
        distinct.len()
    );
    ensure!(frames[1] != frames[0], "the picture changes when acting");
    // CoinRun's episodes last at most 1000 steps and pay 10 for the coin, else 0.
    ensure!(!episodes.is_empty(), "episodes finish within 1200 steps");
    for (r, l) in &episodes {
        ensure!(*r == 0.0 || *r == 10.0, "CoinRun return {r}");
        ensure!((1..=1000).contains(l), "CoinRun length {l}");
    }
    println!(
        "coinrun: {} episodes, e.g. {:?}",
        episodes.len(),
        &episodes[..episodes.len().min(5)]
    );
    Ok(())
}

#[test]
fn seeds_and_level_options_reach_the_library() -> Result<()> {
    if !available()? {
        return Ok(());
    }
    let run = |id: &str, seed: u64| -> Result<Vec<Vec<f64>>> {
        let mut env = rat_envs::make(id, 3, seed)?;
        Ok(play(&mut env, 50, 3)?.0)
    };
    let a = run("procgen:starpilot", 11)?;
    ensure!(
        a == run("procgen:starpilot", 11)?,
        "the same seed replays the same frames"
    );
    ensure!(
        a != run("procgen:starpilot", 12)?,
        "another seed gives other levels"
    );
    // One level: every environment starts in the same picture; two levels seeded apart differ.
    let d = 64 * 64 * 3;
    let one = run("procgen:coinrun?num_levels=1&start_level=5", 1)?;
    ensure!(
        one[0][..d] == one[0][d..2 * d] && one[0][..d] == one[0][2 * d..],
        "num_levels=1"
    );
    let other = run("procgen:coinrun?num_levels=1&start_level=6", 1)?;
    ensure!(one[0][..d] != other[0][..d], "start_level picks the level");
    Ok(())
}

#[test]
fn options_and_actions_are_checked() -> Result<()> {
    let o = ProcgenOptions::parse("distribution_mode=hard&num_levels=200&start_level=3&threads=0")?;
    assert_eq!(o.distribution_mode, DistributionMode::Hard);
    assert_eq!((o.num_levels, o.start_level, o.threads), (200, 3, 0));
    assert_eq!(ProcgenOptions::parse("")?, ProcgenOptions::default());
    for bad in [
        "procgen:nosuchgame",
        "procgen:coinrun?distribution_mode=medium",
        "procgen:coinrun?levels=3",
        "procgen:coinrun?num_levels=-1",
        "procgen:coinrun?center_agent",
    ] {
        let err = rat_envs::make(bad, 1, 0).err().map(|e| e.to_string());
        ensure!(err.is_some(), "{bad} must be refused");
        println!("{bad}: {}", err.unwrap_or_default());
    }
    ensure!(
        rat_envs::make_env("procgen:coinrun").is_err(),
        "Procgen has no single-environment form"
    );
    ensure!(
        rat_envs::known_ids()
            .iter()
            .any(|i| i == "procgen:starpilot")
    );
    if !available()? {
        return Ok(());
    }
    let mut env = rat_envs::make("procgen:bigfish", 2, 0)?;
    let mut buf = env.buffers();
    env.reset(&mut buf.obs)?;
    for bad in [[0.0, 15.0], [0.5, 1.0], [-1.0, 0.0]] {
        ensure!(
            env.step(&bad, &mut buf).is_err(),
            "action {bad:?} must be refused"
        );
    }
    ensure!(
        env.step(&[0.0, 1.0, 2.0], &mut buf).is_err(),
        "wrong action count"
    );
    env.step(&[14.0, 4.0], &mut buf)?;
    Ok(())
}
