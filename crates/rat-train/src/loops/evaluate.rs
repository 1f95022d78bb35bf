//! Deterministic evaluation of a checkpoint: the mean action (or the most likely one), squashed
//! as in training, for a number of whole episodes.

use std::path::Path;

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::rollout::Squash;
use crate::error::{Result, invalid};
use crate::io::checkpoint;
use crate::nets::{ActionMode, Agent, RolloutModel, SharedAgent, select_actions};

/// Episode returns and lengths of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Undiscounted return of each episode.
    pub returns: Vec<f64>,
    /// Length of each episode.
    pub lengths: Vec<usize>,
}

impl Evaluation {
    /// Mean and population standard deviation of the returns.
    pub fn mean_std(&self) -> (f64, f64) {
        let n = self.returns.len().max(1) as f64;
        let mean = self.returns.iter().sum::<f64>() / n;
        let var = self.returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }
}

/// Which frames [`play`] keeps: those of the first `episodes` episodes, every one, or, for a
/// video played at `fps` frames a second, one every `render_fps / fps` steps (rounded, at least
/// one), so that it plays at the speed of the environment's simulated time
/// ([`rat_envs::Env::render_fps`]; every frame where that is unknown).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recording {
    /// How many episodes, from the first.
    pub episodes: usize,
    /// The video's playback rate, or `None` for every frame.
    pub fps: Option<f64>,
}

impl Recording {
    /// Nothing recorded.
    pub const NONE: Self = Self {
        episodes: 0,
        fps: None,
    };

    /// Every frame of the first `episodes` episodes.
    pub fn every_frame(episodes: usize) -> Self {
        Self {
            episodes,
            fps: None,
        }
    }

    /// The first `episodes` episodes, for playback at `fps` frames a second.
    pub fn at_fps(episodes: usize, fps: f64) -> Self {
        Self {
            episodes,
            fps: Some(fps),
        }
    }

    /// Steps between kept frames for an environment of `render_fps`.
    pub fn stride(&self, render_fps: Option<f64>) -> usize {
        match (self.fps, render_fps) {
            (Some(fps), Some(r)) if fps > 0.0 && r > fps => (r / fps).round() as usize,
            _ => 1,
        }
    }
}

/// Runs the policy of `checkpoint` (a `model.safetensors` of `train_detach` or `train_shared`) for `episodes`
/// episodes of its environment, seeded from `seed`, choosing actions by `mode`.
pub fn evaluate(
    checkpoint_path: &Path,
    episodes: usize,
    seed: u64,
    mode: ActionMode,
    device: &Device,
) -> Result<Evaluation> {
    Ok(evaluate_recorded(
        checkpoint_path,
        episodes,
        seed,
        mode,
        device,
        Recording::NONE,
    )?
    .0)
}

/// [`evaluate`], rendering the episodes `record` asks for ([`play`]).
pub fn evaluate_recorded(
    checkpoint_path: &Path,
    episodes: usize,
    seed: u64,
    mode: ActionMode,
    device: &Device,
    record: Recording,
) -> Result<(Evaluation, Vec<Vec<rat_envs::Frame>>)> {
    if episodes == 0 {
        return invalid("evaluate: need at least one episode");
    }
    let tensors = checkpoint::load(checkpoint_path)?;
    let config = tensors.config()?;
    let mut env = rat_envs::make(&config.env_config.env_name, 1, seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (obs_space, act_space) = (env.observation_space(), env.action_space());
    let image = env.image_shape();
    // A shared network's checkpoint names its parameters `shared.…`.
    let agent: Box<dyn RolloutModel> = if tensors.keys().any(|k| k.starts_with("shared.")) {
        let mut a = SharedAgent::new(&config, obs_space, image, act_space, device, &mut rng)?;
        a.load(&tensors)?;
        Box::new(a)
    } else {
        let mut a = Agent::new(&config, obs_space, image, act_space, device, &mut rng)?;
        a.load(&tensors)?;
        Box::new(a)
    };
    play(
        agent.as_ref(),
        &mut env,
        episodes,
        record,
        mode,
        device,
        &mut rng,
    )
}

/// Runs `agent` on environment 0 of `env` (reset first) for `episodes` whole episodes, actions
/// chosen by `mode` (the observation normaliser frozen), rendering the episodes `record` asks
/// for: from the episode's first observation to the one before it ends, every
/// [`Recording::stride`]-th step. An environment that cannot draw itself is an error before any
/// step when something is to be recorded.
pub fn play(
    agent: &dyn RolloutModel,
    env: &mut rat_envs::VecEnv,
    episodes: usize,
    record: Recording,
    mode: ActionMode,
    device: &Device,
    rng: &mut ChaCha8Rng,
) -> Result<(Evaluation, Vec<Vec<rat_envs::Frame>>)> {
    let squash = Squash::for_space(env.action_space())?;
    let mut buf = env.buffers();
    env.reset(&mut buf.obs)?;
    let mut out = Evaluation {
        returns: Vec::new(),
        lengths: Vec::new(),
    };
    let mut env_action = vec![0f32; agent.pre().act_dim];
    let mut videos: Vec<Vec<rat_envs::Frame>> = Vec::new();
    let stride = record.stride(env.render_fps());
    // Steps since the episode in progress started.
    let mut t = 0;
    if record.episodes > 0 {
        videos.push(vec![env.render(0)?]);
    }
    while out.returns.len() < episodes {
        let x = agent.normalise(&buf.obs, device)?;
        let a = select_actions(&agent.policy(&x)?, mode, rng)?;
        squash.apply(&a, &mut env_action);
        env.step(&env_action, &mut buf)?;
        for (_, ret, len) in buf.episodes() {
            out.returns.push(ret);
            out.lengths.push(len);
        }
        // The environment has already reset after an episode's last step: its frame is the
        // next episode's first.
        t = if buf.done(0) { 0 } else { t + 1 };
        let recording = out.returns.len() < episodes.min(record.episodes);
        if recording && buf.done(0) {
            videos.push(Vec::new());
        }
        if let Some(frames) = videos.last_mut().filter(|_| recording && t % stride == 0) {
            frames.push(env.render(0)?);
        }
    }
    Ok((out, videos))
}
