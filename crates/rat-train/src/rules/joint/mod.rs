//! Joint updates of the shared actor–critic (`train_shared`, ALGORITHMS.md 3, 4.2, 4.3): one
//! step per minibatch over **all** parameters, with the value loss in the same step.
//!
//! Every rule starts from a [`JointPass`]: one recorded forward pass and one backward pass of
//! Σ_i ℓ_i with ℓ_i = log π(a_i|s_i) − (v_i − ṽ_i)², ṽ_i = v_i + ε_i a constant, ε_i ~ N(0, 1)
//! fresh per sample and minibatch. Its factored Jacobian has the joint rows
//! h_i = ∇log π_i + 2ε_i ∇v_i (a sampled-target Gauss–Newton score for the value head, whose
//! expected outer product is 4∇v∇vᵀ).
//!
//! * [`RatJoint`], `joint_mode: reference` (default; 3.2): a from the advantages (centred,
//!   RMS-scaled), e = 1; with the Kaczmarz vector g (SGD momentum buffer over all parameters)
//!   c = H g and a ← a − c, e ← e − c; [ψ, φ] = (H Hᵀ R / b + λI)⁻¹ [a, e] in one two-column
//!   solve; loss −mean(r ψ) − c_ent ℋ + c_v mean(φ (v − R)²) with r the clamped ratio *with*
//!   gradient (clamped samples contribute nothing); global L2 clip 0.5; SGD step.
//! * [`RatJoint`], `joint_mode: exact` (3.3): the Tikhonov-regularised natural gradient of the
//!   combined loss L = −mean(r a) − c_ent ℋ + c_v mean((v − R)²) under the joint Fisher
//!   F_R = Hᵀ R H / b, by the general Woodbury identity
//!   (F_R + λI)⁻¹ g = (g − Hᵀ y)/λ,  y = (H Hᵀ + λ b R⁻¹)⁻¹ H g,
//!   one JVP, one b x b solve and one VJP; then the same clip and SGD step, no Kaczmarz term.
//!   The reference step instead keeps only the ∇log π part of each row in the step and weights
//!   the squared errors by the heuristic φ, which can be negative.
//! * [`DiagJoint`] (4.2 shared): d = ∇L / (diag(Hᵀ H)/b + λ) with the plain MSE value loss.
//! * [`KfacJoint`] (4.3 shared): K-FAC with G from the same joint objective (value head in the
//!   Fisher through the sampled target), the plain MSE value loss, momentum 0.9. The value head
//!   is preconditioned like every dense layer (the reference's PopArt head escapes K-FAC only
//!   because it is not an `nn.Linear`).
//!
//! Every rule reports the KL(π_old ‖ π_new) measured *after* its step, as the shared script does.

pub mod diag;
pub mod factory;
pub mod kfac;
pub mod pass;
pub mod rat;
pub mod update;

pub use diag::DiagJoint;
pub use factory::joint_update;
pub use kfac::KfacJoint;
pub use pass::JointPass;
pub use rat::RatJoint;
pub use update::{JointBatch, JointInfo, JointParams, JointUpdate};
