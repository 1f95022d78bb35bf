//! The single-environment interface and the time-limit wrapper.

use crate::error::{Error, Result};
use crate::space::Space;

/// What one step returns besides the observation (which is written into a caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// The reward of the transition.
    pub reward: f64,
    /// The episode ended in a terminal state (no bootstrap).
    pub terminated: bool,
    /// The episode was cut short (time limit); the final state is not terminal.
    pub truncated: bool,
}

impl Step {
    /// Whether the episode is over for either reason.
    pub fn done(&self) -> bool {
        self.terminated || self.truncated
    }
}

/// One environment. Observations are written into caller-provided `f64` buffers of length
/// `observation_space().flat_dim()`; actions are `f32` slices of length
/// `action_space().flat_dim()` (a discrete action is one value holding the index).
pub trait Env: Send {
    /// The registered id, e.g. `CartPole-v1`.
    fn id(&self) -> &str;

    /// The observation space.
    fn observation_space(&self) -> Space;

    /// The action space.
    fn action_space(&self) -> Space;

    /// For image observations, their (height, width, channels): the flat observation is the
    /// image row-major in (row, column, channel). `None` (the default) for vector observations.
    fn image_shape(&self) -> Option<[usize; 3]> {
        None
    }

    /// Starts a new episode and writes its first observation. `Some(seed)` re-seeds the
    /// environment's random number generator first; `None` continues its stream.
    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()>;

    /// Applies `action`, writes the next observation and returns the reward and flags.
    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Step>;

    /// Everything the environment will use from now on — the simulator's state, the episode's
    /// clock, the random generator's position — as JSON, for a checkpoint: after
    /// [`load_state`](Self::load_state) of it, a copy steps exactly as this one does. The default
    /// is an error: the environment cannot save its state.
    fn save_state(&self) -> Result<serde_json::Value> {
        Err(Error::InvalidArgument {
            op: "save_state",
            msg: format!("{} cannot save its state", self.id()),
        })
    }

    /// Restores what [`save_state`](Self::save_state) returned (on an environment made the same
    /// way).
    fn load_state(&mut self, _state: &serde_json::Value) -> Result<()> {
        Err(Error::InvalidArgument {
            op: "load_state",
            msg: format!("{} cannot load a state", self.id()),
        })
    }

    /// The current state as an RGB frame, for watching the agent. The default is an error: the
    /// environment cannot draw itself.
    fn render(&mut self) -> Result<crate::Frame> {
        Err(crate::Error::InvalidArgument {
            op: "Env::render",
            msg: format!("{} cannot render frames", self.id()),
        })
    }

    /// Frames per second of simulated time (Gymnasium's `metadata["render_fps"]`), so that a
    /// video can play at the speed the agent moves; `None` where time has no unit (MinAtar).
    fn render_fps(&self) -> Option<f64> {
        None
    }

    /// How much [`render`](Self::render) draws from now on; ignored by environments that draw
    /// the same either way.
    fn set_render_detail(&mut self, detail: crate::render::Detail) {
        let _ = detail;
    }
}

/// A serialisable value as an environment state.
pub(crate) fn to_state<T: serde::Serialize>(x: &T) -> Result<serde_json::Value> {
    serde_json::to_value(x).map_err(|e| Error::InvalidArgument {
        op: "save_state",
        msg: e.to_string(),
    })
}

/// The value of an environment state saved by [`to_state`].
pub(crate) fn from_state<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> Result<T> {
    T::deserialize(v).map_err(|e| Error::InvalidArgument {
        op: "load_state",
        msg: format!("not a state of this environment: {e}"),
    })
}

/// Implements [`Env::save_state`] and [`Env::load_state`] for an environment whose whole struct
/// is its state (it derives `Serialize` and `Deserialize`).
macro_rules! serde_state {
    () => {
        fn save_state(&self) -> $crate::error::Result<serde_json::Value> {
            $crate::env::to_state(self)
        }

        fn load_state(&mut self, state: &serde_json::Value) -> $crate::error::Result<()> {
            *self = $crate::env::from_state(state)?;
            Ok(())
        }
    };
}
pub(crate) use serde_state;

/// Checks an observation buffer's length.
pub(crate) fn check_obs(op: &'static str, obs: &[f64], dim: usize) -> Result<()> {
    if obs.len() != dim {
        return Err(Error::Shape {
            op,
            msg: format!("observation buffer has {} slots, need {dim}", obs.len()),
        });
    }
    Ok(())
}

/// Reads a discrete action (one finite, integral value in [0, n)).
pub(crate) fn discrete_action(id: &str, action: &[f32], n: usize) -> Result<usize> {
    match action {
        [a] if a.fract() == 0.0 && *a >= 0.0 && (*a as usize) < n => Ok(*a as usize),
        _ => Err(Error::InvalidAction {
            env: id.to_string(),
            msg: format!("expected one integer in [0, {n}), got {action:?}"),
        }),
    }
}

/// Checks a continuous action's length and finiteness.
pub(crate) fn continuous_action<'a>(id: &str, action: &'a [f32], dim: usize) -> Result<&'a [f32]> {
    if action.len() != dim || action.iter().any(|a| !a.is_finite()) {
        return Err(Error::InvalidAction {
            env: id.to_string(),
            msg: format!("expected {dim} finite values, got {action:?}"),
        });
    }
    Ok(action)
}

/// Truncates episodes after `max_steps` steps, as Gymnasium's `TimeLimit`: the step that reaches
/// the limit has `truncated = true` (and may be terminal as well).
pub struct TimeLimit<E> {
    inner: E,
    max_steps: usize,
    elapsed: usize,
}

impl<E: Env> TimeLimit<E> {
    /// Wraps `inner` with a limit of `max_steps` steps per episode.
    pub fn new(inner: E, max_steps: usize) -> Self {
        Self {
            inner,
            max_steps,
            elapsed: 0,
        }
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.inner
    }

    /// The wrapped environment, mutably (e.g. to inject a state).
    pub fn inner_mut(&mut self) -> &mut E {
        &mut self.inner
    }

    /// Steps taken in the current episode.
    pub fn elapsed(&self) -> usize {
        self.elapsed
    }
}

impl<E: Env> Env for TimeLimit<E> {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn observation_space(&self) -> Space {
        self.inner.observation_space()
    }

    fn action_space(&self) -> Space {
        self.inner.action_space()
    }

    fn image_shape(&self) -> Option<[usize; 3]> {
        self.inner.image_shape()
    }

    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()> {
        self.elapsed = 0;
        self.inner.reset(seed, obs)
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Step> {
        let mut s = self.inner.step(action, obs)?;
        self.elapsed += 1;
        if self.elapsed >= self.max_steps {
            s.truncated = true;
        }
        Ok(s)
    }

    fn save_state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({ "elapsed": self.elapsed, "inner": self.inner.save_state()? }))
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.elapsed = from_state(&state["elapsed"])?;
        self.inner.load_state(&state["inner"])
    }

    fn render(&mut self) -> Result<crate::Frame> {
        self.inner.render()
    }

    fn render_fps(&self) -> Option<f64> {
        self.inner.render_fps()
    }

    fn set_render_detail(&mut self, detail: crate::render::Detail) {
        self.inner.set_render_detail(detail);
    }
}

/// Records each episode's undiscounted return and length, as Gymnasium's
/// `RecordEpisodeStatistics` (and SB3's `Monitor`): after a step that ends an episode,
/// [`last_episode`](Self::last_episode) holds its (return, length). [`crate::VecEnv`] keeps the
/// same statistics for its environments itself.
pub struct EpisodeStats<E> {
    inner: E,
    ret: f64,
    len: usize,
    last: Option<(f64, usize)>,
}

impl<E: Env> EpisodeStats<E> {
    /// Wraps `inner`.
    pub fn new(inner: E) -> Self {
        Self {
            inner,
            ret: 0.0,
            len: 0,
            last: None,
        }
    }

    /// (return, length) of the episode that ended at the last step, else `None`.
    pub fn last_episode(&self) -> Option<(f64, usize)> {
        self.last
    }

    /// The wrapped environment.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E: Env> Env for EpisodeStats<E> {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn observation_space(&self) -> Space {
        self.inner.observation_space()
    }

    fn action_space(&self) -> Space {
        self.inner.action_space()
    }

    fn image_shape(&self) -> Option<[usize; 3]> {
        self.inner.image_shape()
    }

    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()> {
        (self.ret, self.len, self.last) = (0.0, 0, None);
        self.inner.reset(seed, obs)
    }

    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> Result<Step> {
        let s = self.inner.step(action, obs)?;
        self.ret += s.reward;
        self.len += 1;
        self.last = None;
        if s.done() {
            self.last = Some((self.ret, self.len));
            (self.ret, self.len) = (0.0, 0);
        }
        Ok(s)
    }

    fn render(&mut self) -> Result<crate::Frame> {
        self.inner.render()
    }

    fn render_fps(&self) -> Option<f64> {
        self.inner.render_fps()
    }

    fn set_render_detail(&mut self, detail: crate::render::Detail) {
        self.inner.set_render_detail(detail);
    }

    fn save_state(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({
            "ret": self.ret,
            "len": self.len,
            "last": self.last,
            "inner": self.inner.save_state()?,
        }))
    }

    fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        self.ret = from_state(&state["ret"])?;
        self.len = from_state(&state["len"])?;
        self.last = from_state(&state["last"])?;
        self.inner.load_state(&state["inner"])
    }
}
