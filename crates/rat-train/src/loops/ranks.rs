//! One training loop on R ranks (`--dist mpi`; DISTRIBUTED.md §3), `replicated` update:
//!
//! * rank r steps environments `share(E, r, R)` of the config's E, seeded as one process seeds
//!   those indices, and draws their actions where one process's RNG stream would;
//! * the rollouts are gathered ([`Ranks::gather`]) so that every rank holds the whole rollout in
//!   one process's order (observations and actions env-major, trajectories time-major, episodes
//!   in completion order);
//! * every rank then runs the same update on the same data with the same RNG: the parameters
//!   are identical on every rank, and equal to one process's with the same E up to the batch
//!   sizes of the rollout's forward passes (float summation order);
//! * rank 0 alone writes the run directory, the logs and the checkpoints; a checkpoint holds
//!   every environment's state ([`Ranks::env_state`]), so a run resumes on any number of ranks.
//!
//! The environment stepping is what is split; the update is computed R times. That is the
//! right trade where stepping dominates (MuJoCo, several hosts of environments). RAT's
//! `dist_mode: block` splits the actor steps too: each rank steps on its rows of each minibatch
//! (its own b/R x b/R system) and the ranks average the result ([`Ranks::average_step`]);
//! `dist_mode: exact` shards the rows too, and the rule (RAT's `step_sharded`) gathers their
//! layer factors and solves the global system on every rank. With R = 1 every function here is
//! the identity.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Tensor, Var};
use rat_core::dist::{Communicator, share};
use rat_rollout::{Trajectory, env_major, time_major};
use sha2::{Digest, Sha256};

use super::rollout::{Rollout, Runner};
use crate::error::{Result, invalid};
use crate::rules::{ActorUpdate, StepInfo};

/// This process's place among the ranks: the communicator and its share of the environments.
#[derive(Debug, Clone)]
pub struct Ranks {
    /// The communicator (`Single` for one process).
    pub comm: Arc<dyn Communicator>,
    /// The global indices of this rank's environments.
    pub share: Range<usize>,
    /// E, the environments of all ranks together (the config's `num_envs`).
    pub total: usize,
}

impl Ranks {
    /// The share of `num_envs` environments of this rank of `comm`; every rank needs one.
    pub fn new(comm: Arc<dyn Communicator>, num_envs: usize) -> Result<Self> {
        let size = comm.size();
        if num_envs < size {
            return invalid(format!(
                "num_envs {num_envs} on {size} ranks: each rank steps at least one environment \
                 (num_envs is the total across ranks)"
            ));
        }
        Ok(Self {
            share: share(num_envs, comm.rank(), size),
            total: num_envs,
            comm,
        })
    }

    /// Whether this rank writes (rank 0).
    pub fn is_root(&self) -> bool {
        self.comm.is_root()
    }

    /// The cores this rank's environment workers may use: the machine's split between the
    /// ranks (which a launcher usually places on one host first).
    pub fn cores(&self) -> usize {
        let all = std::thread::available_parallelism().map_or(1, |n| n.get());
        (all / self.comm.size()).max(1)
    }

    /// Rank 0's `seed` on every rank (a seed drawn at random differs per process).
    pub fn seed(&self, seed: u64) -> Result<u64> {
        let mut bytes = seed.to_le_bytes().to_vec();
        self.comm.broadcast_bytes(0, &mut bytes)?;
        let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
            crate::Error::Invalid("the seed broadcast by rank 0 is not 8 bytes".into())
        })?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Whether any rank has `flag` set (a stop request must end every rank's run at the same
    /// iteration).
    pub fn any(&self, flag: bool) -> Result<bool> {
        if self.comm.size() == 1 {
            return Ok(flag);
        }
        Ok(self.comm.sum_f64(f64::from(u8::from(flag)))? > 0.0)
    }

    /// Rank 0's outcome of `open` on every rank: rank 0 runs it (creating the run directory)
    /// and sends the directory, or its error, to the others, so that a failure there stops
    /// every rank instead of leaving them waiting.
    pub fn from_root<T>(
        &self,
        open: impl FnOnce() -> Result<(PathBuf, T)>,
    ) -> Result<(PathBuf, Option<T>)> {
        if self.is_root() {
            let opened = open();
            let mut note = match &opened {
                Ok((dir, _)) => format!("ok:{}", dir.display()),
                Err(e) => format!("err:{e}"),
            }
            .into_bytes();
            self.comm.broadcast_bytes(0, &mut note)?;
            return opened.map(|(dir, t)| (dir, Some(t)));
        }
        let mut bytes = Vec::new();
        self.comm.broadcast_bytes(0, &mut bytes)?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match text.strip_prefix("ok:") {
            Some(dir) => Ok((PathBuf::from(dir), None)),
            None => invalid(format!(
                "rank 0 could not start the run: {}",
                text.trim_start_matches("err:")
            )),
        }
    }

    /// Checks that every rank holds the same `tensors()` (the agent's parameters and statistics
    /// after `iteration`; not computed for one process), bit for bit, by comparing SHA-256 digests: replicated updates on the
    /// same data must agree, and a rank that drifted would silently train another network.
    pub fn agree(
        &self,
        iteration: usize,
        tensors: impl FnOnce() -> Result<Vec<(String, Tensor)>>,
    ) -> Result<()> {
        if self.comm.size() == 1 {
            return Ok(());
        }
        let tensors = tensors()?;
        let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
        sorted.sort_by(|x, y| x.0.cmp(&y.0));
        let mut h = Sha256::new();
        for (name, t) in sorted {
            h.update(name.as_bytes());
            for v in t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()? {
                h.update(v.to_bits().to_le_bytes());
            }
        }
        let mine = h.finalize();
        let (all, _) = self.comm.all_gather_v_bytes(&mine)?;
        match all.chunks(mine.len()).position(|d| d != &all[..mine.len()]) {
            None => Ok(()),
            Some(r) => invalid(format!(
                "after iteration {iteration}, rank {r}'s networks differ from rank 0's: the \
                 ranks no longer compute the same update (a bug; please report it with the \
                 config)"
            )),
        }
    }

    /// This rank's rows of a minibatch under `dist_mode` block or exact (its share of them, in
    /// order), or all of them.
    pub fn rows<'a>(&self, chunk: &'a [usize], sharded: bool) -> &'a [usize] {
        &chunk[self.row_range(chunk.len(), sharded)]
    }

    /// The positions of [`rows`](Self::rows) in a minibatch of `len` rows.
    pub fn row_range(&self, len: usize, sharded: bool) -> Range<usize> {
        match sharded {
            true => share(len, self.comm.rank(), self.comm.size()),
            false => 0..len,
        }
    }

    /// The mean over ranks of `x` (the same length on every rank), summed in rank order so that
    /// every rank gets the same bits (an engine's all-reduce may associate differently per rank).
    pub fn mean(&self, x: &[f64]) -> Result<Vec<f64>> {
        let (all, counts) = self.comm.all_gather_v_f64(x)?;
        if counts.iter().any(|&c| c != x.len()) {
            return invalid(format!(
                "the ranks averaged vectors of different lengths: {counts:?}"
            ));
        }
        let mut sum = vec![0.0; x.len()];
        for part in all.chunks(x.len().max(1)) {
            sum.iter_mut().zip(part).for_each(|(s, v)| *s += v);
        }
        let r = counts.len() as f64;
        Ok(sum.into_iter().map(|s| s / r).collect())
    }

    /// The whole minibatch's mean of a quantity of which `mean` is the mean over this rank's
    /// `rows` (rows-weighted, summed in rank order), when the rows are `sharded`; else `mean`.
    pub fn row_mean(&self, mean: f64, rows: usize, sharded: bool) -> Result<f64> {
        if !sharded {
            return Ok(mean);
        }
        let (all, _) = self
            .comm
            .all_gather_v_f64(&[mean * rows as f64, rows as f64])?;
        let (sum, count) = all
            .chunks_exact(2)
            .fold((0.0, 0.0), |(s, c), p| (s + p[0], c + p[1]));
        Ok(sum / count)
    }

    /// The whole minibatch's (loss, gradient) from this rank's, both means over its `rows` of
    /// a minibatch of `total` rows: Σ_r (b_r / b)·x_r, summed in rank order; the identity when
    /// the rank holds every row.
    pub fn sum_rows_mean(
        &self,
        (loss, grad): (f64, Vec<Tensor>),
        (rows, total): (usize, usize),
    ) -> Result<(f64, Vec<Tensor>)> {
        if rows == total {
            return Ok((loss, grad));
        }
        let w = rows as f64 / total as f64;
        let grad = rat_core::params::scale(&grad, w)?
            .iter()
            .map(|t| rat_core::dist::tensor::all_reduce_sum_ordered(&*self.comm, t))
            .collect::<rat_core::Result<Vec<_>>>()?;
        Ok((self.row_mean(loss, rows, true)?, grad))
    }

    fn mean_tensor(&self, t: &Tensor) -> Result<Tensor> {
        let x = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
        let m = Tensor::from_vec(self.mean(&x)?, t.shape(), t.device())?;
        Ok(m.to_dtype(t.dtype())?)
    }

    /// After a `dist_mode: block` step, in which each rank stepped on its own rows: every
    /// rank's parameters and optimiser state become the ranks' mean (the mean step, since all
    /// started equal; SGD's buffer, RAT's Kaczmarz vector, becomes the mean direction), and the
    /// step's KL and entropy the ranks' mean (the KL rule and `target_kl` decide alike
    /// everywhere).
    pub fn average_step(
        &self,
        params: &[Var],
        update: &mut dyn ActorUpdate,
        info: StepInfo,
    ) -> Result<StepInfo> {
        for p in params {
            p.set(&self.mean_tensor(p.as_tensor())?)?;
        }
        let state: HashMap<String, Tensor> = update
            .state()
            .into_iter()
            .map(|(k, t)| Ok((k, self.mean_tensor(&t)?)))
            .collect::<Result<_>>()?;
        update.load_state(&state)?;
        let m = self.mean(&[info.kl, info.entropy])?;
        Ok(StepInfo {
            kl: m[0],
            entropy: m[1],
            ..info
        })
    }

    /// The whole rollout on every rank from each rank's `local` one, in one process's order.
    pub fn gather(&self, local: Rollout) -> Result<Rollout> {
        if self.comm.size() == 1 {
            return Ok(local);
        }
        let c = &*self.comm;
        let e = self.total;
        let traj = &local.trajectory;
        let e_local = traj.num_envs;
        // Env-major blocks of contiguous environments concatenate in rank order.
        let (obs, _) = c.all_gather_v_f64(&local.obs)?;
        let (actions, _) = c.all_gather_v_f32(&local.actions)?;
        let per_env = |x: &[f64]| -> Result<Vec<f64>> {
            let (all, _) = c.all_gather_v_f64(&env_major(x, e_local, 1)?)?;
            Ok(time_major(&all, e, 1)?)
        };
        let flags = |x: &[bool]| {
            x.iter()
                .map(|&d| f64::from(u8::from(d)))
                .collect::<Vec<_>>()
        };
        let rewards = per_env(&traj.rewards)?;
        let values = per_env(&traj.values)?;
        let dones_before = per_env(&flags(&traj.dones_before))?;
        let (last_values, _) = c.all_gather_v_f64(&traj.last_values)?;
        let (last_dones, _) = c.all_gather_v_f64(&flags(&traj.last_dones))?;
        let ended: Vec<f64> = local
            .episodes
            .iter()
            .zip(&local.ended_at)
            .flat_map(|(&(ret, len), &(step, env))| [step as f64, env as f64, ret, len as f64])
            .collect();
        let (ended, _) = c.all_gather_v_f64(&ended)?;
        let mut ended: Vec<&[f64]> = ended.chunks_exact(4).collect();
        ended.sort_by(|x, y| {
            (x[0], x[1])
                .partial_cmp(&(y[0], y[1]))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let set = |x: Vec<f64>| x.into_iter().map(|d| d != 0.0).collect();
        Ok(Rollout {
            obs,
            actions,
            trajectory: Trajectory {
                rewards,
                values,
                dones_before: set(dones_before),
                last_values,
                last_dones: set(last_dones),
                num_envs: e,
            },
            episodes: ended.iter().map(|x| (x[2], x[3] as usize)).collect(),
            ended_at: ended
                .iter()
                .map(|x| (x[0] as usize, x[1] as usize))
                .collect(),
        })
    }

    /// Every environment's state (what [`Runner::save_state`] saves for one process, the ranks'
    /// shares joined in order), for rank 0's checkpoint; every rank must call it.
    pub fn env_state(&self, runner: &Runner) -> Result<Option<serde_json::Value>> {
        let local = runner.save_state()?;
        if self.comm.size() == 1 {
            return Ok(local);
        }
        let text = local.map(|v| v.to_string()).unwrap_or_default();
        let (bytes, counts) = self.comm.all_gather_v_bytes(text.as_bytes())?;
        if counts.contains(&0) {
            return Ok(None);
        }
        let (mut slots, mut obs, mut dones) = (Vec::new(), Vec::new(), Vec::new());
        let mut first: Option<serde_json::Value> = None;
        let mut at = 0;
        for n in counts {
            let part: serde_json::Value = serde_json::from_slice(&bytes[at..at + n])
                .map_err(|e| crate::Error::Invalid(format!("a rank's environment state: {e}")))?;
            at += n;
            let items = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
            slots.extend(items(&part["envs"]["slots"]));
            obs.extend(items(&part["obs"]));
            dones.extend(items(&part["dones"]));
            first.get_or_insert(part);
        }
        let mut all = first.unwrap_or_default();
        all["envs"]["slots"] = slots.into();
        all["obs"] = obs.into();
        all["dones"] = dones.into();
        Ok(Some(all))
    }
}
