//! A minibatch split over R ranks by rows (`dist_mode: exact`): where this rank's rows sit in
//! it, and the minibatch's statistics from every rank's part, summed in rank order so that every
//! rank holds the same bits.

use candle_core::Tensor;
use rat_core::Result;
use rat_core::dist::Communicator;
use rat_core::dist::tensor::all_reduce_sum_ordered;

use super::score::ScorePass;

/// This rank's rows of a sharded minibatch, and the whole minibatch's means.
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
}

impl Shard {
    /// This rank's place and the minibatch's means, from every rank's `pass` (one all-gather of
    /// four numbers per rank).
    pub fn new(comm: &dyn Communicator, pass: &ScorePass) -> Result<Self> {
        let len = pass.ratio.dims()[0];
        let b = len as f64;
        let mine = [b, pass.kl * b, pass.entropy * b, pass.clipfrac * b];
        let (all, _) = comm.all_gather_v_f64(&mine)?;
        let parts: Vec<&[f64]> = all.chunks_exact(4).collect();
        let offset = parts[..comm.rank()].iter().map(|p| p[0] as usize).sum();
        let mut sum = [0.0; 4];
        for p in &parts {
            sum.iter_mut().zip(p.iter()).for_each(|(s, v)| *s += v);
        }
        let total = sum[0];
        Ok(Self {
            offset,
            len,
            total: total as usize,
            kl: sum[1] / total,
            entropy: sum[2] / total,
            clipfrac: sum[3] / total,
        })
    }

    /// This rank's rows of a vector over the whole minibatch.
    pub fn mine(&self, all: &Tensor) -> Result<Tensor> {
        Ok(all.narrow(0, self.offset, self.len)?)
    }

    /// The whole minibatch's mean of a quantity of which `mean` is this rank's rows' mean.
    pub fn mean(&self, comm: &dyn Communicator, mean: f64) -> Result<f64> {
        let part = Tensor::new(&[mean * self.len as f64], &candle_core::Device::Cpu)?;
        let sum = all_reduce_sum_ordered(comm, &part)?.to_vec1::<f64>()?[0];
        Ok(sum / self.total as f64)
    }

    /// Σ_ranks of each parameter-shaped tensor, in rank order.
    pub fn sum(comm: &dyn Communicator, parts: &[Tensor]) -> Result<Vec<Tensor>> {
        parts
            .iter()
            .map(|t| all_reduce_sum_ordered(comm, t))
            .collect()
    }
}
