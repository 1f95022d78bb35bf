//! MountainCar-v0 (Moore 1990), as Gymnasium 1.4.0's `MountainCarEnv`.

use rand::Rng;

use super::{EnvRng, check_state, f32_box_between, not_reset, write_f32_obs};
use crate::env::{Env, Step, discrete_action};
use crate::error::Result;
use crate::space::Space;

const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.5;
const GOAL_VELOCITY: f64 = 0.0;
const FORCE: f64 = 0.001;
const GRAVITY: f64 = 0.0025;

/// An underpowered car in a valley (height `0.45 sin 3x + 0.55`) that must rock back and forth
/// to reach the flag on the right hill.
///
/// * State: `[x, v]` in `f64`. Observation: the state rounded to `f32`; observation space the
///   float32 box `[−1.2, 0.6] × [−0.07, 0.07]`.
/// * Action: `Discrete(3)`: accelerate left, don't accelerate, accelerate right.
/// * Dynamics: `v ← clip(v + (a − 1)·0.001 − 0.0025 cos 3x, −0.07, 0.07)`,
///   `x ← clip(x + v, −1.2, 0.6)`; at the left wall (`x = −1.2`) a negative `v` becomes 0.
/// * Termination: `x ≥ 0.5` and `v ≥ 0`. Reward: `−1` every step.
/// * Reset: `x` uniform in `[−0.6, −0.4)`, `v = 0`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct MountainCar {
    state: Option<[f64; 2]>,
    rng: EnvRng,
}

impl MountainCar {
    /// Gymnasium's time limit for MountainCar-v0.
    pub const MAX_EPISODE_STEPS: usize = 200;
    /// The registered id.
    pub const ID: &'static str = "MountainCar-v0";

    /// A car that has not been reset yet (its generator is unseeded).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state `[x, v]` (empty before the first reset).
    pub fn state(&self) -> Vec<f64> {
        self.state.map(|s| s.to_vec()).unwrap_or_default()
    }

    /// Replaces the state with `[x, v]` (finite values).
    pub fn set_state(&mut self, state: &[f64]) -> Result<()> {
        check_state("MountainCar::set_state", state, 2)?;
        self.state = Some([state[0], state[1]]);
        Ok(())
    }

    /// Writes the observation of the current state (the state rounded to `f32`).
    pub fn observe(&self, obs: &mut [f64]) -> Result<()> {
        let s = self.state.ok_or_else(|| not_reset(Self::ID))?;
        write_f32_obs("MountainCar::observe", obs, &s)
    }
}

impl Env for MountainCar {
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
        Space::Discrete { n: 3 }
    }

    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()> {
        crate::env::check_obs("MountainCar::reset", obs, 2)?;
        let state = [self.rng.for_reset(seed).random_range(-0.6..-0.4), 0.0];
        self.state = Some(state);
        write_f32_obs("MountainCar::reset", obs, &state)
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Step> {
        let a = discrete_action(Self::ID, action, 3)?;
        crate::env::check_obs("MountainCar::step", obs, 2)?;
        let [position, velocity] = self.state.ok_or_else(|| not_reset(Self::ID))?;
        // Gymnasium's operation order: v + ((a − 1)·force + cos(3x)·(−gravity)).
        let velocity = (velocity + ((a as f64 - 1.0) * FORCE + (3.0 * position).cos() * -GRAVITY))
            .clamp(-MAX_SPEED, MAX_SPEED);
        let position = (position + velocity).clamp(MIN_POSITION, MAX_POSITION);
        let velocity = if position == MIN_POSITION && velocity < 0.0 {
            0.0
        } else {
            velocity
        };
        let terminated = position >= GOAL_POSITION && velocity >= GOAL_VELOCITY;
        let state = [position, velocity];
        self.state = Some(state);
        write_f32_obs("MountainCar::step", obs, &state)?;
        Ok(Step {
            reward: -1.0,
            terminated,
            truncated: false,
        })
    }
}
