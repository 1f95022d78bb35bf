//! Acrobot-v1, as Gymnasium 1.4.0's `AcrobotEnv` (Sutton & Barto's "book" dynamics).

use std::f64::consts::PI;

use rand::Rng;

use super::{EnvRng, check_state, f32_box, not_reset, pow2, write_f32_obs};
use crate::env::{Env, Step, discrete_action};
use crate::error::Result;
use crate::space::Space;

/// Seconds per step (one RK4 step over the whole interval).
const DT: f64 = 0.2;
const LINK_LENGTH_1: f64 = 1.0;
const LINK_MASS_1: f64 = 1.0;
const LINK_MASS_2: f64 = 1.0;
const LINK_COM_POS_1: f64 = 0.5;
const LINK_COM_POS_2: f64 = 0.5;
const LINK_MOI: f64 = 1.0;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
/// The torques of actions 0, 1 and 2.
const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];

/// Two links hanging from a pivot, torque applied only at the joint between them; the goal is
/// to swing the free end above a height of one link length over the pivot.
///
/// * State: `[θ₁, θ₂, θ̇₁, θ̇₂]` in `f64` (θ₁ = θ₂ = 0 hangs straight down; θ₂ is relative to
///   link 1). Observation: `[cos θ₁, sin θ₁, cos θ₂, sin θ₂, θ̇₁, θ̇₂]` rounded to `f32`;
///   observation space the float32 box `±[1, 1, 1, 1, 4π, 9π]`.
/// * Action: `Discrete(3)`, torque `−1`, `0`, `+1` (no torque noise).
/// * Dynamics: the "book" equations of motion (Sutton & Barto), one fourth-order Runge–Kutta
///   step over dt = 0.2 s, then θ₁, θ₂ wrapped into `[−π, π]` and θ̇₁, θ̇₂ clipped to `±4π`,
///   `±9π`.
/// * Termination: `−cos θ₁ − cos(θ₁ + θ₂) > 1`. Reward: `−1` per step, `0` on the terminating
///   step.
/// * Reset: every state component uniform in `[−0.1, 0.1)`, rounded to `f32` (Gymnasium
///   stores the initial state as float32; later states are float64).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Acrobot {
    state: Option<[f64; 4]>,
    rng: EnvRng,
}

impl Acrobot {
    /// Gymnasium's time limit for Acrobot-v1.
    pub const MAX_EPISODE_STEPS: usize = 500;
    /// The registered id.
    pub const ID: &'static str = "Acrobot-v1";

    /// An acrobot that has not been reset yet (its generator is unseeded).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state `[θ₁, θ₂, θ̇₁, θ̇₂]` (empty before the first reset).
    pub fn state(&self) -> Vec<f64> {
        self.state.map(|s| s.to_vec()).unwrap_or_default()
    }

    /// Replaces the state with `[θ₁, θ₂, θ̇₁, θ̇₂]` (finite values).
    pub fn set_state(&mut self, state: &[f64]) -> Result<()> {
        check_state("Acrobot::set_state", state, 4)?;
        self.state = Some([state[0], state[1], state[2], state[3]]);
        Ok(())
    }

    /// Writes the observation of the current state.
    pub fn observe(&self, obs: &mut [f64]) -> Result<()> {
        let s = self.state.ok_or_else(|| not_reset(Self::ID))?;
        write_obs("Acrobot::observe", obs, &s)
    }
}

fn write_obs(op: &'static str, obs: &mut [f64], s: &[f64; 4]) -> Result<()> {
    write_f32_obs(
        op,
        obs,
        &[s[0].cos(), s[0].sin(), s[1].cos(), s[1].sin(), s[2], s[3]],
    )
}

/// The time derivative of the augmented state `[θ₁, θ₂, θ̇₁, θ̇₂, torque]` (Gymnasium's
/// `_dsdt`, "book" variant; the torque is constant over the step). The expressions keep
/// Gymnasium's operation order so that results are bit-equal.
fn dsdt(s: &[f64; 5]) -> [f64; 5] {
    let (m1, m2, l1) = (LINK_MASS_1, LINK_MASS_2, LINK_LENGTH_1);
    let (lc1, lc2) = (LINK_COM_POS_1, LINK_COM_POS_2);
    let (i1, i2) = (LINK_MOI, LINK_MOI);
    let g = 9.8;
    let a = s[4];
    let (theta1, theta2, dtheta1, dtheta2) = (s[0], s[1], s[2], s[3]);
    let d1 =
        m1 * (lc1 * lc1) + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
    let d2 = m2 * (lc2 * lc2 + l1 * lc2 * theta2.cos()) + i2;
    let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -m2 * l1 * lc2 * pow2(dtheta2) * theta2.sin()
        - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
        + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * pow2(dtheta1) * theta2.sin() - phi2)
        / (m2 * (lc2 * lc2) + i2 - pow2(d2) / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0]
}

/// One classical Runge–Kutta step of `dsdt` over `dt` (Gymnasium's `rk4` with `t = [0, dt]`).
fn rk4(y0: &[f64; 5], dt: f64) -> [f64; 5] {
    let dt2 = dt / 2.0;
    let along = |k: &[f64; 5], h: f64| -> [f64; 5] { std::array::from_fn(|i| y0[i] + h * k[i]) };
    let k1 = dsdt(y0);
    let k2 = dsdt(&along(&k1, dt2));
    let k3 = dsdt(&along(&k2, dt2));
    let k4 = dsdt(&along(&k3, dt));
    std::array::from_fn(|i| y0[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

/// Gymnasium's `wrap`: shifts `x` by whole periods `hi − lo` into `[lo, hi]` by repeated
/// subtraction (bit-equal to Gymnasium for the usual one-period overshoot). A state injected
/// far outside (many periods) falls back to a remainder so the loop cannot run for ever.
fn wrap(mut x: f64, lo: f64, hi: f64) -> f64 {
    let diff = hi - lo;
    for _ in 0..64 {
        if x > hi {
            x -= diff;
        } else if x < lo {
            x += diff;
        } else {
            return x;
        }
    }
    lo + (x - lo).rem_euclid(diff)
}

/// Gymnasium's `bound`: `min(max(x, lo), hi)`.
fn bound(x: f64, lo: f64, hi: f64) -> f64 {
    x.max(lo).min(hi)
}

impl Env for Acrobot {
    crate::env::serde_state!();

    /// Gymnasium's `metadata["render_fps"]`.
    fn render_fps(&self) -> Option<f64> {
        Some(15.0)
    }

    fn render(&mut self) -> Result<crate::Frame> {
        if self.state.is_none() {
            return Err(not_reset(Self::ID));
        }
        let s = self.state();
        crate::render::classic::acrobot(s[0], s[1])
    }

    fn id(&self) -> &str {
        Self::ID
    }

    fn observation_space(&self) -> Space {
        f32_box(&[1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2])
    }

    fn action_space(&self) -> Space {
        Space::Discrete { n: 3 }
    }

    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()> {
        crate::env::check_obs("Acrobot::reset", obs, 6)?;
        let rng = self.rng.for_reset(seed);
        // Gymnasium casts the initial state to float32 (`.astype(np.float32)`).
        let state: [f64; 4] =
            std::array::from_fn(|_| f64::from(rng.random_range(-0.1..0.1_f64) as f32));
        self.state = Some(state);
        write_obs("Acrobot::reset", obs, &state)
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Step> {
        let a = discrete_action(Self::ID, action, 3)?;
        crate::env::check_obs("Acrobot::step", obs, 6)?;
        let s = self.state.ok_or_else(|| not_reset(Self::ID))?;
        let ns = rk4(&[s[0], s[1], s[2], s[3], AVAIL_TORQUE[a]], DT);
        let state = [
            wrap(ns[0], -PI, PI),
            wrap(ns[1], -PI, PI),
            bound(ns[2], -MAX_VEL_1, MAX_VEL_1),
            bound(ns[3], -MAX_VEL_2, MAX_VEL_2),
        ];
        self.state = Some(state);
        let terminated = -state[0].cos() - (state[1] + state[0]).cos() > 1.0;
        write_obs("Acrobot::step", obs, &state)?;
        Ok(Step {
            reward: if terminated { 0.0 } else { -1.0 },
            terminated,
            truncated: false,
        })
    }
}
