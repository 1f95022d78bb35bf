//! n environments stepped together on a worker pool, with auto-reset.

use rayon::prelude::*;

use crate::env::Env;
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

/// One environment with its running episode statistics.
struct Slot {
    env: Box<dyn Env>,
    ret: f64,
    len: usize,
}

/// n copies of an environment stepped together.
///
/// The environments are split into contiguous chunks, one per worker of a dedicated thread
/// pool; each worker writes its chunk's rows of the caller's [`StepBuffers`]. Stepping allocates
/// nothing, and the results are identical to stepping the environments one after another with
/// the same seeds (each environment only touches its own state and rows).
pub struct VecEnv {
    slots: Vec<Slot>,
    pool: Option<rayon::ThreadPool>,
    obs_space: Space,
    act_space: Space,
    seed: u64,
    seeded: bool,
}

impl VecEnv {
    /// Batches `envs` (all with the same spaces) over `workers` threads (1 = step on the calling
    /// thread). The first [`reset`](Self::reset) seeds environment i with `seed + i`.
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
        if let Some(e) = envs
            .iter()
            .find(|e| e.observation_space() != obs_space || e.action_space() != act_space)
        {
            return Err(Error::InvalidArgument {
                op: OP,
                msg: format!("{} has other spaces than {}", e.id(), first.id()),
            });
        }
        let pool = if workers > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .thread_name(|i| format!("rat-envs-{i}"))
                .build()
                .map_err(|e| Error::InvalidArgument {
                    op: OP,
                    msg: format!("cannot start {workers} worker threads: {e}"),
                })?;
            Some(pool)
        } else {
            None
        };
        let slots = envs
            .into_iter()
            .map(|env| Slot {
                env,
                ret: 0.0,
                len: 0,
            })
            .collect();
        Ok(Self {
            slots,
            pool,
            obs_space,
            act_space,
            seed,
            seeded: false,
        })
    }

    /// n, the number of environments.
    pub fn num_envs(&self) -> usize {
        self.slots.len()
    }

    /// Number of worker threads (1 when stepping on the calling thread).
    pub fn workers(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.current_num_threads())
    }

    /// The observation space of one environment.
    pub fn observation_space(&self) -> &Space {
        &self.obs_space
    }

    /// The action space of one environment.
    pub fn action_space(&self) -> &Space {
        &self.act_space
    }

    /// The id of the environments.
    pub fn id(&self) -> &str {
        self.slots[0].env.id()
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

    /// Resets every environment and writes the first observations (n x obs_dim). The first call
    /// seeds environment i with `seed + i`; later calls continue each environment's stream.
    pub fn reset(&mut self, obs: &mut [f64]) -> Result<()> {
        let d = self.obs_space.flat_dim();
        check_len("VecEnv::reset (obs)", obs.len(), self.num_envs() * d)?;
        let base = (!self.seeded).then_some(self.seed);
        self.seeded = true;
        for (i, (slot, row)) in self.slots.iter_mut().zip(obs.chunks_mut(d)).enumerate() {
            slot.env
                .reset(base.map(|s| s.wrapping_add(i as u64)), row)?;
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
        let chunk = n.div_ceil(self.workers());
        let rows = self
            .slots
            .par_chunks_mut(chunk)
            .zip(actions.par_chunks(chunk * a))
            .zip(out.obs.par_chunks_mut(chunk * d))
            .zip(out.final_obs.par_chunks_mut(chunk * d))
            .zip(out.rewards.par_chunks_mut(chunk))
            .zip(out.terminated.par_chunks_mut(chunk))
            .zip(out.truncated.par_chunks_mut(chunk))
            .zip(out.finished.par_chunks_mut(chunk));
        let work = || {
            rows.try_for_each(
                |(((((((slots, act), obs), fin), rew), term), trunc), finished)| {
                    for (k, slot) in slots.iter_mut().enumerate() {
                        let (o, f) = (&mut obs[k * d..(k + 1) * d], &mut fin[k * d..(k + 1) * d]);
                        let s = slot.env.step(&act[k * a..(k + 1) * a], o)?;
                        slot.ret += s.reward;
                        slot.len += 1;
                        (rew[k], term[k], trunc[k]) = (s.reward, s.terminated, s.truncated);
                        finished[k] = None;
                        if s.done() {
                            f.copy_from_slice(o);
                            finished[k] = Some((slot.ret, slot.len));
                            (slot.ret, slot.len) = (0.0, 0);
                            slot.env.reset(None, o)?;
                        }
                    }
                    Ok(())
                },
            )
        };
        match &self.pool {
            Some(pool) => pool.install(work),
            None => work(),
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
