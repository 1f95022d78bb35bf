//! Environments that a library steps as a batch.

use crate::error::Result;
use crate::space::Space;

/// n environments that one library steps together and resets by itself (as gym3's libenv): a
/// [`VecEnv`](crate::VecEnv) can wrap one instead of n [`Env`](crate::Env)s and a thread pool.
///
/// Observations are (n x obs_dim) row-major `f64`, actions (n x act_dim) `f32`, as for `VecEnv`.
pub trait BatchEnv: Send {
    /// The id, e.g. `procgen:starpilot`.
    fn id(&self) -> &str;

    /// n, the number of environments.
    fn num_envs(&self) -> usize;

    /// The library's own stepping threads.
    fn threads(&self) -> usize;

    /// The observation space of one environment.
    fn observation_space(&self) -> Space;

    /// The action space of one environment.
    fn action_space(&self) -> Space;

    /// (height, width, channels) of image observations, else `None`.
    fn image_shape(&self) -> Option<[usize; 3]> {
        None
    }

    /// Environment `i`'s current observation as an RGB frame; by default an error saying that
    /// this batch cannot draw itself.
    fn render(&self, i: usize) -> Result<crate::Frame> {
        let _ = i;
        Err(crate::Error::InvalidArgument {
            op: "BatchEnv::render",
            msg: format!("{} cannot render frames", self.id()),
        })
    }

    /// Starts new episodes in every environment and writes their first observations.
    /// `Some(seed)` re-seeds the batch; `None` continues its stream.
    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> Result<()>;

    /// Steps every environment with its row of `actions`. Writes the next observations, which
    /// for an environment whose episode ended are already those of its next episode, the
    /// rewards and whether each episode ended at this step.
    fn step(
        &mut self,
        actions: &[f32],
        obs: &mut [f64],
        rewards: &mut [f64],
        done: &mut [bool],
    ) -> Result<()>;
}
