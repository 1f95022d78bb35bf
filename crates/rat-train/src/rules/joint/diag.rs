//! [`DiagJoint`]: the diagonal empirical Fisher of the joint rows for the shared network.

use std::collections::HashMap;

use candle_core::Tensor;
use rat_core::clip;
use rat_core::jacobian::ScoreJacobian;

use super::pass::JointPass;
use super::update::{JointBatch, JointInfo, JointParams, JointUpdate};
use crate::error::Result;
use crate::nets::SharedActorCritic;
use crate::optim::Sgd;

/// The diagonal empirical Fisher of the joint rows for the shared network.
#[derive(Debug, Clone)]
pub struct DiagJoint {
    /// The hyperparameters.
    pub params: JointParams,
    sgd: Sgd,
}

impl DiagJoint {
    /// A fresh state.
    pub fn new(params: JointParams) -> Result<Self> {
        Ok(Self {
            params,
            sgd: Sgd::new(),
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
        let (loss, loss_pi, loss_v) =
            pass.surrogate_loss(batch, p.norm_obj, batch.ent_coef, p.vf_coef)?;
        let g = pass.gradient(&loss)?;
        let b = pass.jac.num_samples() as f64;
        let d = g
            .iter()
            .zip(pass.jac.sq_col_sums()?)
            .map(|(g, s)| Ok(g.div(&s.affine(1.0 / b, p.damping)?)?))
            .collect::<Result<Vec<_>>>()?;
        let (clipped, grad_norm) = clip::clip_grad_norm(&d, p.max_grad_norm)?;
        self.sgd.step(pass.params(), &clipped, lr)?;
        pass.info(net, batch, grad_norm, loss_pi, loss_v)
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.sgd.state()
    }

    fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        Ok(self.sgd.load_state(state)?)
    }
}
