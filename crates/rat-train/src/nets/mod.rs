//! The networks: what a policy is ([`policy`]), the reference's MLP actors and critic ([`mlp`](mod@mlp)),
//! the image encoders in front of them ([`encoders`]), the separate agent ([`agent`]), the shared
//! actor–critic ([`shared`]), and what every agent carries besides its networks and what a
//! rollout asks of it ([`preprocess`]).

pub mod agent;
pub mod encoders;
pub mod mlp;
pub mod policy;
pub mod preprocess;
pub mod shared;

pub use agent::{ActorNet, Agent};
pub use encoders::{Encoder, NetType};
pub use mlp::{CategoricalActor, Critic, GaussianActor, mlp, value_head};
pub use policy::{ActionMode, Actor, Policy, PolicyTangent, select_actions, skip_samples};
pub use preprocess::{Preprocess, RolloutModel};
pub use shared::{DropoutMasks, JointOutput, SharedActorCritic, SharedAgent, TrunkSpec};
