//! InvertedPendulum (keep |hinge| ≤ 0.2) and InvertedDoublePendulum (keep the tip above 1).

use rand_chacha::ChaCha8Rng;

use super::{Obs, Task, Version, add_normal, add_uniform};
use crate::error::Result;
use crate::mujoco::sim::Sim;

/// InvertedPendulum-v4/v5 (obs 4: qpos, qvel). v4 pays 1 on every step, the terminal one
/// included; v5 pays `1 if not terminated else 0`.
pub(crate) struct Single {
    version: Version,
}

/// InvertedDoublePendulum-v4 (obs 11) and -v5 (obs 9: only the slider's constraint force).
pub(crate) struct Double {
    version: Version,
}

pub(crate) fn single(version: Version) -> Box<dyn Task> {
    Box::new(Single { version })
}

pub(crate) fn double(version: Version) -> Box<dyn Task> {
    Box::new(Double { version })
}

impl Task for Single {
    fn obs_dim(&self) -> usize {
        4
    }

    fn reset_noise(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, 0.01);
        add_uniform(rng, qvel, 0.01);
    }

    fn step(&mut self, sim: &mut Sim, action: &[f32]) -> Result<(f64, bool)> {
        sim.do_simulation(action);
        let (qpos, qvel) = (sim.qpos(), sim.qvel());
        let finite = qpos.iter().chain(qvel).all(|v| v.is_finite());
        let terminated = !finite || qpos[1].abs() > 0.2;
        let reward = match self.version {
            Version::V4 => 1.0,
            Version::V5 => f64::from(u8::from(!terminated)),
        };
        Ok((reward, terminated))
    }

    fn observe(&self, sim: &Sim, out: &mut Obs<'_>) -> Result<()> {
        out.push(sim.qpos());
        out.push(sim.qvel());
        Ok(())
    }
}

impl Task for Double {
    fn obs_dim(&self) -> usize {
        match self.version {
            Version::V4 => 11,
            Version::V5 => 9,
        }
    }

    fn reset_noise(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]) {
        add_uniform(rng, qpos, 0.1);
        add_normal(rng, qvel, 0.1);
    }

    fn step(&mut self, sim: &mut Sim, action: &[f32]) -> Result<(f64, bool)> {
        sim.do_simulation(action);
        let [x, _, y] = sim.site0_xpos()?;
        let terminated = y <= 1.0;
        let (v1, v2) = (sim.qvel()[1], sim.qvel()[2]);
        let dist_penalty = 0.01 * (x * x) + (y - 2.0) * (y - 2.0);
        let vel_penalty = 1e-3 * (v1 * v1) + 5e-3 * (v2 * v2);
        let alive_bonus = match self.version {
            Version::V4 => 10.0,
            Version::V5 => 10.0 * f64::from(u8::from(!terminated)),
        };
        Ok((alive_bonus - dist_penalty - vel_penalty, terminated))
    }

    fn observe(&self, sim: &Sim, out: &mut Obs<'_>) -> Result<()> {
        let qpos = sim.qpos();
        out.push(&qpos[..1]);
        out.extend(qpos[1..].iter().map(|q| q.sin()));
        out.extend(qpos[1..].iter().map(|q| q.cos()));
        out.push_clipped(sim.qvel(), 10.0);
        let qfrc = sim.qfrc_constraint();
        match self.version {
            Version::V4 => out.push_clipped(qfrc, 10.0),
            Version::V5 => out.push_clipped(&qfrc[..1], 10.0),
        }
        Ok(())
    }
}
