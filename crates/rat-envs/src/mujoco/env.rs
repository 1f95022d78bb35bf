//! [`MujocoEnv`]: one task over its own MuJoCo model and data.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::render::{CameraConfig, Renderer};
use super::sim::Sim;
use super::tasks::{Obs, Task};
use crate::env::{Env, Step, check_obs, continuous_action, from_state, to_state};
use crate::error::{Error, Result};
use crate::render::Detail;
use crate::space::Space;

/// A Gymnasium MuJoCo task (no time limit; [`super::make_task`] adds it). Reset noise comes from
/// the environment's own [`ChaCha8Rng`] (re-seeded by `reset(Some(seed))`, from entropy if never
/// seeded), so its numbers differ from NumPy's; [`MujocoEnv::set_state`] injects a state.
pub struct MujocoEnv {
    id: &'static str,
    sim: Sim,
    task: Box<dyn Task>,
    obs_dim: usize,
    action_space: Space,
    rng: Option<ChaCha8Rng>,
    /// Scratch for the reset state.
    qpos: Vec<f64>,
    qvel: Vec<f64>,
    /// How the current state was reached, so that a saved state can be recreated exactly,
    /// derived quantities included (see [`Env::save_state`] below).
    last: Option<LastOp>,
    /// Gymnasium's camera for this task, and the renderer, made at the first `render`.
    camera: CameraConfig,
    detail: Detail,
    renderer: Option<Renderer>,
}

/// The last operation on the simulation: replaying it from its starting point recreates every
/// array MuJoCo derives during it (the body positions a step leaves one step behind, the
/// constraint forces), which setting the integration state alone would not.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum LastOp {
    /// A reset to this qpos and qvel.
    Reset { qpos: Vec<f64>, qvel: Vec<f64> },
    /// A step with `action` from the integration state `before`.
    Step { before: Vec<f64>, action: Vec<f32> },
}

impl MujocoEnv {
    pub(crate) fn new(
        id: &'static str,
        sim: Sim,
        task: Box<dyn Task>,
        camera: CameraConfig,
    ) -> Self {
        // Gymnasium's action space is Box(ctrlrange, float32): bounds rounded to f32.
        let (low, high) = sim
            .ctrlrange()
            .iter()
            .map(|&(l, h)| (f64::from(l as f32), f64::from(h as f32)))
            .unzip();
        let obs_dim = task.obs_dim();
        let (qpos, qvel) = (vec![0.0; sim.nq], vec![0.0; sim.nv]);
        Self {
            id,
            sim,
            task,
            obs_dim,
            action_space: Space::Box { low, high },
            rng: None,
            qpos,
            qvel,
            last: None,
            camera,
            detail: Detail::Full,
            renderer: None,
        }
    }

    /// Gymnasium's `set_state`: writes `qpos` (length nq) and `qvel` (length nv) and runs
    /// `mj_forward`. Nothing else is reset (call `reset` first to start from `mj_resetData`).
    pub fn set_state(&mut self, qpos: &[f64], qvel: &[f64]) -> Result<()> {
        self.sim.set_state(qpos, qvel)
    }

    /// Writes the observation of the current state (as `_get_obs`).
    pub fn observe(&self, obs: &mut [f64]) -> Result<()> {
        check_obs("observe", obs, self.obs_dim)?;
        let mut out = Obs::new(obs);
        self.task.observe(&self.sim, &mut out)?;
        out.finish()
    }

    /// Joint positions (`data.qpos`).
    pub fn qpos(&self) -> &[f64] {
        self.sim.qpos()
    }

    /// Joint velocities (`data.qvel`).
    pub fn qvel(&self) -> &[f64] {
        self.sim.qvel()
    }

    /// Seconds of simulated time per step (`opt.timestep × frame_skip`).
    pub fn dt(&self) -> f64 {
        self.sim.dt()
    }
}

impl Env for MujocoEnv {
    fn id(&self) -> &str {
        self.id
    }

    fn observation_space(&self) -> Space {
        Space::unbounded(self.obs_dim)
    }

    fn action_space(&self) -> Space {
        self.action_space.clone()
    }

    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()> {
        check_obs("reset", obs, self.obs_dim)?;
        if let Some(seed) = seed {
            self.rng = Some(ChaCha8Rng::seed_from_u64(seed));
        }
        let rng = self
            .rng
            .get_or_insert_with(|| ChaCha8Rng::from_rng(&mut rand::rng()));
        self.sim.reset_data();
        self.qpos.copy_from_slice(self.sim.qpos0());
        self.qvel.fill(0.0);
        self.task.reset_noise(rng, &mut self.qpos, &mut self.qvel);
        self.sim.set_state(&self.qpos, &self.qvel)?;
        self.last = Some(LastOp::Reset {
            qpos: self.qpos.clone(),
            qvel: self.qvel.clone(),
        });
        self.observe(obs)
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Step> {
        let action = continuous_action(self.id, action, self.sim.nu)?;
        check_obs("step", obs, self.obs_dim)?;
        let before = self.sim.integration_state();
        let (reward, terminated) = self.task.step(&mut self.sim, action)?;
        self.last = Some(LastOp::Step {
            before,
            action: action.to_vec(),
        });
        self.observe(obs)?;
        Ok(Step {
            reward,
            terminated,
            truncated: false,
        })
    }

    /// A 480 x 480 frame from Gymnasium's camera for the task ([`super::render`]; 240 x 240 at
    /// [`Detail::Fast`]); the first call opens the EGL context.
    fn render(&mut self) -> Result<crate::Frame> {
        let renderer = match self.renderer.take() {
            Some(r) => r,
            None => {
                Renderer::new(&mut self.sim, self.camera, self.detail).map_err(|e| match e {
                    Error::MujocoUnavailable(msg) => {
                        Error::MujocoUnavailable(format!("{} cannot render: {msg}", self.id))
                    }
                    e => e,
                })?
            }
        };
        self.renderer.insert(renderer).render(&mut self.sim)
    }

    /// Gymnasium's `render_fps`: `round(1 / dt)` (Hopper 125, Humanoid 67).
    fn render_fps(&self) -> Option<f64> {
        Some((1.0 / self.sim.dt()).round())
    }

    /// [`Detail::Fast`] draws 240 x 240 frames without shadows or reflections (about four
    /// times faster on a software renderer).
    fn set_render_detail(&mut self, detail: Detail) {
        if detail != self.detail {
            // The frame size is the GL surface's and the effects the scene's: a new detail
            // makes a new renderer.
            self.renderer = None;
        }
        self.detail = detail;
    }

    /// The generator's position, the last operation and the integration state it led to.
    fn save_state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({
            "rng": to_state(&self.rng)?,
            "last": to_state(&self.last)?,
            "state": self.sim.integration_state(),
        }))
    }

    /// Replays the last operation from its starting point and checks that it arrives at the
    /// saved integration state, bit for bit.
    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.rng = from_state(&state["rng"])?;
        self.last = from_state(&state["last"])?;
        match &self.last {
            None => return Ok(()),
            Some(LastOp::Reset { qpos, qvel }) => {
                self.sim.reset_data();
                self.sim.set_state(qpos, qvel)?;
            }
            Some(LastOp::Step { before, action }) => {
                self.sim.set_integration_state(before)?;
                self.task.step(&mut self.sim, action)?;
            }
        }
        let want: Vec<f64> = from_state(&state["state"])?;
        let got = self.sim.integration_state();
        if got.len() != want.len()
            || got
                .iter()
                .zip(&want)
                .any(|(a, b)| a.to_bits() != b.to_bits())
        {
            return Err(Error::Mujoco(format!(
                "{}: the saved state did not replay exactly (another model file?)",
                self.id
            )));
        }
        Ok(())
    }
}
