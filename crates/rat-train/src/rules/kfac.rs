//! The K-FAC actor update (`algo: kfac`, `optimizer: kfac`, ALGORITHMS.md 4.3) on `rat-kfac`:
//! factors from the recorded forward pass (A every step; G every 10 steps from log π at the
//! stored actions — or, with `kfac_stats: sampled`, at actions re-sampled from the policy),
//! the surrogate gradient of FVP (clamped ratio with gradient), L2 clip, Kronecker-factored
//! preconditioning with the KL clip, momentum 0.9. The log-σ vector gets its raw gradient.
//! The reference's leak of the statistics objective's gradient into the update is not
//! reproduced. `algo: ekfac` is the same rule with EK-FAC's per-entry scalings (`rat-kfac`),
//! which the reference ships but cannot run.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rat_core::dist::Communicator;
use rat_core::{Error, Result, clip};
use rat_kfac::{Kfac, KfacOptions};

use super::score::{ScorePass, StepControl};
use super::shard::Rows;
use super::update::{ActorBatch, ActorUpdate, StepInfo};
use crate::config::{AlgoConfig, KfacStats, NormObj};
use crate::nets::Actor;
use crate::nets::policy::{ActionMode, select_actions};
use crate::optim::apply_step;

/// The K-FAC rule and its optimiser state.
#[derive(Debug, Clone)]
pub struct KfacActor {
    kfac: Kfac,
    norm_obj: NormObj,
    clamp: Option<(f64, f64)>,
    control: StepControl,
    max_grad_norm: f64,
    stats: KfacStats,
    rng: ChaCha8Rng,
    sites: usize,
    rows: Rows,
}

impl KfacActor {
    /// The rule with K-FAC's reference defaults and `algo_config`'s scaling, clamp, entropy,
    /// clip and statistics source; `eigen_corrected` selects EK-FAC. Weight decay is not
    /// supported (every config sets 0).
    pub fn new(c: &AlgoConfig, eigen_corrected: bool) -> Result<Self> {
        if c.weight_decay != 0.0 {
            return Err(Error::InvalidArgument {
                op: "KfacActor::new",
                msg: format!(
                    "weight_decay {} is not supported by kfac; use 0.0",
                    c.weight_decay
                ),
            });
        }
        Ok(Self {
            kfac: Kfac::new(KfacOptions {
                eigen_corrected,
                damping: c.kfac_damping,
                ..KfacOptions::default()
            })?,
            norm_obj: c.norm_obj,
            clamp: c.clamp_ratio.then_some((c.min_ratio, c.max_ratio)),
            control: StepControl::from_config(c),
            max_grad_norm: c.max_grad_norm,
            stats: c.kfac_stats,
            rng: ChaCha8Rng::seed_from_u64(0x6b66_6163),
            sites: 0,
            rows: Rows::default(),
        })
    }
}

impl ActorUpdate for KfacActor {
    fn name(&self) -> &'static str {
        if self.kfac.opts.eigen_corrected {
            "ekfac"
        } else {
            "kfac"
        }
    }

    fn step(&mut self, actor: &dyn Actor, batch: &ActorBatch, lr: f64) -> Result<StepInfo> {
        let pass = ScorePass::new(actor, batch, self.clamp)?;
        let split = self.rows.clone();
        let rows = split.of(&pass)?;
        // A batch statistic of this rank's rows → the whole minibatch's (identity unsharded).
        let mean = |t: Tensor| -> Result<Tensor> {
            let mut v = rows.mean_params(vec![t])?;
            Ok(v.remove(0))
        };
        self.sites = pass.rec.sites().len();
        self.kfac.update_a_with(&pass.rec, &mean)?;
        // G on refresh steps; EK-FAC's scalings every step, from the same statistics objective.
        let refresh = self.kfac.refresh_due();
        if refresh || self.kfac.opts.eigen_corrected {
            let sampled;
            let grads = match self.stats {
                KfacStats::Stored => &pass.grads,
                KfacStats::Sampled => {
                    let draw =
                        select_actions(&pass.policy.detach()?, ActionMode::Sample, &mut self.rng)
                            .map_err(|e| Error::InvalidArgument {
                            op: "KfacActor::step",
                            msg: e.to_string(),
                        })?;
                    let actions =
                        Tensor::from_vec(draw, batch.actions.shape(), batch.actions.device())?
                            .to_dtype(batch.actions.dtype())?;
                    sampled = pass.policy.log_prob(&actions)?.sum_all()?.backward()?;
                    &sampled
                }
            };
            if refresh {
                self.kfac.update_g_with(&pass.rec, grads, &mean)?;
            }
            self.kfac.update_scales_with(&pass.rec, grads, &mean)?;
        }
        let (loss_pi, grad) = super::fvp::clamped_surrogate_gradient(
            &pass,
            &rows,
            actor,
            batch,
            self.clamp,
            self.norm_obj,
            batch.ent_coef,
        )?;
        let (clipped, grad_norm) = clip::clip_grad_norm(&grad, self.max_grad_norm)?;
        let (d, _nu) = self.kfac.precondition(&pass.rec, &clipped, lr)?;
        let d = self.kfac.momentum_step(&d)?.to_vec();
        let (step, kl_pred) = rows.bound(&self.control, actor, &pass, &batch.obs, d, lr)?;
        apply_step(pass.jac.params(), &step, lr)?;
        Ok(StepInfo {
            kl_pred,
            ..rows.info(&pass, grad_norm, loss_pi)?
        })
    }

    fn shard_rows(&mut self, comm: Arc<dyn Communicator>) -> Result<()> {
        if self.stats == KfacStats::Sampled {
            return Err(Error::InvalidArgument {
                op: "KfacActor::shard_rows",
                msg: "kfac_stats sampled draws actions row by row from the rule's own RNG; \
                      dist_mode exact needs kfac_stats stored"
                    .into(),
            });
        }
        self.rows = Rows::sharded(comm);
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = self.kfac.state();
        if let Ok(t) = Tensor::new(&[self.sites as f64], &candle_core::Device::Cpu) {
            out.push(("sites".into(), t));
        }
        out
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let sites = match state.get("sites") {
            Some(t) => t
                .flatten_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_vec1::<f64>()?[0] as usize,
            None => return Ok(()),
        };
        self.sites = sites;
        self.kfac.load_state(state, sites)
    }
}
