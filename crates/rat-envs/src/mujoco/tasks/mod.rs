//! What differs between the tasks: reset noise, the step's reward and termination, the
//! observation. Each file follows Gymnasium 1.4.0's `*_v4.py` / `*_v5.py` line by line; the
//! arithmetic order and the float32 control costs (NumPy 2 keeps `w * np.sum(np.square(a32))`
//! in float32) are kept so rewards agree to the last bits.

mod ant;
mod humanoid;
mod pendulum;
mod planar;
mod reacher;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::sim::Sim;
use crate::error::{Error, Result};

/// Gymnasium's version of a task (the physics are the same; observations and rewards differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `-v4`: the version of the published reference runs.
    V4,
    /// `-v5`.
    V5,
}

/// The ten task families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Hopper,
    HalfCheetah,
    Walker2d,
    Ant,
    Humanoid,
    HumanoidStandup,
    Reacher,
    Swimmer,
    InvertedPendulum,
    InvertedDoublePendulum,
}

/// One task's logic over a [`Sim`].
pub(crate) trait Task: Send {
    /// Observation length.
    fn obs_dim(&self) -> usize;
    /// Adds the reset noise to `qpos` (holding `init_qpos`) and `qvel` (zeros), drawing qpos
    /// first, as `reset_model`.
    fn reset_noise(&self, rng: &mut ChaCha8Rng, qpos: &mut [f64], qvel: &mut [f64]);
    /// Runs the physics for `action` (through [`Sim::do_simulation`]) and returns the reward and
    /// whether the new state is terminal.
    fn step(&mut self, sim: &mut Sim, action: &[f32]) -> Result<(f64, bool)>;
    /// Writes the observation of the current state.
    fn observe(&self, sim: &Sim, out: &mut Obs<'_>) -> Result<()>;
}

impl Kind {
    /// The task's logic for `version`, checked against the loaded model.
    pub(crate) fn build(self, version: Version, sim: &Sim) -> Result<Box<dyn Task>> {
        let expect = |nq: usize, nv: usize, nu: usize, nbody: usize| {
            if (sim.nq, sim.nv, sim.nu, sim.nbody) == (nq, nv, nu, nbody) {
                Ok(())
            } else {
                Err(Error::Mujoco(format!(
                    "{self:?}: the model has nq/nv/nu/nbody {}/{}/{}/{}, expected {nq}/{nv}/{nu}/{nbody}",
                    sim.nq, sim.nv, sim.nu, sim.nbody
                )))
            }
        };
        Ok(match self {
            Kind::Hopper => expect(6, 6, 3, 5).map(|_| planar::Planar::hopper(version, sim))?,
            Kind::Walker2d => expect(9, 9, 6, 8).map(|_| planar::Planar::walker2d(version, sim))?,
            Kind::HalfCheetah => expect(9, 9, 6, 8).map(|_| planar::Planar::half_cheetah(sim))?,
            Kind::Swimmer => expect(5, 5, 2, 4).map(|_| planar::Planar::swimmer(sim))?,
            Kind::Ant => expect(15, 14, 8, 14).and_then(|_| ant::Ant::boxed(version, sim))?,
            Kind::Humanoid => {
                expect(24, 23, 17, 14).map(|_| humanoid::Humanoid::walk(version, sim))?
            }
            Kind::HumanoidStandup => {
                expect(24, 23, 17, 14).map(|_| humanoid::Humanoid::standup(version, sim))?
            }
            Kind::Reacher => {
                expect(4, 4, 2, 5).and_then(|_| reacher::Reacher::boxed(version, sim))?
            }
            Kind::InvertedPendulum => expect(2, 2, 1, 3).map(|_| pendulum::single(version))?,
            Kind::InvertedDoublePendulum => {
                expect(3, 3, 1, 4).map(|_| pendulum::double(version))?
            }
        })
    }
}

/// An observation being written, slice by slice.
pub(crate) struct Obs<'a> {
    buf: &'a mut [f64],
    at: usize,
}

impl<'a> Obs<'a> {
    /// Writes into `buf` from the start.
    pub(crate) fn new(buf: &'a mut [f64]) -> Self {
        Self { buf, at: 0 }
    }

    /// Appends values.
    pub(crate) fn extend(&mut self, values: impl IntoIterator<Item = f64>) {
        for v in values {
            if let Some(slot) = self.buf.get_mut(self.at) {
                *slot = v;
            }
            self.at += 1;
        }
    }

    /// Appends a slice.
    pub(crate) fn push(&mut self, values: &[f64]) {
        self.extend(values.iter().copied());
    }

    /// Appends a slice clipped to `[-bound, bound]` (`np.clip`, NaN stays NaN).
    pub(crate) fn push_clipped(&mut self, values: &[f64], bound: f64) {
        self.extend(values.iter().map(|v| v.clamp(-bound, bound)));
    }

    /// Checks that exactly the whole buffer was written.
    pub(crate) fn finish(self) -> Result<()> {
        if self.at != self.buf.len() {
            return Err(Error::Shape {
                op: "observe",
                msg: format!("wrote {} values into {} slots", self.at, self.buf.len()),
            });
        }
        Ok(())
    }
}

/// `x += U(-scale, scale)` element-wise, as NumPy's `uniform(low, high)`: `low + (high - low)·u`.
pub(crate) fn add_uniform(rng: &mut ChaCha8Rng, x: &mut [f64], scale: f64) {
    for v in x {
        *v += uniform(rng, -scale, scale);
    }
}

/// `x += scale · N(0, 1)` element-wise.
pub(crate) fn add_normal(rng: &mut ChaCha8Rng, x: &mut [f64], scale: f64) {
    for v in x {
        let n: f64 = rng.sample(StandardNormal);
        *v += scale * n;
    }
}

/// One draw of U(low, high).
pub(crate) fn uniform(rng: &mut ChaCha8Rng, low: f64, high: f64) -> f64 {
    low + (high - low) * rng.random::<f64>()
}

/// NumPy's `np.sum` of `n` terms `f(i)` (pairwise summation with 8 accumulators per block of up
/// to 128), so sums round as in Gymnasium.
pub(crate) fn np_sum<T>(n: usize, f: &dyn Fn(usize) -> T) -> T
where
    T: Copy + Default + std::ops::Add<Output = T>,
{
    if n < 8 {
        (0..n).fold(T::default(), |acc, i| acc + f(i))
    } else if n <= 128 {
        let mut r = [T::default(); 8];
        for (j, rj) in r.iter_mut().enumerate() {
            *rj = f(j);
        }
        let mut i = 8;
        while i < n - n % 8 {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj = *rj + f(i + j);
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for k in i..n {
            res = res + f(k);
        }
        res
    } else {
        let n2 = n / 2;
        let n2 = n2 - n2 % 8;
        np_sum(n2, f) + np_sum(n - n2, &|i| f(i + n2))
    }
}

/// `weight * np.sum(np.square(a))` for a float32 action under NumPy 2: all in float32.
pub(crate) fn ctrl_cost_f32(weight: f64, a: &[f32]) -> f64 {
    let s = np_sum(a.len(), &|i| a[i] * a[i]);
    f64::from(weight as f32 * s)
}

/// `np.sum(np.square(x))` in float64.
pub(crate) fn sum_sq(x: &[f64]) -> f64 {
    np_sum(x.len(), &|i| x[i] * x[i])
}

/// Forward velocity `(after - before) / dt`.
pub(crate) fn velocity(before: f64, after: f64, dt: f64) -> f64 {
    (after - before) / dt
}

/// `np.clip(x, -inf, hi)` / Python's `min(x, hi)`: NaN stays NaN.
pub(crate) fn at_most(x: f64, hi: f64) -> f64 {
    if x > hi { hi } else { x }
}
