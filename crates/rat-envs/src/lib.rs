//! # rat-envs
//!
//! Reinforcement-learning environments that know nothing about tensors: plain `f64`
//! observations and `f32` actions in caller-provided buffers, batches stepped together by a
//! threaded vectoriser with auto-reset, Gymnasium's terminated/truncated split, the final
//! observation of a finished episode kept for bootstrapping, and episode statistics.
//!
//! * [`Env`] — one environment; [`TimeLimit`] truncates its episodes, [`EpisodeStats`] records
//!   their returns and lengths;
//! * [`VecEnv`] — n environments stepped together on a worker pool;
//! * [`make`] / [`make_env`] — the registry by name (`CartPole-v1`, `hopper`, `Hopper-v5`, …);
//! * [`BatchEnv`] — a batch its library steps (Procgen), behind the same `VecEnv`;
//! * [`minatar`] — the five MinAtar games, built in;
//! * [`procgen`] — the Procgen games over their prebuilt library (`scripts/fetch-procgen.sh`);
//! * [`classic`] — CartPole, Pendulum, Acrobot, MountainCar(Continuous), built in;
//! * `mujoco` (cargo feature `mujoco`) — the ten Gymnasium MuJoCo tasks, v4 and v5.
//!
//! ```
//! let mut envs = rat_envs::make("CartPole-v1", 4, 0)?;
//! let mut buf = envs.buffers();
//! envs.reset(&mut buf.obs)?;
//! envs.step(&[0.0, 1.0, 0.0, 1.0], &mut buf)?;
//! assert_eq!(buf.obs.len(), 4 * 4);
//! # Ok::<(), rat_envs::Error>(())
//! ```

#![warn(missing_docs)]

mod batch;
pub mod classic;
mod env;
mod error;
pub mod minatar;
#[cfg(feature = "mujoco")]
pub mod mujoco;
pub mod procgen;
mod registry;
pub mod render;
mod space;
pub mod testing;
mod vec_env;

pub use batch::BatchEnv;
pub use env::{Env, EpisodeStats, Step, TimeLimit};
pub use error::{Error, Result};
pub use registry::{known_ids, make, make_env, make_on, resolve_id};
pub use render::Frame;
pub use space::Space;
pub use vec_env::{StepBuffers, VecEnv};
