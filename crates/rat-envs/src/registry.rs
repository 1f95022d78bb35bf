//! Environments by name.

use crate::classic;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::vec_env::VecEnv;

/// The reference's short names and the Gymnasium ids they stand for (v4, as the published runs).
const SHORT_NAMES: &[(&str, &str)] = &[
    ("hopper", "Hopper-v4"),
    ("halfcheetah", "HalfCheetah-v4"),
    ("walker2d", "Walker2d-v4"),
    ("ant", "Ant-v4"),
    ("humanoid", "Humanoid-v4"),
    ("humanoidstandup", "HumanoidStandup-v4"),
    ("reacher", "Reacher-v4"),
    ("swimmer", "Swimmer-v4"),
    ("invertedpendulum", "InvertedPendulum-v4"),
    ("inverteddoublependulum", "InvertedDoublePendulum-v4"),
    ("cartpole", "CartPole-v1"),
    ("pendulum", "Pendulum-v1"),
    ("acrobot", "Acrobot-v1"),
    ("mountaincar", "MountainCar-v0"),
    ("mountaincarcontinuous", "MountainCarContinuous-v0"),
];

/// The MuJoCo task ids, available with the `mujoco` feature and the fetched library.
pub(crate) const MUJOCO_IDS: &[&str] = &[
    "Hopper-v4",
    "Hopper-v5",
    "HalfCheetah-v4",
    "HalfCheetah-v5",
    "Walker2d-v4",
    "Walker2d-v5",
    "Ant-v4",
    "Ant-v5",
    "Humanoid-v4",
    "Humanoid-v5",
    "HumanoidStandup-v4",
    "HumanoidStandup-v5",
    "Reacher-v4",
    "Reacher-v5",
    "Swimmer-v4",
    "Swimmer-v5",
    "InvertedPendulum-v4",
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v4",
    "InvertedDoublePendulum-v5",
];

/// How to get MuJoCo, for the one-line error of a build without it.
#[cfg(not(feature = "mujoco"))]
pub(crate) const MUJOCO_HELP: &str =
    "run scripts/fetch-mujoco.sh once, then build with `--features mujoco`";

/// Every name [`make`] accepts: short names and full ids.
pub fn known_ids() -> Vec<String> {
    let mut ids: Vec<String> = SHORT_NAMES.iter().map(|(s, _)| s.to_string()).collect();
    ids.extend(classic::IDS.iter().map(|s| s.to_string()));
    ids.extend(MUJOCO_IDS.iter().map(|s| s.to_string()));
    ids.extend(crate::minatar::IDS.iter().map(|s| s.to_string()));
    ids.extend(crate::procgen::GAMES.iter().map(|g| format!("procgen:{g}")));
    ids
}

/// The full id for a short name or id (case-sensitive ids, lower-case short names).
pub fn resolve_id(name: &str) -> Result<&'static str> {
    if let Some((_, id)) = SHORT_NAMES.iter().find(|(s, _)| *s == name) {
        return Ok(id);
    }
    if let Some(id) = classic::IDS
        .iter()
        .chain(MUJOCO_IDS)
        .chain(crate::minatar::IDS)
        .find(|id| **id == name)
    {
        return Ok(id);
    }
    Err(Error::UnknownEnv {
        name: name.to_string(),
        known: known_ids(),
    })
}

/// One environment by name, with its time limit applied. Procgen's games exist only as
/// batches: make them with [`make`].
pub fn make_env(name: &str) -> Result<Box<dyn Env>> {
    if crate::procgen::parse_id(name).is_some() {
        return Err(Error::InvalidArgument {
            op: "make_env",
            msg: format!("{name} is stepped as a batch by its library: use rat_envs::make"),
        });
    }
    let id = resolve_id(name)?;
    if let Some(env) = classic::make(id) {
        return Ok(env);
    }
    if let Some(env) = crate::minatar::make(id) {
        return Ok(env);
    }
    make_mujoco(id)
}

#[cfg(feature = "mujoco")]
fn make_mujoco(id: &str) -> Result<Box<dyn Env>> {
    crate::mujoco::make(id)
}

#[cfg(not(feature = "mujoco"))]
fn make_mujoco(id: &str) -> Result<Box<dyn Env>> {
    Err(Error::MujocoUnavailable(format!(
        "{id} needs MuJoCo, which this build does not include: {MUJOCO_HELP}"
    )))
}

/// `num_envs` copies of `name` stepped together, seeded `seed, seed + 1, …` at the first reset.
///
/// Physics tasks get one worker per available core (at most one per environment). Classic control
/// steps in tens of nanoseconds, less than handing work to a thread costs, so it runs on the
/// calling thread; [`VecEnv::new`] takes any worker count. Procgen ids
/// (`procgen:<game>[?options]`, see [`crate::procgen`]) make one batch that the library steps
/// on its own threads.
pub fn make(name: &str, num_envs: usize, seed: u64) -> Result<VecEnv> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    make_on(name, num_envs, seed, cores)
}

/// [`make`] with physics tasks stepped by at most `cores` workers (a process that shares the
/// machine with others, such as one of several MPI ranks, takes its part of the cores).
pub fn make_on(name: &str, num_envs: usize, seed: u64, cores: usize) -> Result<VecEnv> {
    if crate::procgen::parse_id(name).is_some() {
        let batch = crate::procgen::Procgen::from_id(name, num_envs)?;
        return Ok(VecEnv::from_batch(Box::new(batch), seed));
    }
    let id = resolve_id(name)?;
    let envs = (0..num_envs)
        .map(|_| make_env(id))
        .collect::<Result<Vec<_>>>()?;
    let workers = if classic::IDS.contains(&id) || crate::minatar::IDS.contains(&id) {
        1
    } else {
        cores.clamp(1, num_envs.max(1))
    };
    VecEnv::new(envs, workers, seed)
}
