//! [`joint_update`]: the joint rule `algo` names, built from the config.

use super::update::{JointParams, JointUpdate};
use super::{DiagJoint, KfacJoint, RatJoint};
use crate::config::{Algo, Config, Optimizer};
use crate::error::{Result, invalid};

/// The joint rule selected by `algo`.
pub fn joint_update(config: &Config) -> Result<Box<dyn JointUpdate>> {
    let a = &config.algo_config;
    let need = |opt: Optimizer, algo: &str| -> Result<()> {
        if a.optimizer == opt {
            Ok(())
        } else {
            invalid(format!(
                "algo {algo} in train_shared uses optimizer: {} (see configs/{algo}_mlp_shared.yaml), got {:?}",
                format!("{opt:?}").to_lowercase(),
                a.optimizer
            ))
        }
    };
    match config.algo {
        Algo::Rat => {
            need(Optimizer::Sgd, "rat")?;
            Ok(Box::new(RatJoint::new(JointParams::from_config(a))?))
        }
        Algo::Diag => {
            need(Optimizer::Sgd, "diag")?;
            Ok(Box::new(DiagJoint::new(JointParams::from_config(a))?))
        }
        Algo::Kfac => {
            need(Optimizer::Kfac, "kfac")?;
            Ok(Box::new(KfacJoint::new(a, false)?))
        }
        Algo::Ekfac => {
            need(Optimizer::Ekfac, "ekfac")?;
            Ok(Box::new(KfacJoint::new(a, true)?))
        }
        other => invalid(format!(
            "train_shared runs algo rat, diag, kfac or ekfac, not {other:?} (use train_detach)"
        )),
    }
}
