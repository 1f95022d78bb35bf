//! CartPole-v1 (Barto, Sutton & Anderson 1983), as Gymnasium 1.4.0's `CartPoleEnv`.

use rand::Rng;

use super::{EnvRng, check_state, f32_box, not_reset, write_f32_obs};
use crate::env::{Env, Step, discrete_action};
use crate::error::Result;
use crate::space::Space;

const GRAVITY: f64 = 9.8;
const MASSCART: f64 = 1.0;
const MASSPOLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASSPOLE + MASSCART;
/// Half the pole's length.
const LENGTH: f64 = 0.5;
const POLEMASS_LENGTH: f64 = MASSPOLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
/// Seconds between state updates.
const TAU: f64 = 0.02;
/// 12 degrees, computed as Gymnasium does (`12 * 2 * math.pi / 360`) so the bound is bit-equal.
const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
const X_THRESHOLD: f64 = 2.4;

/// A pole hinged on a cart that is pushed left or right with a force of 10 N.
///
/// * State and observation: `[x, ẋ, θ, θ̇]` (θ = 0 is upright); the state is `f64`, the
///   observation its float32 rounding. Observation space: the float32 box
///   `±[4.8, ∞, 24°, ∞]`.
/// * Action: `Discrete(2)`; `0` pushes left (F = −10), `1` pushes right (F = +10).
/// * Dynamics (explicit Euler, τ = 0.02 s, g = 9.8, m_c = 1, m_p = 0.1, l = 0.5):
///   `temp = (F + m_p l θ̇² sin θ) / (m_c + m_p)`,
///   `θ̈ = (g sin θ − cos θ · temp) / (l (4/3 − m_p cos² θ / (m_c + m_p)))`,
///   `ẍ = temp − m_p l θ̈ cos θ / (m_c + m_p)`, then `x += τ ẋ`, `ẋ += τ ẍ`, `θ += τ θ̇`,
///   `θ̇ += τ θ̈` (positions use the old velocities).
/// * Termination: `|x| > 2.4` or `|θ| > 12°`. Reward: `1` every step, the terminating step
///   included (Gymnasium's default `sutton_barto_reward=False`); `0` on steps taken after
///   termination without a reset, as Gymnasium does.
/// * Reset: every state component uniform in `[−0.05, 0.05)`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CartPole {
    state: Option<[f64; 4]>,
    /// Whether a terminating step was already returned this episode (Gymnasium's
    /// `steps_beyond_terminated is not None`): later steps then earn no reward.
    terminated_before: bool,
    rng: EnvRng,
}

impl CartPole {
    /// Gymnasium's time limit for CartPole-v1.
    pub const MAX_EPISODE_STEPS: usize = 500;
    /// The registered id.
    pub const ID: &'static str = "CartPole-v1";

    /// A cart-pole that has not been reset yet (its generator is unseeded).
    pub fn new() -> Self {
        Self::default()
    }

    /// The current state `[x, ẋ, θ, θ̇]` in full precision (empty before the first reset).
    pub fn state(&self) -> Vec<f64> {
        self.state.map(|s| s.to_vec()).unwrap_or_default()
    }

    /// Replaces the state with `[x, ẋ, θ, θ̇]` (finite values) as the start of an episode: the
    /// next terminating step earns its reward of 1.
    pub fn set_state(&mut self, state: &[f64]) -> Result<()> {
        check_state("CartPole::set_state", state, 4)?;
        self.state = Some([state[0], state[1], state[2], state[3]]);
        self.terminated_before = false;
        Ok(())
    }

    /// Writes the observation of the current state (the state rounded to `f32`).
    pub fn observe(&self, obs: &mut [f64]) -> Result<()> {
        let s = self.state.ok_or_else(|| not_reset(Self::ID))?;
        write_f32_obs("CartPole::observe", obs, &s)
    }
}

impl Env for CartPole {
    crate::env::serde_state!();

    /// Gymnasium's `metadata["render_fps"]`.
    fn render_fps(&self) -> Option<f64> {
        Some(50.0)
    }

    fn render(&mut self) -> Result<crate::Frame> {
        if self.state.is_none() {
            return Err(not_reset(Self::ID));
        }
        crate::render::classic::cartpole(&self.state())
    }

    fn id(&self) -> &str {
        Self::ID
    }

    fn observation_space(&self) -> Space {
        f32_box(&[
            X_THRESHOLD * 2.0,
            f64::INFINITY,
            THETA_THRESHOLD * 2.0,
            f64::INFINITY,
        ])
    }

    fn action_space(&self) -> Space {
        Space::Discrete { n: 2 }
    }

    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()> {
        crate::env::check_obs("CartPole::reset", obs, 4)?;
        let rng = self.rng.for_reset(seed);
        let state: [f64; 4] = std::array::from_fn(|_| rng.random_range(-0.05..0.05));
        self.state = Some(state);
        self.terminated_before = false;
        write_f32_obs("CartPole::reset", obs, &state)
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Step> {
        let a = discrete_action(Self::ID, action, 2)?;
        crate::env::check_obs("CartPole::step", obs, 4)?;
        let [x, x_dot, theta, theta_dot] = self.state.ok_or_else(|| not_reset(Self::ID))?;
        let force = if a == 1 { FORCE_MAG } else { -FORCE_MAG };
        let (sintheta, costheta) = (theta.sin(), theta.cos());
        // The operation order follows Gymnasium's expressions so the results are bit-equal.
        let temp = (force + POLEMASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS;
        let thetaacc = (GRAVITY * sintheta - costheta * temp)
            / (LENGTH * (4.0 / 3.0 - MASSPOLE * (costheta * costheta) / TOTAL_MASS));
        let xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS;
        let state = [
            x + TAU * x_dot,
            x_dot + TAU * xacc,
            theta + TAU * theta_dot,
            theta_dot + TAU * thetaacc,
        ];
        self.state = Some(state);

        let (x, theta) = (state[0], state[2]);
        let terminated = !(-X_THRESHOLD..=X_THRESHOLD).contains(&x)
            || !(-THETA_THRESHOLD..=THETA_THRESHOLD).contains(&theta);
        let reward = if !terminated {
            1.0
        } else if !self.terminated_before {
            self.terminated_before = true;
            1.0
        } else {
            0.0
        };
        write_f32_obs("CartPole::step", obs, &state)?;
        Ok(Step {
            reward,
            terminated,
            truncated: false,
        })
    }
}
