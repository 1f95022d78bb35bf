//! The training loops and what they share.
//!
//! * [`detach`] — `train_detach`: a separate actor and critic, read top to bottom in
//!   [`detach::run`];
//! * [`shared`] — `train_shared`: one shared actor–critic with joint updates;
//! * [`rollout`] — the environment steps of one iteration and the advantages;
//! * [`ranks`] — one loop on R ranks (`--dist mpi`): environment shares, the gathered rollout,
//!   rank 0's writes;
//! * [`control`] — the entropy schedule, the per-rollout KL stop and the step statistics;
//! * [`start`] — start-up (seed, environments, resume) and the counters carried between
//!   iterations;
//! * [`evaluate`] — deterministic evaluation of a checkpoint;
//! * [`video`] — `--video_every`: evaluation episodes as GIFs in the run directory and TensorBoard;
//! * [`options`] — [`RunOptions`], [`Outcome`] and the iteration count of a budget.

pub mod control;
pub mod detach;
pub mod evaluate;
pub mod options;
pub mod ranks;
pub mod rollout;
pub mod shared;
pub mod start;
pub mod video;

pub use options::{Outcome, RunOptions, iterations};
