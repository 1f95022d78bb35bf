//! Humanoid (walk forward: velocity of the mass centre from the lagged `xipos`) and
//! HumanoidStandup (raise the torso: `qpos[2] / opt.timestep`). Both charge the unclipped
//! `data.ctrl` in float64 and share the observation: v4 376 values, v5 348 (world body dropped).

use rand_chacha::ChaCha8Rng;

use super::{Obs, Task, Version, add_uniform, at_most, np_sum, sum_sq, velocity};
use crate::error::Result;
use crate::mujoco::sim::Sim;

/// Humanoid-v4/v5 and HumanoidStandup-v4/v5.
pub(crate) struct Humanoid {
    standup: bool,
    version: Version,
    dt: f64,
    timestep: f64,
    total_mass: f64,
    obs_dim: usize,
}

impl Humanoid {
    fn boxed(standup: bool, version: Version, sim: &Sim) -> Box<dyn Task> {
        let (nq, nv, nb) = (sim.nq, sim.nv, sim.nbody);
        let obs_dim = match version {
            Version::V4 => (nq - 2) + nv + 10 * nb + 6 * nb + nv + 6 * nb,
            Version::V5 => (nq - 2) + nv + 10 * (nb - 1) + 6 * (nb - 1) + (nv - 6) + 6 * (nb - 1),
        };
        let mass = sim.body_mass();
        let total_mass = np_sum(mass.len(), &|i| mass[i]);
        Box::new(Self {
            standup,
            version,
            dt: sim.dt(),
            timestep: sim.timestep(),
            total_mass,
            obs_dim,
        })
    }

    /// Humanoid.
    pub(crate) fn walk(version: Version, sim: &Sim) -> Box<dyn Task> {
        Self::boxed(false, version, sim)
    }

    /// HumanoidStandup.
    pub(crate) fn standup(version: Version, sim: &Sim) -> Box<dyn Task> {
        Self::boxed(true, version, sim)
    }

    /// x of `Σ_b body_mass[b]·xipos[b] / Σ_b body_mass[b]`.
    fn mass_centre_x(&self, sim: &Sim) -> f64 {
        let xipos = sim.xipos();
        let num = sim
            .body_mass()
            .iter()
            .enumerate()
            .fold(0.0, |acc, (b, m)| acc + m * xipos[3 * b]);
        num / self.total_mass
    }

    fn walk_step(&self, sim: &mut Sim, action: &[f32]) -> (f64, bool) {
        let before = self.mass_centre_x(sim);
        sim.do_simulation(action);
        let forward_reward = 1.25 * velocity(before, self.mass_centre_x(sim), self.dt);
        let z = sim.qpos()[2];
        let healthy = 1.0 < z && z < 2.0;
        let ctrl_cost = 0.1 * sum_sq(sim.ctrl());
        let reward = match self.version {
            // healthy_reward = float(is_healthy or terminate_when_unhealthy) · 5 = 5.
            Version::V4 => (forward_reward + 5.0) - ctrl_cost,
            Version::V5 => {
                let healthy_reward = if healthy { 5.0 } else { 0.0 };
                let contact_cost = at_most(5e-7 * sum_sq(sim.cfrc_ext()), 10.0);
                (forward_reward + healthy_reward) - (ctrl_cost + contact_cost)
            }
        };
        (reward, !healthy)
    }

    fn standup_step(&self, sim: &mut Sim, action: &[f32]) -> (f64, bool) {
        sim.do_simulation(action);
        let uph_cost = (sim.qpos()[2] - 0.0) / self.timestep;
        let quad_ctrl_cost = 0.1 * sum_sq(sim.ctrl());
        let quad_impact_cost = at_most(5e-7 * sum_sq(sim.cfrc_ext()), 10.0);
        (uph_cost - quad_ctrl_cost - quad_impact_cost + 1.0, false)
    }
}

impl Task for Humanoid {
    fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    fn reset_noise(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, 0.01);
        add_uniform(rng, qvel, 0.01);
    }

    fn step(&mut self, sim: &mut Sim, action: &[f32]) -> Result<(f64, bool)> {
        Ok(if self.standup {
            self.standup_step(sim, action)
        } else {
            self.walk_step(sim, action)
        })
    }

    fn observe(&self, sim: &Sim, out: &mut Obs<'_>) -> Result<()> {
        out.push(&sim.qpos()[2..]);
        out.push(sim.qvel());
        match self.version {
            Version::V4 => {
                out.push(sim.cinert());
                out.push(sim.cvel());
                out.push(sim.qfrc_actuator());
                out.push(sim.cfrc_ext());
            }
            Version::V5 => {
                out.push(&sim.cinert()[10..]);
                out.push(&sim.cvel()[6..]);
                out.push(&sim.qfrc_actuator()[6..]);
                out.push(&sim.cfrc_ext()[6..]);
            }
        }
        Ok(())
    }
}
