//! [`KfacJoint`]: K-FAC (or EK-FAC) for the shared network, its Fisher from the joint objective.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use rat_core::clip;
use rat_core::dist::Communicator;
use rat_kfac::{Kfac, KfacOptions};

use super::pass::JointPass;
use super::update::{JointBatch, JointInfo, JointParams, JointUpdate};
use crate::config::AlgoConfig;
use crate::error::{Result, invalid};
use crate::nets::SharedActorCritic;
use crate::optim::apply_step;
use crate::rules::scalar;
use crate::rules::shard::Rows;

/// K-FAC (or EK-FAC) for the shared network.
#[derive(Debug, Clone)]
pub struct KfacJoint {
    /// The hyperparameters.
    pub params: JointParams,
    kfac: Kfac,
    sites: usize,
    rows: Rows,
}

impl KfacJoint {
    /// A fresh state with K-FAC's reference defaults and `algo_config.kfac_damping`.
    pub fn new(c: &AlgoConfig, eigen_corrected: bool) -> Result<Self> {
        if c.weight_decay != 0.0 {
            return invalid(format!(
                "weight_decay {} is not supported by kfac; use 0.0",
                c.weight_decay
            ));
        }
        Ok(Self {
            params: JointParams::from_config(c),
            kfac: Kfac::new(KfacOptions {
                eigen_corrected,
                damping: c.kfac_damping,
                ..KfacOptions::default()
            })?,
            sites: 0,
            rows: Rows::default(),
        })
    }
}

impl JointUpdate for KfacJoint {
    fn name(&self) -> &'static str {
        if self.kfac.opts.eigen_corrected {
            "ekfac"
        } else {
            "kfac"
        }
    }

    fn step(&mut self, net: &SharedActorCritic, batch: &JointBatch, lr: f64) -> Result<JointInfo> {
        let p = self.params;
        let pass = JointPass::new(net, batch, p.clamp)?;
        let split = self.rows.clone();
        let rows = split.of_len(batch.obs.dims()[0])?;
        // A batch statistic of this rank's rows → the whole minibatch's (identity unsharded).
        let mean = |t: Tensor| -> rat_core::Result<Tensor> {
            let mut v = rows.mean_params(vec![t])?;
            Ok(v.remove(0))
        };
        self.sites = pass.rec.sites().len();
        self.kfac.update_a_with(&pass.rec, &mean)?;
        if self.kfac.refresh_due() {
            self.kfac.update_g_with(&pass.rec, &pass.grads, &mean)?;
        }
        self.kfac
            .update_scales_with(&pass.rec, &pass.grads, &mean)?;
        let (g, loss_pi, loss_v) =
            pass.surrogate_gradient(batch, &batch.advantages, batch.ent_coef, &rows, &p)?;
        let (clipped, grad_norm) = clip::clip_grad_norm(&g, p.max_grad_norm)?;
        let (d, _nu) = self.kfac.precondition(&pass.rec, &clipped, lr)?;
        apply_step(pass.params(), self.kfac.momentum_step(&d)?, lr)?;
        pass.info(net, batch, &rows, (grad_norm, loss_pi, loss_v))
    }

    fn shard_rows(&mut self, comm: Arc<dyn Communicator>) -> Result<()> {
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
        let Some(t) = state.get("sites") else {
            return Ok(());
        };
        self.sites = scalar(&t.flatten_all()?.narrow(0, 0, 1)?.squeeze(0)?)? as usize;
        Ok(self.kfac.load_state(state, self.sites)?)
    }
}
