//! Hopper, Walker2d, HalfCheetah and Swimmer: forward velocity of `qpos[0]` minus a float32
//! control cost; Hopper and Walker2d add a healthy reward and terminate when unhealthy.

use rand_chacha::ChaCha8Rng;

use super::{Obs, Task, Version, add_normal, add_uniform, ctrl_cost_f32, velocity};
use crate::error::Result;
use crate::mujoco::sim::Sim;

#[derive(Clone, Copy, PartialEq)]
enum Which {
    Hopper,
    Walker2d,
    HalfCheetah,
    Swimmer,
}

/// One of the four planar runners.
pub(crate) struct Planar {
    which: Which,
    version: Version,
    dt: f64,
    ctrl_cost_weight: f64,
    /// Leading qpos entries left out of the observation.
    skip: usize,
    /// Velocities are clipped to ±this in the observation.
    clip_qvel: Option<f64>,
    obs_dim: usize,
}

impl Planar {
    fn boxed(
        which: Which,
        version: Version,
        sim: &Sim,
        ctrl_cost_weight: f64,
        skip: usize,
        clip_qvel: Option<f64>,
    ) -> Box<dyn Task> {
        let obs_dim = sim.nq - skip + sim.nv;
        Box::new(Self {
            which,
            version,
            dt: sim.dt(),
            ctrl_cost_weight,
            skip,
            clip_qvel,
            obs_dim,
        })
    }

    /// Hopper (obs 11).
    pub(crate) fn hopper(version: Version, sim: &Sim) -> Box<dyn Task> {
        Self::boxed(Which::Hopper, version, sim, 1e-3, 1, Some(10.0))
    }

    /// Walker2d (obs 17; v5 loads `walker2d_v5.xml`).
    pub(crate) fn walker2d(version: Version, sim: &Sim) -> Box<dyn Task> {
        Self::boxed(Which::Walker2d, version, sim, 1e-3, 1, Some(10.0))
    }

    /// HalfCheetah (obs 17, never terminates).
    pub(crate) fn half_cheetah(sim: &Sim) -> Box<dyn Task> {
        Self::boxed(Which::HalfCheetah, Version::V5, sim, 0.1, 1, None)
    }

    /// Swimmer (obs 8, never terminates).
    pub(crate) fn swimmer(sim: &Sim) -> Box<dyn Task> {
        Self::boxed(Which::Swimmer, Version::V5, sim, 1e-4, 2, None)
    }

    fn is_healthy(&self, sim: &Sim) -> bool {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let (z, angle) = (qpos[1], qpos[2]);
        match self.which {
            Which::Hopper => {
                let state_ok = qpos[2..]
                    .iter()
                    .chain(qvel)
                    .all(|&s| -100.0 < s && s < 100.0);
                state_ok && 0.7 < z && z < f64::INFINITY && -0.2 < angle && angle < 0.2
            }
            Which::Walker2d => 0.8 < z && z < 2.0 && -1.0 < angle && angle < 1.0,
            Which::HalfCheetah | Which::Swimmer => true,
        }
    }
}

impl Task for Planar {
    fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    fn reset_noise(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        match self.which {
            Which::Hopper | Which::Walker2d => {
                add_uniform(rng, qpos, 5e-3);
                add_uniform(rng, qvel, 5e-3);
            }
            Which::HalfCheetah => {
                add_uniform(rng, qpos, 0.1);
                add_normal(rng, qvel, 0.1);
            }
            Which::Swimmer => {
                add_uniform(rng, qpos, 0.1);
                add_uniform(rng, qvel, 0.1);
            }
        }
    }

    fn step(&mut self, sim: &mut Sim, action: &[f32]) -> Result<(f64, bool)> {
        let x_before = sim.qpos()[0];
        sim.do_simulation(action);
        let forward_reward = 1.0 * velocity(x_before, sim.qpos()[0], self.dt);
        let ctrl_cost = ctrl_cost_f32(self.ctrl_cost_weight, action);
        Ok(match self.which {
            Which::Hopper | Which::Walker2d => {
                let healthy = self.is_healthy(sim);
                // v4: float(is_healthy or terminate_when_unhealthy), i.e. paid on the terminal step too.
                let healthy_reward = if healthy || self.version == Version::V4 {
                    1.0
                } else {
                    0.0
                };
                ((forward_reward + healthy_reward) - ctrl_cost, !healthy)
            }
            Which::HalfCheetah | Which::Swimmer => (forward_reward - ctrl_cost, false),
        })
    }

    fn observe(&self, sim: &Sim, out: &mut Obs<'_>) -> Result<()> {
        out.push(&sim.qpos()[self.skip..]);
        match self.clip_qvel {
            Some(bound) => out.push_clipped(sim.qvel(), bound),
            None => out.push(sim.qvel()),
        }
        Ok(())
    }
}
