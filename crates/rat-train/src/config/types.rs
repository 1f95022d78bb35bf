//! The configuration's types: the four sections with the reference's keys and defaults, the
//! enums their values name, and YAML 1.1 scalars as PyYAML reads them (`True`, `1e6`,
//! `10_000_000`) with errors that say what was found and what is accepted.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

/// Errors of loading or overriding a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The path tried.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML is malformed, has an unknown key or a value of the wrong type.
    #[error("config {origin}: {msg}")]
    Invalid {
        /// File or override the error came from.
        origin: String,
        /// serde's message (names the key).
        msg: String,
    },
    /// A value out of its range, or inconsistent with another.
    #[error("config key {key} = {value} is not accepted: expected {accepted}")]
    Rejected {
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What is accepted.
        accepted: String,
    },
    /// A key only the other training loop reads.
    #[error(
        "config key {key} is read by {reads}, not by {runs}: remove it, or use a config for {runs} \
         (configs/*_shared.yaml for train_shared, the others for train_detach)"
    )]
    OtherTrainer {
        /// The key.
        key: String,
        /// The loop that reads it.
        reads: String,
        /// The loop being run.
        runs: String,
    },
    /// An override names no config key.
    #[error("unknown option --{key}; config keys: {known}")]
    UnknownKey {
        /// The key.
        key: String,
        /// The keys that exist.
        known: String,
    },
}

/// The update rule (`algo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// Randomized Advantage Transformation.
    Rat,
    /// Fisher-vector products + conjugate gradient.
    Fvp,
    /// Diagonal empirical Fisher.
    Diag,
    /// K-FAC.
    Kfac,
    /// Eigenvalue-corrected K-FAC.
    Ekfac,
    /// Vanilla policy gradient.
    Pg,
    /// PPO.
    Ppo,
}

/// The actor optimiser (`optimizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with momentum 1e-6 (its buffer is RAT's Kaczmarz vector).
    Sgd,
    /// Adam.
    Adam,
    /// K-FAC's own optimiser.
    Kfac,
    /// EK-FAC's own optimiser.
    Ekfac,
}

/// How the per-minibatch advantage is scaled (`norm_obj`, ALGORITHMS.md 2.2 step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormObj {
    /// s = RMS of the centred advantages.
    Adv,
    /// s = RMS of ratio ⊙ centred advantages.
    Obj,
    /// s = mean(ratio) · RMS of the centred advantages.
    Ratio,
}

/// The advantage estimator (`adv_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdvType {
    /// GAE(γ, λ).
    Gae,
    /// One-step TD errors.
    Td,
}

/// How the Gaussian policy's log-σ is produced (`sigma_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigmaType {
    /// A learned state-independent vector.
    Vector,
    /// A linear head on the mean's trunk.
    MuShared,
    /// A linear head on its own trunk.
    Separate,
    /// A linear map of the observation.
    Linear,
}

/// FVP's step direction (`grad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradKind {
    /// The plain gradient.
    Pg,
    /// The natural gradient (CG on the Fisher).
    Npg,
}

/// FVP's step clipping (`post_grad`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostGradKind {
    /// Squared damped Fisher norm.
    FisherClip,
    /// Squared L2 norm.
    L2Clip,
    /// Normalise by the Fisher norm.
    Norm,
    /// No clipping.
    None,
}

/// Where K-FAC's output-gradient statistics come from (a key the reference does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KfacStats {
    /// log π at the rollout's stored actions (the reference; default).
    Stored,
    /// log π at actions re-sampled from the current policy (the textbook Fisher).
    Sampled,
}

/// Which block-Kaczmarz variant RAT runs (a key the reference does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KaczmarzKind {
    /// The published behaviour (default).
    Reference,
    /// Textbook randomized block Kaczmarz.
    Exact,
}

/// How RAT solves its b x b system (`solve`; a key the reference does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solve {
    /// The symmetric form (K / b + λ R⁻¹) φ = a by Cholesky (default).
    Cholesky,
    /// The published non-symmetric form (K R / b + λ I) ψ = a by LU.
    Lu,
}

/// The precision of RAT's b x b solve (`solve_dtype`): the kernel is accumulated in the
/// networks' f32 and the system converted to this before it is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SolveDtype {
    /// The networks' precision (default, as published).
    F32,
    /// Double precision.
    F64,
}

/// Which joint RAT update `train_shared` runs (a key the reference does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JointMode {
    /// The published step (ALGORITHMS.md 3.2; default): ψ and the value weights φ from one
    /// two-column solve, policy part only of the joint rows in the step.
    Reference,
    /// The Tikhonov-regularised natural gradient of the combined loss under the joint Fisher
    /// (ALGORITHMS.md 3.3), by the general Woodbury identity; no Kaczmarz term.
    Exact,
}

/// How RAT's damping λ is read (`damping_mode`; a key the reference does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DampingMode {
    /// λ as given (default, as published).
    Absolute,
    /// λ · tr(K)/b: relative to the kernel's mean diagonal, so that the regularisation keeps its
    /// weight when the network (and with it the kernel's scale) grows.
    Relative,
}

/// How R ranks (`--dist mpi`) share an iteration's actor steps (`dist_mode`; a key the reference
/// does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistMode {
    /// Every rank computes the whole step on the gathered rollout (default): one process's run,
    /// bit for bit, for every rule.
    Replicated,
    /// RAT as averaged block Kaczmarz: each rank solves the b_r x b_r system of its own rows of
    /// every minibatch, and the ranks average their steps (parameters and SGD buffer). Not the
    /// global b x b solve; each rank's solve is R² times cheaper.
    Block,
    /// RAT's global solve with the rows sharded: each rank runs the forward and backward passes
    /// of its rows of every minibatch, the layer factors are all-gathered, every rank solves
    /// the same b x b system, and the gradient is summed over the ranks. One process's step up
    /// to float summation order.
    Exact,
}

/// Where RAT's entropy bonus c·ℋ enters its step (`ent_mode`; a key the reference does not have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntMode {
    /// c·∇ℋ added to the natural gradient after the solve, unpreconditioned (default; what every
    /// rule does).
    Gradient,
    /// The score-function form of ∇ℋ, E_a[−(log π(a|s) + ℋ(s)) ∇log π(a|s)], added to the
    /// advantages before the Woodbury transform: â_i = A_i − c·(log π(a_i|s_i) + ℋ(s_i)), so the
    /// bonus is preconditioned by (F + λI)⁻¹ like the return.
    Advantage,
    /// The same score-function form added after the advantages are centred and scaled
    /// (`norm_obj`; over the rollout in `kaczmarz_mode: exact`): â_i = Â_i − c·(log π(a_i|s_i) +
    /// ℋ(s_i)). c then weighs the bonus against unit-scale advantages, as PPO's c·ℋ sits beside
    /// its normalised advantages, however small the returns' spread becomes; with `advantage`
    /// the normalisation divides the bonus by that spread too.
    #[serde(rename = "normalised_advantage")]
    NormalisedAdvantage,
}

/// A YAML 1.1 scalar as PyYAML reads it: the native value, or text such as `True`, `1e6`,
/// `10_000_000`; anything else is an error that says what was found and what is accepted.
macro_rules! yaml11 {
    ($name:ident, $t:ty, $what:expr, $from_text:expr, $from_number:expr) => {
        fn $name<'de, D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Scalar {
                Native($t),
                Number(f64),
                Text(String),
                Other(serde::de::IgnoredAny),
            }
            let from_text: fn(&str) -> Option<$t> = $from_text;
            let from_number: fn(f64) -> Option<$t> = $from_number;
            let found = match Scalar::deserialize(d)? {
                Scalar::Native(v) => return Ok(v),
                Scalar::Number(x) => match from_number(x) {
                    Some(v) => return Ok(v),
                    None => format!("{x}"),
                },
                Scalar::Text(s) => match from_text(s.trim()) {
                    Some(v) => return Ok(v),
                    None => format!("'{s}'"),
                },
                Scalar::Other(_) => "a list or mapping".to_string(),
            };
            Err(serde::de::Error::custom(format!(
                "{found} is not accepted: expected {}",
                $what
            )))
        }
    };
}

/// A whole number of at most 2⁵³ written as a float (`1e6`, `2.0`).
fn whole(x: f64) -> Option<usize> {
    (x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= 9_007_199_254_740_992.0)
        .then_some(x as usize)
}

yaml11!(
    de_bool,
    bool,
    "True or False",
    |s| match s {
        "True" | "TRUE" | "true" | "yes" | "Yes" | "on" | "On" => Some(true),
        "False" | "FALSE" | "false" | "no" | "No" | "off" | "Off" => Some(false),
        _ => None,
    },
    |_| None
);
yaml11!(
    de_usize,
    usize,
    "a non-negative whole number (1000000, 1e6, 1_000_000)",
    |s| {
        let s = s.replace('_', "");
        s.parse().ok().or_else(|| s.parse().ok().and_then(whole))
    },
    whole
);
yaml11!(
    de_f64,
    f64,
    "a number (0.05, 5e-2)",
    |s| s.replace('_', "").parse().ok(),
    Some
);

/// An optional number: `null` (or absent) for none, else as [`de_f64`].
fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    struct Number(#[serde(deserialize_with = "de_f64")] f64);
    Ok(Option::<Number>::deserialize(d)?.map(|n| n.0))
}

/// `algo_config`: the update rule's hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlgoConfig {
    /// Entropy bonus coefficient.
    #[serde(deserialize_with = "de_f64")]
    pub ent_coef: f64,
    /// Advantage scaling.
    pub norm_obj: NormObj,
    /// Actor optimiser.
    pub optimizer: Optimizer,
    /// Present in `fvp_mlp.yaml` but never read by the reference (momentum is 1e-6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sgd_momentum: Option<f64>,
    /// L2 weight decay (Adam and K-FAC).
    #[serde(deserialize_with = "de_f64")]
    pub weight_decay: f64,
    /// Actor learning rate (separate networks).
    #[serde(deserialize_with = "de_f64")]
    pub lr_pi: f64,
    /// Critic learning rate (separate networks).
    #[serde(deserialize_with = "de_f64")]
    pub lr_v: f64,
    /// Joint learning rate (shared network); also its KL-rule ceiling.
    #[serde(deserialize_with = "de_f64")]
    pub lr: f64,
    /// The KL-adaptive learning-rate rule.
    #[serde(deserialize_with = "de_bool")]
    pub use_kl_adaptive_lr: bool,
    /// RAT's Kaczmarz correction (the reference's spelling; `is_kaczmarz` also accepted).
    #[serde(alias = "is_kaczmarz", deserialize_with = "de_bool")]
    pub is_karzmarz: bool,
    /// Which Kaczmarz variant, when on.
    pub kaczmarz_mode: KaczmarzKind,
    /// Actor passes per rollout.
    #[serde(deserialize_with = "de_usize")]
    pub pi_epochs: usize,
    /// Actor minibatches per pass.
    #[serde(deserialize_with = "de_usize")]
    pub pi_minibatches: usize,
    /// Critic passes per rollout.
    #[serde(deserialize_with = "de_usize")]
    pub v_epochs: usize,
    /// Critic minibatches per pass.
    #[serde(deserialize_with = "de_usize")]
    pub v_minibatches: usize,
    /// Joint passes per rollout (shared network).
    #[serde(deserialize_with = "de_usize")]
    pub epochs: usize,
    /// Joint minibatches per pass (shared network).
    #[serde(deserialize_with = "de_usize")]
    pub minibatches: usize,
    /// Value-loss weight (shared network).
    #[serde(deserialize_with = "de_f64")]
    pub vf_coef: f64,
    /// PopArt value head and normalised returns/advantages.
    #[serde(deserialize_with = "de_bool")]
    pub with_popart: bool,
    /// Advantage estimator.
    pub adv_type: AdvType,
    /// Clamp the importance ratio to [min_ratio, max_ratio].
    #[serde(deserialize_with = "de_bool")]
    pub clamp_ratio: bool,
    /// Upper ratio clamp.
    #[serde(deserialize_with = "de_f64")]
    pub max_ratio: f64,
    /// Lower ratio clamp.
    #[serde(deserialize_with = "de_f64")]
    pub min_ratio: f64,
    /// Gaussian log-σ parameterisation.
    pub sigma_type: SigmaType,
    /// CG iterations (FVP).
    #[serde(deserialize_with = "de_usize")]
    pub cg_steps: usize,
    /// λ: Tikhonov damping of RAT, diagonal damping of diag, FVP damping.
    #[serde(deserialize_with = "de_f64")]
    pub cg_damping: f64,
    /// FVP's direction.
    pub grad: GradKind,
    /// FVP's step clipping.
    pub post_grad: PostGradKind,
    /// Global L2 clip of the actor step.
    #[serde(deserialize_with = "de_f64")]
    pub max_grad_norm: f64,
    /// `train_shared`'s RAT update: `reference` (default) or `exact`.
    pub joint_mode: JointMode,
    /// K-FAC's G statistics: `stored` (the reference) or `sampled` actions.
    pub kfac_stats: KfacStats,
    /// K-FAC's and EK-FAC's damping δ (the reference's K-FAC hard-codes 1e-3 and ignores
    /// `cg_damping`).
    #[serde(deserialize_with = "de_f64")]
    pub kfac_damping: f64,
    /// PPO's clipping range ε (a key the reference does not have; only `algo: ppo` reads it).
    #[serde(deserialize_with = "de_f64")]
    pub clip_coef: f64,
    /// Optional learning-rate decay (`cosine`); absent in every reference config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_decay: Option<String>,
    /// RAT's solve: `cholesky` (default) or `lu` (the published form).
    pub solve: Solve,
    /// The precision of RAT's solve: `f32` (default) or `f64`.
    pub solve_dtype: SolveDtype,
    /// Log the relative residual and the condition number of RAT's solve on the first
    /// minibatch of every rollout (TensorBoard `solve/residual`, `solve/condition`; costs one
    /// b x b eigendecomposition per rollout).
    #[serde(deserialize_with = "de_bool")]
    pub solve_diagnostics: bool,
    /// Discount γ (hard-coded 0.999 in the reference).
    #[serde(deserialize_with = "de_f64")]
    pub gamma: f64,
    /// GAE λ (hard-coded 0.95 in the reference).
    #[serde(deserialize_with = "de_f64")]
    pub gae_lambda: f64,
    /// The KL-adaptive rule shrinks lr above this KL (`null`: the loop's published value, 0.016
    /// separate, 0.02 shared).
    #[serde(deserialize_with = "de_opt_f64")]
    pub kl_high: Option<f64>,
    /// The KL-adaptive rule grows lr below this KL (`null`: 0.004 separate, 0.005 shared).
    #[serde(deserialize_with = "de_opt_f64")]
    pub kl_low: Option<f64>,
    /// The KL-adaptive rule's largest lr (`null`: 0.05 separate, `lr` shared).
    #[serde(deserialize_with = "de_opt_f64")]
    pub lr_ceiling: Option<f64>,
    /// The entropy coefficient at the end of the run, reached linearly from `ent_coef`
    /// (`null`: constant).
    #[serde(deserialize_with = "de_opt_f64")]
    pub ent_coef_final: Option<f64>,
    /// Stop an iteration's actor passes once the KL to the rollout's policy on the next
    /// minibatch exceeds this (`null`: off; costs one forward pass per step).
    #[serde(deserialize_with = "de_opt_f64")]
    pub target_kl: Option<f64>,
    /// Scale every step so that its quadratic KL ½ Δθᵀ F Δθ under the exact Fisher stays within
    /// this (`null`: off; costs one forward tangent pass per step; SGD rules of `train_detach`).
    #[serde(deserialize_with = "de_opt_f64")]
    pub max_kl: Option<f64>,
    /// RAT's λ as given (`absolute`, default) or relative to tr(K)/b (`relative`).
    pub damping_mode: DampingMode,
    /// Measure every actor step: the KL moved on its minibatch (one extra forward pass) and the
    /// predicted quadratic KL (one forward tangent pass).
    #[serde(deserialize_with = "de_bool")]
    pub step_diagnostics: bool,
    /// How ranks share the actor steps under `--dist mpi` (`replicated`, default, `exact` or
    /// `block`).
    pub dist_mode: DistMode,
    /// Where RAT's entropy bonus enters its step (`gradient`, default, or `advantage`).
    pub ent_mode: EntMode,
}

impl Default for AlgoConfig {
    fn default() -> Self {
        Self {
            ent_coef: 0.0,
            norm_obj: NormObj::Adv,
            optimizer: Optimizer::Sgd,
            sgd_momentum: None,
            weight_decay: 0.0,
            lr_pi: 0.05,
            lr_v: 0.001,
            lr: 0.05,
            use_kl_adaptive_lr: true,
            is_karzmarz: true,
            kaczmarz_mode: KaczmarzKind::Reference,
            pi_epochs: 4,
            pi_minibatches: 8,
            v_epochs: 4,
            v_minibatches: 8,
            epochs: 4,
            minibatches: 8,
            vf_coef: 1.0,
            with_popart: true,
            adv_type: AdvType::Gae,
            clamp_ratio: true,
            max_ratio: 10.0,
            min_ratio: 0.1,
            sigma_type: SigmaType::Vector,
            cg_steps: 10,
            cg_damping: 0.1,
            grad: GradKind::Npg,
            post_grad: PostGradKind::FisherClip,
            max_grad_norm: 0.5,
            clip_coef: 0.2,
            kfac_stats: KfacStats::Stored,
            joint_mode: JointMode::Reference,
            kfac_damping: 1e-3,
            lr_decay: None,
            solve: Solve::Cholesky,
            solve_dtype: SolveDtype::F32,
            solve_diagnostics: false,
            gamma: 0.999,
            gae_lambda: 0.95,
            kl_high: None,
            kl_low: None,
            lr_ceiling: None,
            ent_coef_final: None,
            target_kl: None,
            max_kl: None,
            damping_mode: DampingMode::Absolute,
            step_diagnostics: false,
            dist_mode: DistMode::Replicated,
            ent_mode: EntMode::Gradient,
        }
    }
}

/// `env_config`: the environment and the rollout size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvConfig {
    /// A registered name (`hopper`, `CartPole-v1`, …).
    pub env_name: String,
    /// E, environments stepped together.
    #[serde(deserialize_with = "de_usize")]
    pub num_envs: usize,
    /// T, steps per environment per rollout.
    #[serde(deserialize_with = "de_usize")]
    pub nsteps: usize,
    /// The budget of environment steps; iterations = ⌊budget / (E·T)⌋ + 2.
    #[serde(deserialize_with = "de_usize")]
    pub timesteps_per_proc: usize,
    /// Reward scaling by a running return std (off in every reference config).
    #[serde(deserialize_with = "de_bool")]
    pub norm_ret: bool,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self {
            env_name: "hopper".into(),
            num_envs: 32,
            nsteps: 256,
            timesteps_per_proc: 10_000_000,
            norm_ret: false,
        }
    }
}

/// `nets_config`: the networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetsConfig {
    /// Running observation normalisation.
    #[serde(deserialize_with = "de_bool")]
    pub norm_obs: bool,
    /// Network family (`mlp`).
    #[serde(rename = "type")]
    pub net_type: String,
    /// Actor MLP width.
    #[serde(deserialize_with = "de_usize")]
    pub a_hidden_size: usize,
    /// Actor MLP depth.
    #[serde(deserialize_with = "de_usize")]
    pub a_num_layers: usize,
    /// Actor dropout.
    #[serde(deserialize_with = "de_f64")]
    pub a_dropout: f64,
    /// Critic MLP width.
    #[serde(deserialize_with = "de_usize")]
    pub c_hidden_size: usize,
    /// Critic MLP depth.
    #[serde(deserialize_with = "de_usize")]
    pub c_num_layers: usize,
    /// Critic dropout.
    #[serde(deserialize_with = "de_f64")]
    pub c_dropout: f64,
    /// Shared MLP width.
    #[serde(deserialize_with = "de_usize")]
    pub hidden_size: usize,
    /// Shared MLP depth.
    #[serde(deserialize_with = "de_usize")]
    pub num_layers: usize,
    /// Shared dropout.
    #[serde(deserialize_with = "de_f64")]
    pub dropout: f64,
    /// Batch norm in image encoders (read by a dead branch of the reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_bn: Option<bool>,
}

impl Default for NetsConfig {
    fn default() -> Self {
        Self {
            norm_obs: true,
            net_type: "mlp".into(),
            a_hidden_size: 256,
            a_num_layers: 2,
            a_dropout: 0.0,
            c_hidden_size: 256,
            c_num_layers: 2,
            c_dropout: 0.0,
            hidden_size: 256,
            num_layers: 2,
            dropout: 0.0,
            with_bn: None,
        }
    }
}

/// `log_config`: logging cadence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Write a CSV/stdout row every this many iterations.
    #[serde(deserialize_with = "de_usize")]
    pub log_interval: usize,
    /// Present in the reference configs, never read.
    #[serde(deserialize_with = "de_usize")]
    pub n_eval_trials: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            log_interval: 10,
            n_eval_trials: 20,
        }
    }
}

/// A whole training configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The update rule.
    pub algo: Algo,
    /// Its hyperparameters.
    #[serde(default)]
    pub algo_config: AlgoConfig,
    /// Environment and rollout.
    #[serde(default)]
    pub env_config: EnvConfig,
    /// Networks.
    #[serde(default)]
    pub nets_config: NetsConfig,
    /// Logging.
    #[serde(default)]
    pub log_config: LogConfig,
    /// The keys a file or an override gave explicitly (not the defaults), so that a key the
    /// chosen loop does not read can be refused ([`Config::validate`]).
    #[serde(skip)]
    pub given: BTreeSet<String>,
}

/// Two configs are equal when their settings are, whichever keys were given explicitly.
impl PartialEq for Config {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.algo,
            &self.algo_config,
            &self.env_config,
            &self.nets_config,
            &self.log_config,
        ) == (
            &other.algo,
            &other.algo_config,
            &other.env_config,
            &other.nets_config,
            &other.log_config,
        )
    }
}

pub(super) const SECTIONS: [&str; 4] = ["algo_config", "env_config", "nets_config", "log_config"];

/// The keys a resume may change: the budget (to train longer) and the logging cadence. Every
/// other setting is the run's own; changing it would silently not apply (the learning rate the KL
/// rule adapted, the optimiser state) or not fit the checkpoint (networks, environment, rule).
pub const RESUMABLE_KEYS: &[&str] = &["timesteps_per_proc", "log_interval"];
