//! [`actor_update`]: the rule `algo` names, built from the config.

use super::update::ActorUpdate;
use super::{diag, fvp, kfac, pg, ppo, rat};
use crate::config::{Algo, Config, Optimizer};
use crate::error::invalid;

/// The actor rule selected by `algo`.
pub fn actor_update(config: &Config) -> crate::Result<Box<dyn ActorUpdate>> {
    let a = &config.algo_config;
    match config.algo {
        Algo::Rat => {
            if !matches!(a.optimizer, Optimizer::Sgd | Optimizer::Adam) {
                return invalid(format!(
                    "algo rat steps with optimizer: sgd (the reference) or adam, got {:?}",
                    a.optimizer
                ));
            }
            Ok(Box::new(rat::RatActor::new(rat::RatParams::from_config(
                a,
            ))?))
        }
        Algo::Diag => Ok(Box::new(diag::DiagActor::new(a)?)),
        Algo::Fvp => Ok(Box::new(fvp::FvpActor::new(a)?)),
        Algo::Pg => Ok(Box::new(pg::PgActor::new(a)?)),
        Algo::Kfac => {
            if a.optimizer != Optimizer::Kfac {
                return invalid("algo kfac uses optimizer: kfac (see configs/kfac_mlp.yaml)");
            }
            Ok(Box::new(kfac::KfacActor::new(a, false)?))
        }
        Algo::Ekfac => {
            if a.optimizer != Optimizer::Ekfac {
                return invalid("algo ekfac uses optimizer: ekfac (see configs/ekfac_mlp.yaml)");
            }
            Ok(Box::new(kfac::KfacActor::new(a, true)?))
        }
        Algo::Ppo => {
            if a.optimizer != Optimizer::Adam {
                return invalid("algo ppo uses optimizer: adam (see configs/ppo_mlp.yaml)");
            }
            Ok(Box::new(ppo::PpoActor::new(a)?))
        }
    }
}
