//! [`DiagJoint`]: the diagonal empirical Fisher of the joint rows for the shared network.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::Tensor;
use rat_core::clip;
use rat_core::dist::Communicator;
use rat_core::jacobian::ScoreJacobian;

use super::pass::JointPass;
use super::update::{JointBatch, JointInfo, JointParams, JointUpdate};
use crate::error::Result;
use crate::nets::SharedActorCritic;
use crate::optim::Sgd;
use crate::rules::shard::Rows;

/// The diagonal empirical Fisher of the joint rows for the shared network.
#[derive(Debug, Clone)]
pub struct DiagJoint {
    /// The hyperparameters.
    pub params: JointParams,
    sgd: Sgd,
    rows: Rows,
}

impl DiagJoint {
    /// A fresh state.
    pub fn new(params: JointParams) -> Result<Self> {
        Ok(Self {
            params,
            sgd: Sgd::new(),
            rows: Rows::default(),
        })
    }
}

impl JointUpdate for DiagJoint {
    fn name(&self) -> &'static str {
        "diag"
    }

    fn step(&mut self, net: &SharedActorCritic, batch: &JointBatch, lr: f64) -> Result<JointInfo> {
        let p = self.params;
        let pass = JointPass::new(net, batch, p.clamp)?;
        let rows = self.rows.of_len(batch.obs.dims()[0])?;
        let (g, loss_pi, loss_v) =
            pass.surrogate_gradient(batch, &batch.advantages, batch.ent_coef, &rows, &p)?;
        let b = rows.total(pass.jac.num_samples()) as f64;
        let d = g
            .iter()
            .zip(rows.sum_params(pass.jac.sq_col_sums()?)?)
            .map(|(g, s)| Ok(g.div(&s.affine(1.0 / b, p.damping)?)?))
            .collect::<Result<Vec<_>>>()?;
        let (clipped, grad_norm) = clip::clip_grad_norm(&d, p.max_grad_norm)?;
        self.sgd.step(pass.params(), &clipped, lr)?;
        pass.info(net, batch, &rows, (grad_norm, loss_pi, loss_v))
    }

    fn shard_rows(&mut self, comm: Arc<dyn Communicator>) -> Result<()> {
        self.rows = Rows::sharded(comm);
        Ok(())
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.sgd.state()
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        Ok(self.sgd.load_state(state)?)
    }
}
