//! Pendulum-v1, as Gymnasium 1.4.0's `PendulumEnv` (g = 10).

use std::f64::consts::PI;

use rand::Rng;

use super::{EnvRng, check_state, f32_box, not_reset, pow2, pow2_f32, write_f32_obs};
use crate::env::{Env, Step, continuous_action};
use crate::error::Result;
use crate::space::Space;

const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f32 = 2.0;
const DT: f64 = 0.05;
const G: f64 = 10.0;
const M: f64 = 1.0;
const L: f64 = 1.0;
/// `3 / (m l²)`, the angular acceleration per unit torque.
const TORQUE_GAIN: f64 = 3.0 / (M * L * L);

/// A frictionless pendulum swung up by a bounded torque at its pivot.
///
/// * State: `[θ, θ̇]` in `f64` (θ = 0 is upright). Observation: `[cos θ, sin θ, θ̇]` rounded to
///   `f32`; observation space the float32 box `±[1, 1, 8]`.
/// * Action: one torque in the box `[−2, 2]`; values outside are clipped (in `f32`, as NumPy
///   clips the float32 action), the cost uses the clipped torque `u`.
/// * Reward: `−(norm(θ)² + 0.1 θ̇² + 0.001 u²)` with `norm(θ) = ((θ + π) mod 2π) − π`; the
///   `0.001 u²` term is computed in float32 as NumPy does for the float32 torque.
/// * Dynamics (dt = 0.05, g = 10, m = l = 1): `θ̇' = clip(θ̇ + (3g/(2l) sin θ + 3/(m l²) u) dt,
///   −8, 8)`, `θ' = θ + θ̇' dt`. Never terminates (the time limit of 200 steps ends episodes).
/// * Reset: θ uniform in `[−π, π)`, θ̇ uniform in `[−1, 1)`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Pendulum {
    state: Option<[f64; 2]>,
    rng: EnvRng,
}

impl Pendulum {
    /// Gymnasium's time limit for Pendulum-v1.
    pub const MAX_EPISODE_STEPS: usize = 200;
    /// The registered id.
    pub const ID: &'static str = "Pendulum-v1";

    /// A pendulum that has not been reset yet (its generator is unseeded).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state `[θ, θ̇]` (empty before the first reset).
    pub fn state(&self) -> Vec<f64> {
        self.state.map(|s| s.to_vec()).unwrap_or_default()
    }

    /// Replaces the state with `[θ, θ̇]` (finite values).
    pub fn set_state(&mut self, state: &[f64]) -> Result<()> {
        check_state("Pendulum::set_state", state, 2)?;
        self.state = Some([state[0], state[1]]);
        Ok(())
    }

    /// Writes the observation `[cos θ, sin θ, θ̇]` of the current state.
    pub fn observe(&self, obs: &mut [f64]) -> Result<()> {
        let s = self.state.ok_or_else(|| not_reset(Self::ID))?;
        write_obs("Pendulum::observe", obs, s)
    }
}

/// Gymnasium's `angle_normalize`: `((x + π) mod 2π) − π` with NumPy's floored modulo (the
/// divisor is positive, so this is the Euclidean remainder).
fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

fn write_obs(op: &'static str, obs: &mut [f64], [theta, theta_dot]: [f64; 2]) -> Result<()> {
    write_f32_obs(op, obs, &[theta.cos(), theta.sin(), theta_dot])
}

impl Env for Pendulum {
    crate::env::serde_state!();

    /// Gymnasium's `metadata["render_fps"]`.
    fn render_fps(&self) -> Option<f64> {
        Some(30.0)
    }

    fn render(&mut self) -> Result<crate::Frame> {
        if self.state.is_none() {
            return Err(not_reset(Self::ID));
        }
        crate::render::classic::pendulum(self.state()[0])
    }

    fn id(&self) -> &str {
        Self::ID
    }

    fn observation_space(&self) -> Space {
        f32_box(&[1.0, 1.0, MAX_SPEED])
    }

    fn action_space(&self) -> Space {
        f32_box(&[f64::from(MAX_TORQUE)])
    }

    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()> {
        crate::env::check_obs("Pendulum::reset", obs, 3)?;
        let rng = self.rng.for_reset(seed);
        let state = [rng.random_range(-PI..PI), rng.random_range(-1.0..1.0)];
        self.state = Some(state);
        write_obs("Pendulum::reset", obs, state)
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Step> {
        let u = continuous_action(Self::ID, action, 1)?[0].clamp(-MAX_TORQUE, MAX_TORQUE);
        crate::env::check_obs("Pendulum::step", obs, 3)?;
        let [th, thdot] = self.state.ok_or_else(|| not_reset(Self::ID))?;
        // NumPy promotes `python float * float32` to float32: the torque terms are f32 products.
        let torque_cost = f64::from(0.001_f32 * pow2_f32(u));
        let costs = pow2(angle_normalize(th)) + 0.1 * pow2(thdot) + torque_cost;
        let accel = 3.0 * G / (2.0 * L) * th.sin() + f64::from(TORQUE_GAIN as f32 * u);
        let newthdot = (thdot + accel * DT).clamp(-MAX_SPEED, MAX_SPEED);
        let newth = th + newthdot * DT;
        let state = [newth, newthdot];
        self.state = Some(state);
        write_obs("Pendulum::step", obs, state)?;
        Ok(Step {
            reward: -costs,
            terminated: false,
            truncated: false,
        })
    }
}
