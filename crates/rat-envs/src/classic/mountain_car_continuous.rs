//! MountainCarContinuous-v0, as Gymnasium 1.4.0's `Continuous_MountainCarEnv`.

use rand::Rng;

use super::{EnvRng, check_state, f32_box, f32_box_between, not_reset, write_f32_obs};
use crate::env::{Env, Step, continuous_action};
use crate::error::Result;
use crate::space::Space;

const MIN_ACTION: f64 = -1.0;
const MAX_ACTION: f64 = 1.0;
const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.45;
const GOAL_VELOCITY: f64 = 0.0;
const POWER: f64 = 0.0015;

/// The mountain car with a continuous engine force.
///
/// * State: `[x, v]`. Observation: the state rounded to `f32`; observation space the float32
///   box `[−1.2, 0.6] × [−0.07, 0.07]`.
/// * Action: one force in the box `[−1, 1]`; the dynamics clip it to `[−1, 1]`, the control
///   cost uses the action as given (unclipped).
/// * Dynamics: `v ← clip(v + clip(a, −1, 1)·0.0015 − 0.0025 cos 3x, −0.07, 0.07)`,
///   `x ← clip(x + v, −1.2, 0.6)`; at the left wall a negative `v` becomes 0.
/// * Termination: `x ≥ 0.45` and `v ≥ 0`. Reward: `100·[terminated] − 0.1 a²`.
/// * Reset: `x` uniform in `[−0.6, −0.4)`, `v = 0`.
///
/// Gymnasium stores the state as float32 after every step and NumPy then does part of the
/// arithmetic in float32 (a float32 scalar combined with a Python float stays float32); the
/// step below follows those types exactly, so the state is `f64` right after a reset or
/// `set_state` and float32 afterwards.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct MountainCarContinuous {
    state: Option<[Num; 2]>,
    rng: EnvRng,
}

/// A number as NumPy types it: a float32 or float64 scalar, or a Python float (which takes
/// the type of the NumPy scalar it is combined with, NumPy 2's "weak" promotion).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
enum Num {
    F32(f32),
    F64(f64),
    Py(f64),
}

impl Num {
    fn value(self) -> f64 {
        match self {
            Num::F32(x) => f64::from(x),
            Num::F64(x) | Num::Py(x) => x,
        }
    }

    /// Applies `f` in the dtype NumPy would choose for `self ∘ other`.
    fn binary(
        self,
        other: Num,
        f: impl Fn(f64, f64) -> f64,
        f32_op: impl Fn(f32, f32) -> f32,
    ) -> Num {
        use Num::*;
        match (self, other) {
            (F32(a), F32(b)) => F32(f32_op(a, b)),
            (F32(a), Py(b)) => F32(f32_op(a, b as f32)),
            (Py(a), F32(b)) => F32(f32_op(a as f32, b)),
            (Py(a), Py(b)) => Py(f(a, b)),
            _ => F64(f(self.value(), other.value())),
        }
    }

    fn add(self, other: Num) -> Num {
        self.binary(other, |a, b| a + b, |a, b| a + b)
    }

    fn sub(self, other: Num) -> Num {
        self.binary(other, |a, b| a - b, |a, b| a - b)
    }

    fn mul(self, other: Num) -> Num {
        self.binary(other, |a, b| a * b, |a, b| a * b)
    }

    /// Both operands in their common dtype, for a comparison.
    fn common(self, other: Num) -> (f64, f64) {
        use Num::*;
        match (self, other) {
            (F32(a), Py(b)) => (f64::from(a), f64::from(b as f32)),
            (Py(a), F32(b)) => (f64::from(a as f32), f64::from(b)),
            _ => (self.value(), other.value()),
        }
    }

    fn gt(self, other: Num) -> bool {
        let (a, b) = self.common(other);
        a > b
    }

    fn lt(self, other: Num) -> bool {
        let (a, b) = self.common(other);
        a < b
    }

    fn ge(self, other: Num) -> bool {
        let (a, b) = self.common(other);
        a >= b
    }

    fn equals(self, other: Num) -> bool {
        let (a, b) = self.common(other);
        a == b
    }
}

impl MountainCarContinuous {
    /// Gymnasium's time limit for MountainCarContinuous-v0.
    pub const MAX_EPISODE_STEPS: usize = 999;
    /// The registered id.
    pub const ID: &'static str = "MountainCarContinuous-v0";

    /// A car that has not been reset yet (its generator is unseeded).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state `[x, v]` (empty before the first reset).
    pub fn state(&self) -> Vec<f64> {
        self.state
            .map(|s| s.map(Num::value).to_vec())
            .unwrap_or_default()
    }

    /// Replaces the state with `[x, v]` (finite values), held in `f64` as right after a reset.
    pub fn set_state(&mut self, state: &[f64]) -> Result<()> {
        check_state("MountainCarContinuous::set_state", state, 2)?;
        self.state = Some([Num::F64(state[0]), Num::F64(state[1])]);
        Ok(())
    }

    /// Writes the observation of the current state (the state rounded to `f32`).
    pub fn observe(&self, obs: &mut [f64]) -> Result<()> {
        let s = self.state.ok_or_else(|| not_reset(Self::ID))?;
        write_f32_obs("MountainCarContinuous::observe", obs, &s.map(Num::value))
    }
}

impl Env for MountainCarContinuous {
    crate::env::serde_state!();

    /// Gymnasium's `metadata["render_fps"]`.
    fn render_fps(&self) -> Option<f64> {
        Some(30.0)
    }

    fn render(&mut self) -> Result<crate::Frame> {
        if self.state.is_none() {
            return Err(not_reset(Self::ID));
        }
        crate::render::classic::mountain_car(self.state()[0], GOAL_POSITION)
    }

    fn id(&self) -> &str {
        Self::ID
    }

    fn observation_space(&self) -> Space {
        f32_box_between(&[MIN_POSITION, -MAX_SPEED], &[MAX_POSITION, MAX_SPEED])
    }

    fn action_space(&self) -> Space {
        f32_box(&[MAX_ACTION])
    }

    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()> {
        crate::env::check_obs("MountainCarContinuous::reset", obs, 2)?;
        let x = self.rng.for_reset(seed).random_range(-0.6..-0.4);
        self.state = Some([Num::F64(x), Num::F64(0.0)]);
        write_f32_obs("MountainCarContinuous::reset", obs, &[x, 0.0])
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Step> {
        use Num::Py;
        let a = continuous_action(Self::ID, action, 1)?[0];
        crate::env::check_obs("MountainCarContinuous::step", obs, 2)?;
        let [mut position, mut velocity] = self.state.ok_or_else(|| not_reset(Self::ID))?;

        // `min(max(a, -1.0), 1.0)`: Python's max/min keep the float32 action unless a bound
        // is strictly beyond it, in which case the result is the Python float bound.
        let mut force = Num::F32(a);
        if Py(MIN_ACTION).gt(force) {
            force = Py(MIN_ACTION);
        }
        if Py(MAX_ACTION).lt(force) {
            force = Py(MAX_ACTION);
        }
        // `0.0025 * math.cos(3 * position)` is a Python float (math.cos returns one).
        let slope = Py(0.0025 * Num::Py(3.0).mul(position).value().cos());
        velocity = velocity.add(force.mul(Py(POWER)).sub(slope));
        if velocity.gt(Py(MAX_SPEED)) {
            velocity = Py(MAX_SPEED);
        }
        if velocity.lt(Py(-MAX_SPEED)) {
            velocity = Py(-MAX_SPEED);
        }
        position = position.add(velocity);
        if position.gt(Py(MAX_POSITION)) {
            position = Py(MAX_POSITION);
        }
        if position.lt(Py(MIN_POSITION)) {
            position = Py(MIN_POSITION);
        }
        if position.equals(Py(MIN_POSITION)) && velocity.lt(Py(0.0)) {
            velocity = Py(0.0);
        }
        let terminated = position.ge(Py(GOAL_POSITION)) && velocity.ge(Py(GOAL_VELOCITY));
        // The control cost uses the unclipped action (`math.pow(action[0], 2) * 0.1`).
        let a = f64::from(a);
        let reward = (if terminated { 100.0 } else { 0.0 }) - a * a * 0.1;

        // `np.array([position, velocity], dtype=np.float32)`.
        let state = [
            Num::F32(position.value() as f32),
            Num::F32(velocity.value() as f32),
        ];
        self.state = Some(state);
        write_f32_obs("MountainCarContinuous::step", obs, &state.map(Num::value))?;
        Ok(Step {
            reward,
            terminated,
            truncated: false,
        })
    }
}
