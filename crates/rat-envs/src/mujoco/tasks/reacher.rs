//! Reacher: minus the fingertip–target distance minus a float32 control cost. v4 computes the
//! reward *before* the physics step (from the previous state), v5 after it; the observation
//! ends with the fingertip–target vector (v4 with its z, always 0; v5 without).

use rand_chacha::ChaCha8Rng;

use super::{Obs, Task, Version, add_uniform, np_sum, uniform};
use crate::error::Result;
use crate::mujoco::sim::Sim;

/// Reacher-v4 (obs 11) and Reacher-v5 (obs 10).
pub(crate) struct Reacher {
    version: Version,
    fingertip: usize,
    target: usize,
}

impl Reacher {
    pub(crate) fn boxed(version: Version, sim: &Sim) -> Result<Box<dyn Task>> {
        Ok(Box::new(Self {
            version,
            fingertip: sim.body_id("fingertip")?,
            target: sim.body_id("target")?,
        }))
    }

    /// `get_body_com("fingertip") - get_body_com("target")`.
    fn vec(&self, sim: &Sim) -> [f64; 3] {
        let x = sim.xpos();
        let (f, t) = (
            &x[3 * self.fingertip..3 * self.fingertip + 3],
            &x[3 * self.target..3 * self.target + 3],
        );
        [f[0] - t[0], f[1] - t[1], f[2] - t[2]]
    }

    /// `-‖vec‖ - Σa²` (the control term in float32).
    fn reward(&self, sim: &Sim, action: &[f32]) -> f64 {
        let v = self.vec(sim);
        let reward_dist = -(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        let reward_ctrl = -np_sum(action.len(), &|i| action[i] * action[i]);
        reward_dist + f64::from(reward_ctrl)
    }
}

impl Task for Reacher {
    fn obs_dim(&self) -> usize {
        match self.version {
            Version::V4 => 11,
            Version::V5 => 10,
        }
    }

    fn reset_noise(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, 0.1);
        let goal = loop {
            let g = [uniform(rng, -0.2, 0.2), uniform(rng, -0.2, 0.2)];
            if (g[0] * g[0] + g[1] * g[1]).sqrt() < 0.2 {
                break g;
            }
        };
        let n = qpos.len();
        qpos[n - 2..].copy_from_slice(&goal);
        add_uniform(rng, qvel, 0.005);
        let n = qvel.len();
        qvel[n - 2..].fill(0.0);
    }

    fn step(&mut self, sim: &mut Sim, action: &[f32]) -> Result<(f64, bool)> {
        let reward = match self.version {
            Version::V4 => {
                let r = self.reward(sim, action);
                sim.do_simulation(action);
                r
            }
            Version::V5 => {
                sim.do_simulation(action);
                self.reward(sim, action)
            }
        };
        Ok((reward, false))
    }

    fn observe(&self, sim: &Sim, out: &mut Obs<'_>) -> Result<()> {
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        out.extend(qpos[..2].iter().map(|t| t.cos()));
        out.extend(qpos[..2].iter().map(|t| t.sin()));
        out.push(&qpos[2..]);
        out.push(&qvel[..2]);
        let v = self.vec(sim);
        match self.version {
            Version::V4 => out.push(&v),
            Version::V5 => out.push(&v[..2]),
        }
        Ok(())
    }
}
