//! Checks a config against the loop that will run it, before anything is created: every refusal
//! names the key, its value and what is accepted.

use super::types::{Config, ConfigError};

/// Which training loop a config is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trainer {
    /// `train_detach`: a separate actor and critic.
    Detach,
    /// `train_shared`: one shared actor–critic.
    Shared,
}

impl Trainer {
    /// The example's name.
    pub fn name(self) -> &'static str {
        match self {
            Trainer::Detach => "train_detach",
            Trainer::Shared => "train_shared",
        }
    }

    /// The keys only this loop reads.
    pub fn own_keys(self) -> &'static [&'static str] {
        match self {
            Trainer::Detach => DETACH_ONLY,
            Trainer::Shared => SHARED_ONLY,
        }
    }

    /// The other loop.
    pub fn other(self) -> Self {
        match self {
            Trainer::Detach => Trainer::Shared,
            Trainer::Shared => Trainer::Detach,
        }
    }
}

/// Keys only `train_detach` reads.
const DETACH_ONLY: &[&str] = &[
    "lr_pi",
    "lr_v",
    "pi_epochs",
    "pi_minibatches",
    "v_epochs",
    "v_minibatches",
    "a_hidden_size",
    "a_num_layers",
    "a_dropout",
    "c_hidden_size",
    "c_num_layers",
    "c_dropout",
    "kaczmarz_mode",
    "grad",
    "post_grad",
    "cg_steps",
    "clip_coef",
    "kfac_stats",
    "max_kl",
    "step_diagnostics",
];

/// Keys only `train_shared` reads.
const SHARED_ONLY: &[&str] = &[
    "lr",
    "epochs",
    "minibatches",
    "vf_coef",
    "hidden_size",
    "num_layers",
    "dropout",
    "joint_mode",
];

/// The smallest minibatch an update may see: with fewer samples the centred advantages are
/// (nearly) all zero and a step fits noise, or nothing at all (one sample: a zero step).
pub const MIN_MINIBATCH: usize = 4;

/// The most parameters one network may have (2³¹, 8 GiB in f32): a larger one cannot be
/// allocated on any machine this runs on, and would abort instead of failing cleanly.
pub const MAX_PARAMETERS: u128 = 1 << 31;

fn reject(key: &str, value: impl std::fmt::Display, accepted: &str) -> ConfigError {
    ConfigError::Rejected {
        key: key.into(),
        value: value.to_string(),
        accepted: accepted.into(),
    }
}

fn positive(key: &str, x: f64) -> Result<(), ConfigError> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(reject(key, x, "a finite number > 0"))
    }
}

fn finite(key: &str, x: f64) -> Result<(), ConfigError> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(reject(key, x, "a finite number"))
    }
}

fn at_least_one(key: &str, k: usize) -> Result<(), ConfigError> {
    if k >= 1 {
        Ok(())
    } else {
        Err(reject(key, k, "a whole number ≥ 1"))
    }
}

fn dropout(key: &str, p: f64) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(reject(key, p, "a probability in [0, 1)"))
    }
}

/// `m` minibatches of a rollout of `n` samples hold at least [`MIN_MINIBATCH`] samples each.
fn minibatches(key: &str, m: usize, n: usize) -> Result<(), ConfigError> {
    if m >= 1 && n / m >= MIN_MINIBATCH {
        return Ok(());
    }
    Err(reject(
        key,
        m,
        &format!(
            "1..={} (minibatches of at least {MIN_MINIBATCH} of the rollout's {n} samples)",
            (n / MIN_MINIBATCH).max(1)
        ),
    ))
}

/// An MLP of `layers` hidden layers of `width` has at least this many parameters (one input).
fn mlp_parameters(width: usize, layers: usize) -> u128 {
    let (h, l) = (width as u128, layers as u128);
    if l == 0 {
        return 0;
    }
    2 * h + (l - 1) * (h * h + h)
}

fn fits(key: &str, width: usize, layers: usize) -> Result<(), ConfigError> {
    if mlp_parameters(width, layers) <= MAX_PARAMETERS {
        Ok(())
    } else {
        Err(reject(
            key,
            width,
            &format!("a width whose {layers} layers have at most 2^31 parameters"),
        ))
    }
}

impl Config {
    /// Checks the config for `trainer`: every count and rate in its range, consistent ranges,
    /// minibatches of at least [`MIN_MINIBATCH`] samples, networks that can be allocated, and no
    /// explicitly given key that only the other loop reads.
    pub fn validate(&self, trainer: Trainer) -> Result<(), ConfigError> {
        let (a, e, nets) = (&self.algo_config, &self.env_config, &self.nets_config);
        let other = trainer.other();
        if let Some(key) = other.own_keys().iter().find(|k| self.given.contains(**k)) {
            return Err(ConfigError::OtherTrainer {
                key: (*key).into(),
                reads: other.name().into(),
                runs: trainer.name().into(),
            });
        }
        at_least_one("num_envs", e.num_envs)?;
        at_least_one("nsteps", e.nsteps)?;
        let n = e.num_envs * e.nsteps;
        match trainer {
            Trainer::Detach => {
                at_least_one("pi_epochs", a.pi_epochs)?;
                at_least_one("v_epochs", a.v_epochs)?;
                minibatches("pi_minibatches", a.pi_minibatches, n)?;
                minibatches("v_minibatches", a.v_minibatches, n)?;
                positive("lr_pi", a.lr_pi)?;
                positive("lr_v", a.lr_v)?;
                dropout("a_dropout", nets.a_dropout)?;
                dropout("c_dropout", nets.c_dropout)?;
                fits("a_hidden_size", nets.a_hidden_size, nets.a_num_layers)?;
                fits("c_hidden_size", nets.c_hidden_size, nets.c_num_layers)?;
                if !(a.clip_coef > 0.0 && a.clip_coef < 1.0) {
                    return Err(reject("clip_coef", a.clip_coef, "a number in (0, 1)"));
                }
            }
            Trainer::Shared => {
                at_least_one("epochs", a.epochs)?;
                minibatches("minibatches", a.minibatches, n)?;
                positive("lr", a.lr)?;
                if !(a.vf_coef.is_finite() && a.vf_coef >= 0.0) {
                    return Err(reject("vf_coef", a.vf_coef, "a finite number ≥ 0"));
                }
                dropout("dropout", nets.dropout)?;
                fits("hidden_size", nets.hidden_size, nets.num_layers)?;
            }
        }
        finite("ent_coef", a.ent_coef)?;
        positive("cg_damping", a.cg_damping)?;
        positive("kfac_damping", a.kfac_damping)?;
        positive("max_grad_norm", a.max_grad_norm)?;
        if !(a.weight_decay.is_finite() && a.weight_decay >= 0.0) {
            return Err(reject(
                "weight_decay",
                a.weight_decay,
                "a finite number ≥ 0",
            ));
        }
        self.validate_step_control(trainer)?;
        if a.clamp_ratio {
            finite("min_ratio", a.min_ratio)?;
            finite("max_ratio", a.max_ratio)?;
            if !(a.min_ratio >= 0.0 && a.min_ratio < a.max_ratio) {
                return Err(reject(
                    "max_ratio",
                    a.max_ratio,
                    &format!(
                        "a number above min_ratio = {} (with clamp_ratio, 0 ≤ min_ratio < max_ratio)",
                        a.min_ratio
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The keys of issue 16's step control: discounting, the KL rule, the entropy schedule and
    /// the KL bounds.
    fn validate_step_control(&self, trainer: Trainer) -> Result<(), ConfigError> {
        let a = &self.algo_config;
        if !(a.gamma > 0.0 && a.gamma <= 1.0) {
            return Err(reject("gamma", a.gamma, "a number in (0, 1]"));
        }
        if !(0.0..=1.0).contains(&a.gae_lambda) {
            return Err(reject("gae_lambda", a.gae_lambda, "a number in [0, 1]"));
        }
        let optional = [
            ("kl_high", a.kl_high),
            ("kl_low", a.kl_low),
            ("lr_ceiling", a.lr_ceiling),
            ("target_kl", a.target_kl),
            ("max_kl", a.max_kl),
        ];
        for (key, x) in optional {
            x.map_or(Ok(()), |x| positive(key, x))?;
        }
        if let Some(x) = a.ent_coef_final {
            finite("ent_coef_final", x)?;
        }
        let (high, low) = kl_rule_targets(trainer);
        let (high, low) = (a.kl_high.unwrap_or(high), a.kl_low.unwrap_or(low));
        if low >= high {
            return Err(reject(
                "kl_low",
                low,
                &format!(
                    "a KL below kl_high = {high} (the rule grows lr below kl_low, shrinks it above kl_high)"
                ),
            ));
        }
        let exact = a.is_karzmarz && a.kaczmarz_mode == super::types::KaczmarzKind::Exact;
        use super::types::EntMode;
        if a.ent_mode != EntMode::Gradient && self.algo != super::types::Algo::Rat {
            return Err(reject(
                "ent_mode",
                super::spelling(&a.ent_mode),
                "gradient for algo other than rat (the bonus enters RAT's transformed advantage)",
            ));
        }
        use super::types::{Algo, DampingMode, DistMode, JointMode};
        if a.ent_mode == EntMode::NormalisedAdvantage
            && trainer == Trainer::Shared
            && a.joint_mode == JointMode::Exact
        {
            return Err(reject(
                "ent_mode",
                "normalised_advantage",
                "gradient or advantage with joint_mode exact (normalised_advantage adds the bonus \
                 to the advantages the reference joint step normalises)",
            ));
        }
        let rat = self.algo == Algo::Rat && !exact;
        // Only RAT's reference solve sees the kernel whose scale tr(K)/b a relative λ needs.
        let reference_solve = match trainer {
            Trainer::Detach => rat,
            Trainer::Shared => self.algo == Algo::Rat && a.joint_mode == JointMode::Reference,
        };
        if a.damping_mode == DampingMode::Relative && !reference_solve {
            return Err(reject(
                "damping_mode",
                "relative",
                "absolute here: λ·tr(K)/b is applied by RAT's reference solve only (algo rat with \
                 kaczmarz_mode reference in train_detach, joint_mode reference in train_shared)",
            ));
        }
        match a.dist_mode {
            DistMode::Block if trainer == Trainer::Shared => {
                return Err(reject(
                    "dist_mode",
                    "block",
                    "replicated or exact here: train_shared has no averaged block Kaczmarz",
                ));
            }
            DistMode::Block if !rat => {
                return Err(reject(
                    "dist_mode",
                    "block",
                    "replicated or exact here: block is RAT's averaged block Kaczmarz, for algo \
                     rat with kaczmarz_mode reference",
                ));
            }
            DistMode::Block if a.optimizer == super::types::Optimizer::Adam => {
                return Err(reject(
                    "optimizer",
                    "adam",
                    "sgd with dist_mode block: the ranks average their parameters and SGD \
                     buffers after every step, and Adam's moments, each rank's own, would not be",
                ));
            }
            DistMode::Exact if self.algo == Algo::Rat && !rat => {
                return Err(reject(
                    "dist_mode",
                    "exact",
                    "replicated here: kaczmarz_mode exact keeps a rollout-wide iterate, so its \
                     rows are not split (dist_mode exact is for kaczmarz_mode reference)",
                ));
            }
            DistMode::Exact
                if matches!(self.algo, Algo::Kfac | Algo::Ekfac)
                    && a.kfac_stats == super::types::KfacStats::Sampled =>
            {
                return Err(reject(
                    "dist_mode",
                    "exact",
                    "replicated here: kfac_stats sampled draws actions row by row from the \
                     rule's own RNG; dist_mode exact needs kfac_stats stored",
                ));
            }
            _ => {}
        }
        if a.max_kl.is_some()
            && (self.algo == super::types::Algo::Ppo
                || a.optimizer == super::types::Optimizer::Adam)
        {
            return Err(reject(
                "max_kl",
                a.max_kl.unwrap_or_default(),
                "null for algo ppo or optimizer adam (max_kl scales an SGD step; Adam's step is \
                 not linear in the gradient)",
            ));
        }
        Ok(())
    }
}

/// The published KL rule's (high, low) targets of each loop (ALGORITHMS.md 2.5).
pub fn kl_rule_targets(trainer: Trainer) -> (f64, f64) {
    match trainer {
        Trainer::Detach => (0.016, 0.004),
        Trainer::Shared => (0.02, 0.005),
    }
}
