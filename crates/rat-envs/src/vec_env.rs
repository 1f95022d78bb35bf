//! n environments stepped together by a few threads, with auto-reset.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::batch::BatchEnv;
use crate::env::{Env, from_state};
use crate::error::{Error, Result};
use crate::space::Space;

/// The output of [`VecEnv::step`], allocated once by [`VecEnv::buffers`] and reused every step.
#[derive(Debug, Clone)]
pub struct StepBuffers {
    /// Observations after the step, (n x obs_dim) row-major. For an environment whose episode
    /// just ended, this is already the first observation of its next episode.
    pub obs: Vec<f64>,
    /// Rewards of the step (n).
    pub rewards: Vec<f64>,
    /// Whether each episode ended in a terminal state at this step (n).
    pub terminated: Vec<bool>,
    /// Whether each episode was cut short at this step (n).
    pub truncated: Vec<bool>,
    /// The last observation of each episode that ended at this step (n x obs_dim); rows of
    /// environments that did not finish are left as they were.
    pub final_obs: Vec<f64>,
    /// (undiscounted return, length) of each episode that ended at this step, else `None` (n).
    pub finished: Vec<Option<(f64, usize)>>,
}

impl StepBuffers {
    /// Whether environment `i`'s episode ended at the last step.
    pub fn done(&self, i: usize) -> bool {
        self.terminated[i] || self.truncated[i]
    }

    /// The episodes that ended at the last step, as (env index, return, length).
    pub fn episodes(&self) -> impl Iterator<Item = (usize, f64, usize)> + '_ {
        self.finished
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|(r, l)| (i, r, l)))
    }
}

/// One environment, its running episode statistics, its action and the outputs of its last step.
struct Slot {
    env: Box<dyn Env>,
    ret: f64,
    len: usize,
    action: Vec<f32>,
    obs: Vec<f64>,
    final_obs: Vec<f64>,
    reward: f64,
    terminated: bool,
    truncated: bool,
    finished: Option<(f64, usize)>,
}

impl Slot {
    /// Steps with the stored action; on episode end keeps the final observation and resets.
    fn step(&mut self) -> Result<()> {
        let s = self.env.step(&self.action, &mut self.obs)?;
        self.ret += s.reward;
        self.len += 1;
        (self.reward, self.terminated, self.truncated) = (s.reward, s.terminated, s.truncated);
        self.finished = None;
        if s.done() {
            self.final_obs.copy_from_slice(&self.obs);
            self.finished = Some((self.ret, self.len));
            (self.ret, self.len) = (0.0, 0);
            self.env.reset(None, &mut self.obs)?;
        }
        Ok(())
    }
}

/// What the stepping threads share: the slots and a work counter for the current step.
struct Shared {
    slots: Vec<Mutex<Slot>>,
    /// Bumped once per step; helpers wake on a change.
    generation: AtomicU64,
    /// The next slot index to claim in the current step.
    next: AtomicUsize,
    /// Slots of the current step not yet finished.
    remaining: AtomicUsize,
    /// The first error of the current step.
    error: Mutex<Option<Error>>,
    stop: AtomicBool,
}

/// How long an idle helper spins before it parks: back-to-back steps then cost no wake-up, and an
/// idle helper gives its core back soon (to the policy's own threads between steps).
const SPIN: Duration = Duration::from_micros(200);

impl Shared {
    fn lock(&self, i: usize) -> MutexGuard<'_, Slot> {
        // A poisoned slot only means a panic elsewhere; its data is still a valid environment.
        self.slots[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims and steps slots until none are left in the current step.
    fn work(&self) {
        let n = self.slots.len();
        loop {
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            if i >= n {
                return;
            }
            // A panicking environment must still count as done, or the step would wait forever.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.lock(i).step()))
                    .unwrap_or_else(|_| {
                        Err(Error::InvalidArgument {
                            op: "VecEnv::step",
                            msg: format!("environment {i} panicked"),
                        })
                    });
            if let Err(e) = result {
                self.error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
            }
            self.remaining.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn helper_loop(&self) {
        let mut seen = self.generation.load(Ordering::Acquire);
        loop {
            let idle = Instant::now();
            loop {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                let g = self.generation.load(Ordering::Acquire);
                if g != seen {
                    seen = g;
                    break;
                }
                if idle.elapsed() < SPIN {
                    std::hint::spin_loop();
                } else {
                    std::thread::park_timeout(Duration::from_millis(50));
                }
            }
            self.work();
        }
    }
}

/// n copies of an environment stepped together.
///
/// Each step, the calling thread and `workers − 1` helper threads claim environments one at a
/// time from a shared counter, so the calling thread starts at once and a helper joins as soon as
/// it is awake (waking a parked thread can take longer than stepping a cheap environment).
/// Every environment writes only its own slot, and the slots are copied into the caller's
/// [`StepBuffers`] at the end: results are identical to stepping the environments one after
/// another with the same seeds, and stepping allocates nothing.
///
/// A library that steps its own batch ([`BatchEnv`]) goes behind the same interface with
/// [`VecEnv::from_batch`].
pub struct VecEnv {
    backend: Backend,
    obs_space: Space,
    act_space: Space,
    image_shape: Option<[usize; 3]>,
    id: String,
    seed: u64,
    seeded: bool,
}

impl VecEnv {
    /// Batches `envs` (all with the same spaces) over `workers` threads, the calling thread
    /// included (1 = step on the calling thread only). The first [`reset`](Self::reset) seeds
    /// environment i with `seed + i`.
    pub fn new(envs: Vec<Box<dyn Env>>, workers: usize, seed: u64) -> Result<Self> {
        const OP: &str = "VecEnv::new";
        let Some(first) = envs.first() else {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: "need at least one environment".into(),
            });
        };
        if workers == 0 {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: "need at least one worker".into(),
            });
        }
        let (obs_space, act_space) = (first.observation_space(), first.action_space());
        let image_shape = first.image_shape();
        let id = first.id().to_string();
        if let Some(e) = envs
            .iter()
            .find(|e| e.observation_space() != obs_space || e.action_space() != act_space)
        {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!("{} has other spaces than {id}", e.id()),
            });
        }
        let (d, a) = (obs_space.flat_dim(), act_space.flat_dim());
        let slots = envs
            .into_iter()
            .map(|env| {
                Mutex::new(Slot {
                    env,
                    ret: 0.0,
                    len: 0,
                    action: vec![0.0; a],
                    obs: vec![0.0; d],
                    final_obs: vec![0.0; d],
                    reward: 0.0,
                    terminated: false,
                    truncated: false,
                    finished: None,
                })
            })
            .collect::<Vec<_>>();
        let helpers_wanted = workers.min(slots.len()) - 1;
        let shared = Arc::new(Shared {
            slots,
            generation: AtomicU64::new(0),
            next: AtomicUsize::new(usize::MAX / 2),
            remaining: AtomicUsize::new(0),
            error: Mutex::new(None),
            stop: AtomicBool::new(false),
        });
        let mut helpers = Vec::with_capacity(helpers_wanted);
        for k in 0..helpers_wanted {
            let s = Arc::clone(&shared);
            let handle = std::thread::Builder::new()
                .name(format!("rat-envs-{k}"))
                .spawn(move || s.helper_loop())
                .map_err(|e| Error::InvalidArgument {
                    op: OP,
                    msg: format!("cannot start a worker thread: {e}"),
                })?;
            helpers.push(handle);
        }
        Ok(Self {
            backend: Backend::Pool { shared, helpers },
            obs_space,
            act_space,
            image_shape,
            id,
            seed,
            seeded: false,
        })
    }

    /// Wraps a batch that its library steps and resets by itself. The first
    /// [`reset`](Self::reset) seeds it with `seed`. Its ends of episodes all count as terminal
    /// (such libraries do not report time-outs apart), and as they do not keep the last frame
    /// of an episode, `final_obs` gets the next episode's first one.
    pub fn from_batch(batch: Box<dyn BatchEnv>, seed: u64) -> Self {
        let n = batch.num_envs();
        Self {
            obs_space: batch.observation_space(),
            act_space: batch.action_space(),
            image_shape: batch.image_shape(),
            id: batch.id().to_string(),
            backend: Backend::Batch {
                batch,
                returns: vec![0.0; n],
                lengths: vec![0; n],
                done: vec![false; n],
            },
            seed,
            seeded: false,
        }
    }

    /// n, the number of environments.
    pub fn num_envs(&self) -> usize {
        match &self.backend {
            Backend::Pool { shared, .. } => shared.slots.len(),
            Backend::Batch { batch, .. } => batch.num_envs(),
        }
    }

    /// Number of stepping threads, the calling thread included (for a batch, its library's).
    pub fn workers(&self) -> usize {
        match &self.backend {
            Backend::Pool { helpers, .. } => helpers.len() + 1,
            Backend::Batch { batch, .. } => batch.threads().max(1),
        }
    }

    /// The observation space of one environment.
    pub fn observation_space(&self) -> &Space {
        &self.obs_space
    }

    /// (height, width, channels) of image observations (see [`Env::image_shape`]), else `None`.
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        self.image_shape
    }

    /// The action space of one environment.
    pub fn action_space(&self) -> &Space {
        &self.act_space
    }

    /// The id of the environments.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Output buffers of the right sizes, to be reused for every step.
    pub fn buffers(&self) -> StepBuffers {
        let (n, d) = (self.num_envs(), self.obs_space.flat_dim());
        StepBuffers {
            obs: vec![0.0; n * d],
            rewards: vec![0.0; n],
            terminated: vec![false; n],
            truncated: vec![false; n],
            final_obs: vec![0.0; n * d],
            finished: vec![None; n],
        }
    }

    /// Whether a library steps the whole batch itself (Procgen), rather than this pool.
    pub fn is_library_batch(&self) -> bool {
        matches!(self.backend, Backend::Batch { .. })
    }

    /// Environment `i`'s current state as an RGB frame ([`Env::render`], or
    /// [`BatchEnv::render`] for a batch its library steps); an error for an environment that
    /// cannot draw itself.
    pub fn render(&self, i: usize) -> Result<crate::Frame> {
        if i >= self.num_envs() {
            return Err(Error::InvalidArgument {
                op: "VecEnv::render",
                msg: format!("environment {i} of {}", self.num_envs()),
            });
        }
        match &self.backend {
            Backend::Pool { shared, .. } => shared.lock(i).env.render(),
            Backend::Batch { batch, .. } => batch.render(i),
        }
    }

    /// Frames per second of simulated time ([`Env::render_fps`]) of environment 0; `None` for
    /// a library's batch.
    pub fn render_fps(&self) -> Option<f64> {
        match &self.backend {
            Backend::Pool { shared, .. } => shared.lock(0).env.render_fps(),
            Backend::Batch { .. } => None,
        }
    }

    /// How much every environment draws from now on ([`Env::set_render_detail`]).
    pub fn set_render_detail(&self, detail: crate::render::Detail) {
        if let Backend::Pool { shared, .. } = &self.backend {
            for i in 0..self.num_envs() {
                shared.lock(i).env.set_render_detail(detail);
            }
        }
    }

    /// Every environment's state ([`Env::save_state`]) with its current observation and its
    /// episode's return and length so far, for a checkpoint: after [`load_state`](Self::load_state)
    /// on environments made the same way, [`step`](Self::step) continues exactly. An error for a
    /// batch stepped by its library (Procgen's C API has no way to save a game).
    pub fn save_state(&self) -> Result<serde_json::Value> {
        let Backend::Pool { shared, .. } = &self.backend else {
            return Err(Error::InvalidArgument {
                op: "VecEnv::save_state",
                msg: format!(
                    "{}: the library that steps this batch cannot save its games' states",
                    self.id
                ),
            });
        };
        let slots = (0..self.num_envs())
            .map(|i| {
                let slot = shared.lock(i);
                Ok(serde_json::json!({
                    "env": slot.env.save_state()?,
                    "obs": slot.obs,
                    "ret": slot.ret,
                    "len": slot.len,
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(serde_json::json!({ "id": self.id, "seeded": self.seeded, "slots": slots }))
    }

    /// Restores what [`save_state`](Self::save_state) saved, on as many environments of the
    /// same id.
    pub fn load_state(&mut self, state: &serde_json::Value) -> Result<()> {
        let n = self.num_envs();
        let bad = |msg: String| Error::InvalidArgument {
            op: "VecEnv::load_state",
            msg,
        };
        if state["id"].as_str() != Some(self.id.as_str()) {
            return Err(bad(format!(
                "the state is of {}, not {}",
                state["id"], self.id
            )));
        }
        let slots = state["slots"]
            .as_array()
            .filter(|s| s.len() == n)
            .ok_or_else(|| bad(format!("the state does not hold {n} environments")))?;
        let Backend::Pool { shared, .. } = &mut self.backend else {
            return Err(bad(format!(
                "{}: a library's batch cannot load a state",
                self.id
            )));
        };
        for (i, saved) in slots.iter().enumerate() {
            let mut slot = shared.lock(i);
            slot.env.load_state(&saved["env"])?;
            let obs: Vec<f64> = from_state(&saved["obs"])?;
            if obs.len() != slot.obs.len() {
                return Err(bad(format!(
                    "environment {i}: an observation of another size"
                )));
            }
            slot.obs = obs;
            slot.ret = from_state(&saved["ret"])?;
            slot.len = from_state(&saved["len"])?;
        }
        self.seeded = from_state(&state["seeded"])?;
        Ok(())
    }

    /// Resets every environment and writes the first observations (n x obs_dim). The first call
    /// seeds environment i with `seed + i`; later calls continue each environment's stream.
    pub fn reset(&mut self, obs: &mut [f64]) -> Result<()> {
        let d = self.obs_space.flat_dim();
        check_len("VecEnv::reset (obs)", obs.len(), self.num_envs() * d)?;
        let base = (!self.seeded).then_some(self.seed);
        self.seeded = true;
        let shared = match &mut self.backend {
            Backend::Pool { shared, .. } => shared,
            Backend::Batch {
                batch,
                returns,
                lengths,
                ..
            } => {
                returns.fill(0.0);
                lengths.fill(0);
                return batch.reset(base, obs);
            }
        };
        for (i, row) in obs.chunks_mut(d).enumerate() {
            let mut slot = shared.lock(i);
            slot.env
                .reset(base.map(|s| s.wrapping_add(i as u64)), row)?;
            slot.obs.copy_from_slice(row);
            (slot.ret, slot.len) = (0.0, 0);
        }
        Ok(())
    }

    /// Steps every environment with its row of `actions` (n x act_dim, a discrete action being
    /// one value holding the index). A finished environment is reset at once: its final
    /// observation goes to `final_obs`, its statistics to `finished`, and `obs` holds the first
    /// observation of its next episode.
    pub fn step(&mut self, actions: &[f32], out: &mut StepBuffers) -> Result<()> {
        let (n, d, a) = (
            self.num_envs(),
            self.obs_space.flat_dim(),
            self.act_space.flat_dim(),
        );
        check_len("VecEnv::step (actions)", actions.len(), n * a)?;
        check_len("VecEnv::step (obs)", out.obs.len(), n * d)?;
        check_len("VecEnv::step (final_obs)", out.final_obs.len(), n * d)?;
        for (name, len) in [
            ("rewards", out.rewards.len()),
            ("terminated", out.terminated.len()),
            ("truncated", out.truncated.len()),
            ("finished", out.finished.len()),
        ] {
            check_len(name, len, n)?;
        }
        let (shared, helpers) = match &mut self.backend {
            Backend::Pool { shared, helpers } => (shared, helpers),
            Backend::Batch {
                batch,
                returns,
                lengths,
                done,
            } => {
                batch.step(actions, &mut out.obs, &mut out.rewards, done)?;
                for i in 0..n {
                    returns[i] += out.rewards[i];
                    lengths[i] += 1;
                    (out.terminated[i], out.truncated[i]) = (done[i], false);
                    out.finished[i] = None;
                    if done[i] {
                        out.final_obs[i * d..(i + 1) * d]
                            .copy_from_slice(&out.obs[i * d..(i + 1) * d]);
                        out.finished[i] = Some((returns[i], lengths[i]));
                        (returns[i], lengths[i]) = (0.0, 0);
                    }
                }
                return Ok(());
            }
        };
        let s = &**shared;
        for (i, act) in actions.chunks(a).enumerate() {
            s.lock(i).action.copy_from_slice(act);
        }
        s.remaining.store(n, Ordering::Release);
        s.next.store(0, Ordering::Release);
        s.generation.fetch_add(1, Ordering::AcqRel);
        for h in helpers.iter() {
            h.thread().unpark();
        }
        s.work();
        while s.remaining.load(Ordering::Acquire) > 0 {
            std::hint::spin_loop();
        }
        // `next` now stays past the end: a helper that is late finds nothing to claim. One that
        // is still between its last slot and its next claim when the next step starts simply
        // joins that step (actions and `remaining` are set before `next` is reset).
        if let Some(e) = s.error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        for i in 0..n {
            let slot = s.lock(i);
            out.obs[i * d..(i + 1) * d].copy_from_slice(&slot.obs);
            (
                out.rewards[i],
                out.terminated[i],
                out.truncated[i],
                out.finished[i],
            ) = (slot.reward, slot.terminated, slot.truncated, slot.finished);
            if slot.finished.is_some() {
                out.final_obs[i * d..(i + 1) * d].copy_from_slice(&slot.final_obs);
            }
        }
        Ok(())
    }
}

/// Who steps the environments.
enum Backend {
    /// [`Env`]s on a thread pool.
    Pool {
        shared: Arc<Shared>,
        helpers: Vec<JoinHandle<()>>,
    },
    /// A library's own batch, with the running statistics of its episodes.
    Batch {
        batch: Box<dyn BatchEnv>,
        returns: Vec<f64>,
        lengths: Vec<usize>,
        done: Vec<bool>,
    },
}

impl Drop for VecEnv {
    fn drop(&mut self) {
        let Backend::Pool { shared, helpers } = &mut self.backend else {
            return;
        };
        shared.stop.store(true, Ordering::Release);
        for h in helpers.drain(..) {
            h.thread().unpark();
            // A helper that panicked has nothing left to clean up.
            let _ = h.join();
        }
    }
}

fn check_len(op: &'static str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::Shape {
            op,
            msg: format!("buffer has {got} elements, need {want}"),
        });
    }
    Ok(())
}
