//! Classic control, built in: Gymnasium 1.4.0's CartPole-v1, Pendulum-v1, Acrobot-v1,
//! MountainCar-v0 and MountainCarContinuous-v0 (dynamics, rewards, termination, time limits).
//!
//! Each environment reproduces Gymnasium's arithmetic operation by operation, in `f64` where
//! Gymnasium computes in float64 and through `f32` where NumPy would compute or store in
//! float32, so trajectories agree with Gymnasium's to the last bit given the same initial
//! state and actions (`tests/classic_parity.rs` checks this against Gymnasium itself).
//! Observations are Gymnasium's float32 observations, widened to `f64`. Reset noise has
//! Gymnasium's distributions but comes from a per-environment [`ChaCha8Rng`], so the numbers
//! differ from NumPy's; [`CartPole::set_state`] and its siblings inject a state for replay.

mod acrobot;
mod cartpole;
mod mountain_car;
mod mountain_car_continuous;
mod pendulum;

pub use acrobot::Acrobot;
pub use cartpole::CartPole;
pub use mountain_car::MountainCar;
pub use mountain_car_continuous::MountainCarContinuous;
pub use pendulum::Pendulum;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::env::{Env, TimeLimit};
use crate::error::{Error, Result};
use crate::space::Space;

/// The classic-control ids.
pub const IDS: &[&str] = &[
    "CartPole-v1",
    "Pendulum-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
];

/// A classic-control environment by id, wrapped in its time limit; `None` for other ids.
pub fn make(id: &str) -> Option<Box<dyn Env>> {
    Some(match id {
        "CartPole-v1" => Box::new(TimeLimit::new(CartPole::new(), CartPole::MAX_EPISODE_STEPS)),
        "Pendulum-v1" => Box::new(TimeLimit::new(Pendulum::new(), Pendulum::MAX_EPISODE_STEPS)),
        "Acrobot-v1" => Box::new(TimeLimit::new(Acrobot::new(), Acrobot::MAX_EPISODE_STEPS)),
        "MountainCar-v0" => Box::new(TimeLimit::new(
            MountainCar::new(),
            MountainCar::MAX_EPISODE_STEPS,
        )),
        "MountainCarContinuous-v0" => Box::new(TimeLimit::new(
            MountainCarContinuous::new(),
            MountainCarContinuous::MAX_EPISODE_STEPS,
        )),
        _ => return None,
    })
}

/// An environment's random number generator: re-seeded by `reset(Some(seed))`, continued by
/// `reset(None)`, and seeded from the thread's entropy source if it was never seeded.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct EnvRng {
    rng: Option<ChaCha8Rng>,
}

impl EnvRng {
    /// The generator to draw this reset's noise from.
    fn for_reset(&mut self, seed: Option<u64>) -> &mut ChaCha8Rng {
        if let Some(seed) = seed {
            self.rng = Some(ChaCha8Rng::seed_from_u64(seed));
        }
        self.rng
            .get_or_insert_with(|| ChaCha8Rng::from_rng(&mut rand::rng()))
    }
}

/// Writes `values` as Gymnasium's float32 observation: each rounded to `f32`, then widened.
fn write_f32_obs(op: &'static str, obs: &mut [f64], values: &[f64]) -> Result<()> {
    crate::env::check_obs(op, obs, values.len())?;
    for (o, v) in obs.iter_mut().zip(values) {
        *o = f64::from(*v as f32);
    }
    Ok(())
}

/// A float32 box symmetric about zero, `[-high, high]`, with the bounds rounded to `f32` as
/// Gymnasium's `Box(..., dtype=np.float32)` stores them (±∞ stays ±∞).
fn f32_box(high: &[f64]) -> Space {
    let high: Vec<f64> = high.iter().map(|h| f64::from(*h as f32)).collect();
    Space::Box {
        low: high.iter().map(|h| -h).collect(),
        high,
    }
}

/// A float32 box with bounds `low` and `high`, rounded to `f32` as Gymnasium stores them.
fn f32_box_between(low: &[f64], high: &[f64]) -> Space {
    let round = |v: &[f64]| v.iter().map(|x| f64::from(*x as f32)).collect();
    Space::Box {
        low: round(low),
        high: round(high),
    }
}

/// Checks a state given to `set_state`: its length and that every value is finite.
fn check_state(op: &'static str, state: &[f64], dim: usize) -> Result<()> {
    if state.len() != dim {
        return Err(Error::Shape {
            op,
            msg: format!("state has {} values, need {dim}", state.len()),
        });
    }
    if state.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument {
            op,
            msg: format!("state must be finite, got {state:?}"),
        });
    }
    Ok(())
}

/// The error for stepping (or observing) before the first reset or `set_state`.
fn not_reset(id: &str) -> Error {
    Error::InvalidArgument {
        op: "step",
        msg: format!("{id}: call reset (or set_state) before step"),
    }
}

/// `x ** 2` as Python and NumPy float64 scalars compute it: through libm's `pow`, which can
/// differ from `x * x` in the last bit (`black_box` keeps the compiler from turning it into
/// a multiplication). Gymnasium's Pendulum and Acrobot square this way; CartPole uses
/// `np.square`, which is a multiplication.
fn pow2(x: f64) -> f64 {
    x.powf(std::hint::black_box(2.0))
}

/// `x ** 2` for a NumPy float32 scalar: libm's `powf`, as [`pow2`].
fn pow2_f32(x: f32) -> f32 {
    x.powf(std::hint::black_box(2.0))
}
