//! Ant: forward velocity of the torso's (lagged) `xpos`, healthy reward, control cost; v5 adds
//! the clipped external forces of bodies 1.. to the observation and a contact cost over all.

use rand_chacha::ChaCha8Rng;

use super::{Obs, Task, Version, add_normal, add_uniform, ctrl_cost_f32, np_sum, velocity};
use crate::error::Result;
use crate::mujoco::sim::Sim;

/// Ant-v4 (obs 27) and Ant-v5 (obs 105).
pub(crate) struct Ant {
    version: Version,
    dt: f64,
    /// v4 reads `get_body_com("torso")`, v5 `body(main_body=1)`: the same body.
    torso: usize,
    obs_dim: usize,
}

impl Ant {
    pub(crate) fn boxed(version: Version, sim: &Sim) -> Result<Box<dyn Task>> {
        let torso = match version {
            Version::V4 => sim.body_id("torso")?,
            Version::V5 => 1,
        };
        let base = sim.nq - 2 + sim.nv;
        let obs_dim = match version {
            Version::V4 => base,
            Version::V5 => base + 6 * (sim.nbody - 1),
        };
        Ok(Box::new(Self {
            version,
            dt: sim.dt(),
            torso,
            obs_dim,
        }))
    }

    fn xy(&self, sim: &Sim) -> [f64; 2] {
        let p = &sim.xpos()[3 * self.torso..];
        [p[0], p[1]]
    }
}

impl Task for Ant {
    fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    fn reset_noise(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, 0.1);
        add_normal(rng, qvel, 0.1);
    }

    fn step(&mut self, sim: &mut Sim, action: &[f32]) -> Result<(f64, bool)> {
        let before = self.xy(sim);
        sim.do_simulation(action);
        let after = self.xy(sim);
        let forward_reward = velocity(before[0], after[0], self.dt);
        let qpos = sim.qpos();
        let healthy = qpos.iter().chain(sim.qvel()).all(|v| v.is_finite())
            && 0.2 <= qpos[2]
            && qpos[2] <= 1.0;
        let ctrl_cost = ctrl_cost_f32(0.5, action);
        let reward = match self.version {
            // healthy_reward = float(is_healthy or terminate_when_unhealthy) = 1.
            Version::V4 => (forward_reward + 1.0) - ctrl_cost,
            Version::V5 => {
                let healthy_reward = if healthy { 1.0 } else { 0.0 };
                let f = sim.cfrc_ext();
                let contact_cost = 5e-4
                    * np_sum(f.len(), &|i| {
                        let c = f[i].clamp(-1.0, 1.0);
                        c * c
                    });
                (forward_reward * 1.0 + healthy_reward) - (ctrl_cost + contact_cost)
            }
        };
        Ok((reward, !healthy))
    }

    fn observe(&self, sim: &Sim, out: &mut Obs<'_>) -> Result<()> {
        out.push(&sim.qpos()[2..]);
        out.push(sim.qvel());
        if self.version == Version::V5 {
            out.push_clipped(&sim.cfrc_ext()[6..], 1.0);
        }
        Ok(())
    }
}
