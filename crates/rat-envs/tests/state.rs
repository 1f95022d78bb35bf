//! Saved environment states: a batch restored from another's state (into environments seeded
//! differently) steps exactly as the original does, observation for observation, for every
//! built-in environment (and every MuJoCo task with the `mujoco` feature), whether the state was
//! saved right after the first reset or in the middle of episodes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_envs::{Space, StepBuffers};

fn actions(space: &Space, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    match space {
        Space::Discrete { n: k } => (0..n).map(|_| rng.random_range(0..*k) as f32).collect(),
        Space::Box { low, high } => (0..n)
            .flat_map(|_| {
                low.iter()
                    .zip(high)
                    .map(|(l, h)| rng.random_range(l.max(-1.0)..=h.min(1.0)) as f32)
                    .collect::<Vec<_>>()
            })
            .collect(),
    }
}

fn same(a: &StepBuffers, b: &StepBuffers) -> bool {
    let bits = |x: &[f64]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    bits(&a.obs) == bits(&b.obs)
        && bits(&a.rewards) == bits(&b.rewards)
        && a.terminated == b.terminated
        && a.truncated == b.truncated
        && a.finished == b.finished
        && final_rows(a) == final_rows(b)
}

/// The final observations of the environments whose episode ended at this step (the other rows
/// hold whatever an earlier episode left, which is no state).
fn final_rows(x: &StepBuffers) -> Vec<u64> {
    let d = x.final_obs.len() / x.rewards.len();
    (0..x.rewards.len())
        .filter(|&i| x.terminated[i] || x.truncated[i])
        .flat_map(|i| x.final_obs[i * d..(i + 1) * d].iter().map(|v| v.to_bits()))
        .collect()
}

/// Steps `id` for `before` steps, saves, restores into a differently seeded batch, then steps
/// both 300 times with the same actions.
fn replays(id: &str, before: usize) -> anyhow::Result<()> {
    let n = 3;
    let mut a = rat_envs::make(id, n, 1)?;
    let mut buf_a = a.buffers();
    a.reset(&mut buf_a.obs)?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let space = a.action_space().clone();
    for _ in 0..before {
        a.step(&actions(&space, n, &mut rng), &mut buf_a)?;
    }
    let saved = a.save_state()?;
    // Through text, as a checkpoint stores it.
    let saved: serde_json::Value = serde_json::from_str(&saved.to_string())?;
    let mut b = rat_envs::make(id, n, 999)?;
    let mut buf_b = b.buffers();
    b.reset(&mut buf_b.obs)?;
    b.load_state(&saved)?;
    for t in 0..300 {
        let act = actions(&space, n, &mut rng);
        a.step(&act, &mut buf_a)?;
        b.step(&act, &mut buf_b)?;
        anyhow::ensure!(
            same(&buf_a, &buf_b),
            "{id}: saved after {before} steps, differs at step {t}"
        );
    }
    Ok(())
}

#[test]
fn classic_and_minatar_states_replay_exactly() -> anyhow::Result<()> {
    for id in [
        "CartPole-v1",
        "Pendulum-v1",
        "Acrobot-v1",
        "MountainCar-v0",
        "MountainCarContinuous-v0",
        "minatar:breakout",
        "minatar:space_invaders",
        "minatar:asterix",
        "minatar:freeway",
        "minatar:seaquest",
    ] {
        for before in [0, 37] {
            replays(id, before)?;
        }
    }
    Ok(())
}

#[cfg(feature = "mujoco")]
#[test]
fn mujoco_states_replay_exactly() -> anyhow::Result<()> {
    for id in [
        "Hopper-v4",
        "Walker2d-v5",
        "HalfCheetah-v4",
        "Ant-v4",
        "Humanoid-v4",
        "HumanoidStandup-v5",
        "Reacher-v4",
        "Swimmer-v4",
        "InvertedPendulum-v4",
        "InvertedDoublePendulum-v5",
    ] {
        for before in [0, 37] {
            replays(id, before)?;
        }
    }
    Ok(())
}

#[test]
fn a_state_of_another_environment_is_refused() -> anyhow::Result<()> {
    let mut a = rat_envs::make("CartPole-v1", 2, 0)?;
    let mut buf = a.buffers();
    a.reset(&mut buf.obs)?;
    let saved = a.save_state()?;
    let mut other = rat_envs::make("Acrobot-v1", 2, 0)?;
    assert!(other.load_state(&saved).is_err());
    let mut more = rat_envs::make("CartPole-v1", 3, 0)?;
    assert!(more.load_state(&saved).is_err());
    Ok(())
}
