//! A minibatch split over R ranks by rows (`dist_mode: exact`): each rank passes its share of
//! the rows through the network, and the few collectives that make its step one process's step
//! on the whole minibatch (DISTRIBUTED.md §3): the per-row vectors a step normalises gathered,
//! the means and the gradients summed over the ranks in rank order, so that every rank holds
//! the same bits. With one process ([`Rows::default`]) every function is the identity, so a rule
//! written against [`StepRows`] computes what it computed before, bit for bit.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use rat_core::dist::Communicator;
use rat_core::dist::tensor::{all_gather_rows, all_reduce_sum_ordered};
use rat_core::jacobian::{FactoredJacobian, ScoreJacobian};
use rat_core::{Result, params};

use super::score::{ScorePass, StepControl, quadratic_kl, scalar};
use super::update::StepInfo;
use crate::nets::Actor;

/// Whether a rule's minibatches arrive whole (one process, or every rank the same rows) or
/// split by rows over the ranks of a communicator.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    comm: Option<Arc<dyn Communicator>>,
}

impl Rows {
    /// Rows split over `comm`'s ranks (whole for one rank).
    pub fn sharded(comm: Arc<dyn Communicator>) -> Self {
        Self {
            comm: (comm.size() > 1).then_some(comm),
        }
    }

    /// Whether the rows are split.
    pub fn is_sharded(&self) -> bool {
        self.comm.is_some()
    }

    /// One step's view of its minibatch, from this rank's `pass` (one all-gather of a few
    /// numbers per rank when sharded).
    pub fn of(&self, pass: &ScorePass) -> Result<StepRows<'_>> {
        let split = match &self.comm {
            Some(comm) => Some((&**comm, Shard::new(&**comm, pass)?)),
            None => None,
        };
        Ok(StepRows { split })
    }

    /// One step's view of a minibatch of which this rank holds `len` rows, without the score
    /// pass's statistics (NaN in the [`Shard`]): for the shared network's rules, which measure
    /// their own.
    pub fn of_len(&self, len: usize) -> Result<StepRows<'_>> {
        let split = match &self.comm {
            Some(comm) => Some((&**comm, Shard::gather(&**comm, len, [f64::NAN; 5])?)),
            None => None,
        };
        Ok(StepRows { split })
    }
}

/// This rank's rows of a sharded minibatch, and the whole minibatch's statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shard {
    /// The first of this rank's rows in the minibatch (the ranks' rows concatenate in rank order).
    pub offset: usize,
    /// b_r, this rank's rows.
    pub len: usize,
    /// b = Σ_r b_r.
    pub total: usize,
    /// KL(π_old ‖ π_θ), mean over the b rows.
    pub kl: f64,
    /// Mean entropy over the b rows.
    pub entropy: f64,
    /// The fraction of the b rows whose ratio hit the clamp.
    pub clipfrac: f64,
    /// The largest and smallest (clamped) ratio of the b rows.
    pub ratio_range: (f64, f64),
}

impl Shard {
    /// This rank's place and the minibatch's statistics from every rank's `pass`.
    pub fn new(comm: &dyn Communicator, pass: &ScorePass) -> Result<Self> {
        let (hi, lo) = (scalar(&pass.ratio.max(0)?)?, scalar(&pass.ratio.min(0)?)?);
        let stats = [pass.kl, pass.entropy, pass.clipfrac, hi, lo];
        Self::gather(comm, pass.ratio.dims()[0], stats)
    }

    /// This rank's place from every rank's row count `len`, and the minibatch's statistics from
    /// every rank's [mean KL, mean entropy, clip fraction, largest ratio, smallest ratio].
    pub fn gather(comm: &dyn Communicator, len: usize, stats: [f64; 5]) -> Result<Self> {
        let b = len as f64;
        let [kl, entropy, clipfrac, hi, lo] = stats;
        let mine = [b, kl * b, entropy * b, clipfrac * b, hi, lo];
        let (all, _) = comm.all_gather_v_f64(&mine)?;
        let parts: Vec<&[f64]> = all.chunks_exact(mine.len()).collect();
        let offset = parts[..comm.rank()].iter().map(|p| p[0] as usize).sum();
        let mut sum = [0.0; 4];
        let (mut hi, mut lo) = (f64::NEG_INFINITY, f64::INFINITY);
        for p in &parts {
            sum.iter_mut().zip(p.iter()).for_each(|(s, v)| *s += v);
            (hi, lo) = (hi.max(p[4]), lo.min(p[5]));
        }
        let total = sum[0];
        Ok(Self {
            offset,
            len,
            total: total as usize,
            kl: sum[1] / total,
            entropy: sum[2] / total,
            clipfrac: sum[3] / total,
            ratio_range: (hi, lo),
        })
    }
}

/// One step's view of its minibatch: whole, or this rank's rows of it with the collectives.
#[derive(Debug)]
pub struct StepRows<'a> {
    split: Option<(&'a dyn Communicator, Shard)>,
}

impl StepRows<'_> {
    /// A whole minibatch (one process, or a rule that does not split its rows).
    pub fn whole() -> StepRows<'static> {
        StepRows { split: None }
    }

    /// This rank's place in a split minibatch.
    pub fn shard(&self) -> Option<&Shard> {
        self.split.as_ref().map(|(_, s)| s)
    }

    /// b, the whole minibatch's rows, of which this rank holds `local`.
    pub fn total(&self, local: usize) -> usize {
        self.shard().map_or(local, |s| s.total)
    }

    /// A per-row vector (or matrix) of the whole minibatch from this rank's rows of it.
    pub fn all(&self, t: &Tensor) -> Result<Tensor> {
        match &self.split {
            Some((comm, _)) => all_gather_rows(*comm, t),
            None => Ok(t.clone()),
        }
    }

    /// This rank's rows of a per-row vector of the whole minibatch.
    pub fn mine(&self, all: &Tensor) -> Result<Tensor> {
        match self.shard() {
            Some(s) => Ok(all.narrow(0, s.offset, s.len)?),
            None => Ok(all.clone()),
        }
    }

    /// The kernel J Jᵀ (b x b) of the whole minibatch from this rank's rows' Jacobian: the
    /// layer factors all-gathered, and every rank builds the whole kernel (the host path's
    /// lower triangle, b²·S/2 flops). Building only this rank's rows against the gathered
    /// factors (`FactoredJacobian::kernel_rows`, b_r·b·S) and gathering them is R/2 times less
    /// work per rank: nothing at R = 2, where its candle products measured slower than the
    /// host path (158 against 125 ms per Humanoid step on this VM), so not used yet.
    pub fn kernel(&self, jac: &FactoredJacobian) -> Result<Tensor> {
        match &self.split {
            Some((comm, _)) => jac.gather_rows(*comm)?.kernel(),
            None => jac.kernel(),
        }
    }

    /// The whole minibatch's mean of a quantity of which `mean` is this rank's rows' mean.
    pub fn mean(&self, mean: f64) -> Result<f64> {
        let Some((comm, s)) = &self.split else {
            return Ok(mean);
        };
        let part = Tensor::new(&[mean * s.len as f64], &Device::Cpu)?;
        let sum = all_reduce_sum_ordered(*comm, &part)?.to_vec1::<f64>()?[0];
        Ok(sum / s.total as f64)
    }

    /// Σ_ranks of parameter-shaped tensors (sums over rows, such as Jᵀw or diag(JᵀJ)).
    pub fn sum_params(&self, parts: Vec<Tensor>) -> Result<Vec<Tensor>> {
        match &self.split {
            Some((comm, _)) => parts
                .iter()
                .map(|t| all_reduce_sum_ordered(*comm, t))
                .collect(),
            None => Ok(parts),
        }
    }

    /// The whole minibatch's mean of parameter-shaped means over rows (a loss gradient, a
    /// Fisher-vector product): Σ_r (b_r / b) m_r.
    pub fn mean_params(&self, means: Vec<Tensor>) -> Result<Vec<Tensor>> {
        match self.shard() {
            Some(s) => self.sum_params(params::scale(&means, s.len as f64 / s.total as f64)?),
            None => Ok(means),
        }
    }

    /// The step −lr·d bounded in KL: d scaled by min(1, √(max_kl / κ)), with κ = ½ lr² dᵀ F d
    /// the predicted KL of the step (on a split minibatch, the ranks' rows-weighted mean), and κ
    /// returned (NaN when neither bound nor measurement is on, which costs nothing).
    pub fn bound(
        &self,
        control: &StepControl,
        actor: &dyn Actor,
        pass: &ScorePass,
        obs: &Tensor,
        d: Vec<Tensor>,
        lr: f64,
    ) -> Result<(Vec<Tensor>, f64)> {
        if !control.active() {
            return Ok((d, f64::NAN));
        }
        let q = quadratic_kl(actor, &pass.policy.detach()?, obs, &d)?;
        let kl = lr * lr * self.mean(q)?;
        control.limit(d, kl)
    }

    /// [`ScorePass::info`] over the whole minibatch.
    pub fn info(&self, pass: &ScorePass, grad_norm: f64, loss_pi: f64) -> Result<StepInfo> {
        let local = pass.info(grad_norm, loss_pi)?;
        Ok(match self.shard() {
            Some(s) => StepInfo {
                kl: s.kl,
                entropy: s.entropy,
                clipfrac: s.clipfrac,
                ratio_max: s.ratio_range.0,
                ratio_min: s.ratio_range.1,
                ..local
            },
            None => local,
        })
    }
}
