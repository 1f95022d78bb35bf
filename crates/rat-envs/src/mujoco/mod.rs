//! The ten Gymnasium 1.4.0 MuJoCo tasks, v4 and v5, over the official MuJoCo 3.17.0 library
//! (cargo feature `mujoco`; `scripts/fetch-mujoco.sh` fetches the library and the model files).
//!
//! The physics is MuJoCo's, on Gymnasium's own XML files; the task logic (observation, reward,
//! termination, reset noise) is Gymnasium's, re-implemented operation by operation (one file per
//! task family) — including its quirks (v4 healthy reward on the terminal step, Reacher-v4's
//! reward from the previous state, float32 control costs, lagged body positions). Given the
//! same state (see [`MujocoEnv::set_state`]) and float32 actions, trajectories match Gymnasium's
//! (`tests/mujoco_parity.rs`). Reset noise has Gymnasium's distributions but its own generator.
//!
//! The model files are looked up in `$RAT_MUJOCO_DIR/assets`, else in the cache directory the
//! build used (`<workspace>/.mujoco/assets` by default).

mod env;
mod render;
mod sim;
mod tasks;

use std::path::PathBuf;

pub use env::MujocoEnv;
pub use render::{FAST_RENDER_SIZE, RENDER_SIZE};
pub use tasks::Version;

use crate::env::{Env, TimeLimit};
use crate::error::{Error, Result};
use render::CameraConfig;
use sim::Sim;
use tasks::Kind;

/// The MuJoCo version this crate's FFI was generated for (`mjVERSION_HEADER`).
pub const MUJOCO_VERSION: i32 = 3017000;

/// How to get the library and the model files.
const FETCH_HELP: &str =
    "run scripts/fetch-mujoco.sh (or set RAT_MUJOCO_DIR to its cache directory)";

/// One registered task: Gymnasium's defaults.
struct Spec {
    id: &'static str,
    kind: Kind,
    version: Version,
    xml: &'static str,
    frame_skip: usize,
    max_episode_steps: usize,
}

const fn spec(
    id: &'static str,
    kind: Kind,
    version: Version,
    xml: &'static str,
    frame_skip: usize,
) -> Spec {
    let max_episode_steps = if matches!(kind, Kind::Reacher) {
        50
    } else {
        1000
    };
    Spec {
        id,
        kind,
        version,
        xml,
        frame_skip,
        max_episode_steps,
    }
}

use Kind as K;
use Version::{V4, V5};

const SPECS: &[Spec] = &[
    spec("Hopper-v4", K::Hopper, V4, "hopper.xml", 4),
    spec("Hopper-v5", K::Hopper, V5, "hopper.xml", 4),
    spec("HalfCheetah-v4", K::HalfCheetah, V4, "half_cheetah.xml", 5),
    spec("HalfCheetah-v5", K::HalfCheetah, V5, "half_cheetah.xml", 5),
    spec("Walker2d-v4", K::Walker2d, V4, "walker2d.xml", 4),
    spec("Walker2d-v5", K::Walker2d, V5, "walker2d_v5.xml", 4),
    spec("Ant-v4", K::Ant, V4, "ant.xml", 5),
    spec("Ant-v5", K::Ant, V5, "ant.xml", 5),
    spec("Humanoid-v4", K::Humanoid, V4, "humanoid.xml", 5),
    spec("Humanoid-v5", K::Humanoid, V5, "humanoid.xml", 5),
    spec(
        "HumanoidStandup-v4",
        K::HumanoidStandup,
        V4,
        "humanoidstandup.xml",
        5,
    ),
    spec(
        "HumanoidStandup-v5",
        K::HumanoidStandup,
        V5,
        "humanoidstandup.xml",
        5,
    ),
    spec("Reacher-v4", K::Reacher, V4, "reacher.xml", 2),
    spec("Reacher-v5", K::Reacher, V5, "reacher.xml", 2),
    spec("Swimmer-v4", K::Swimmer, V4, "swimmer.xml", 4),
    spec("Swimmer-v5", K::Swimmer, V5, "swimmer.xml", 4),
    spec(
        "InvertedPendulum-v4",
        K::InvertedPendulum,
        V4,
        "inverted_pendulum.xml",
        2,
    ),
    spec(
        "InvertedPendulum-v5",
        K::InvertedPendulum,
        V5,
        "inverted_pendulum.xml",
        2,
    ),
    spec(
        "InvertedDoublePendulum-v4",
        K::InvertedDoublePendulum,
        V4,
        "inverted_double_pendulum.xml",
        5,
    ),
    spec(
        "InvertedDoublePendulum-v5",
        K::InvertedDoublePendulum,
        V5,
        "inverted_double_pendulum.xml",
        5,
    ),
];

/// The twenty task ids (`Hopper-v4`, `Hopper-v5`, …).
pub fn ids() -> impl Iterator<Item = &'static str> {
    SPECS.iter().map(|s| s.id)
}

/// A task by id, wrapped in its time limit (1000 steps; Reacher 50), as `gymnasium.make(id)`
/// with default arguments.
pub fn make(id: &str) -> Result<Box<dyn Env>> {
    Ok(Box::new(make_task(id)?))
}

/// As [`make`], but the concrete type, so that a caller can reach
/// [`MujocoEnv::set_state`] through [`TimeLimit::inner_mut`].
pub fn make_task(id: &str) -> Result<TimeLimit<MujocoEnv>> {
    let spec = SPECS
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| Error::UnknownEnv {
            name: id.to_string(),
            known: ids().map(str::to_string).collect(),
        })?;
    check_version()?;
    quiet_log_file();
    let xml = assets_dir().join(spec.xml);
    if !xml.is_file() {
        return Err(Error::MujocoUnavailable(format!(
            "{id}: model file {} not found: {FETCH_HELP}",
            xml.display()
        )));
    }
    let sim = Sim::load(&xml, spec.frame_skip)?;
    let task = spec.kind.build(spec.version, &sim)?;
    Ok(TimeLimit::new(
        MujocoEnv::new(spec.id, sim, task, CameraConfig::gymnasium(spec.kind)),
        spec.max_episode_steps,
    ))
}

/// Checks that the loaded library is MuJoCo 3.17.0 (struct layouts change between releases).
pub fn check_version() -> Result<()> {
    // SAFETY: mj_version reads a constant.
    let v = unsafe { mujoco_rs::mujoco_c::mj_version() };
    if v != MUJOCO_VERSION {
        return Err(Error::MujocoUnavailable(format!(
            "the loaded MuJoCo library is version {v}, this build needs {MUJOCO_VERSION} (3.17.0): {FETCH_HELP}"
        )));
    }
    Ok(())
}

/// Stops MuJoCo from appending its warnings (e.g. HalfCheetah's deprecated `settotalmass`) to
/// `MUJOCO_LOG.TXT` in the working directory; they are still printed.
fn quiet_log_file() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut config = mujoco_rs::wrappers::mj_logging::log_config();
        config.set_logto_file(false);
        // SAFETY: MuJoCo's log configuration is global; this runs once, before this crate has
        // created any model (every model comes from `make_task`, which waits for the `Once`),
        // so no MuJoCo call can read it concurrently.
        unsafe { mujoco_rs::wrappers::mj_logging::set_log_config(config) };
    });
}

/// Where the model files are: `$RAT_MUJOCO_DIR/assets`, else the build's cache directory.
pub fn assets_dir() -> PathBuf {
    let dir = std::env::var_os("RAT_MUJOCO_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| option_env!("RAT_MUJOCO_DEFAULT_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(".mujoco"));
    dir.join("assets")
}
