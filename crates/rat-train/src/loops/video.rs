//! `--video_every K`: every K iterations one deterministic evaluation episode of the current
//! policy, rendered into the run directory (`videos/iter_000123.gif`) and into TensorBoard as an
//! animated image (`eval/video`, next to `eval/return`).
//!
//! A training video is a glance, not a figure, and must not slow training: it plays at 25 frames
//! a second in simulated time (Hopper keeps every fifth frame) and draws at [`Detail::Fast`]
//! (MuJoCo: 240 x 240 without shadows or reflections). For a full recording of a checkpoint
//! use `evaluate --video`.

use std::path::{Path, PathBuf};

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use rat_envs::render::Detail;

use super::evaluate::{Recording, play};
use crate::error::{Result, io};
use crate::io::video::{delay_cs, gif_bytes, with_caption};
use crate::nets::{ActionMode, RolloutModel};

/// Playback rate, frames a second.
const FPS: u32 = 25;

/// One recorded evaluation episode.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Where the GIF was written.
    pub path: PathBuf,
    /// (width, height) of its frames.
    pub size: (usize, usize),
    /// The GIF.
    pub gif: Vec<u8>,
    /// The episode's return.
    pub ret: f64,
    /// Wall seconds spent playing, rendering and encoding it.
    pub seconds: f64,
}

/// Its own environment (seeded apart from the training ones) and the schedule.
pub struct VideoRecorder {
    env: rat_envs::VecEnv,
    rng: ChaCha8Rng,
    every: usize,
    dir: PathBuf,
}

impl VideoRecorder {
    /// A recorder every `every` iterations (`None` for 0), writing under `run_dir/videos`; an
    /// environment that cannot render is refused here, before training starts.
    pub fn new(env_name: &str, seed: u64, every: usize, run_dir: &Path) -> Result<Option<Self>> {
        if every == 0 {
            return Ok(None);
        }
        let env = rat_envs::make(env_name, 1, seed.wrapping_add(1_000_003))?;
        Self::with_env(env, seed, every, run_dir)
    }

    /// As [`new`](Self::new), on `env` (its environment 0 records).
    pub fn with_env(
        mut env: rat_envs::VecEnv,
        seed: u64,
        every: usize,
        run_dir: &Path,
    ) -> Result<Option<Self>> {
        if every == 0 {
            return Ok(None);
        }
        env.set_render_detail(Detail::Fast);
        let mut buf = env.buffers();
        env.reset(&mut buf.obs)?;
        env.render(0)
            .map_err(|e| crate::Error::Invalid(format!("--video_every {every}: {e}")))?;
        let dir = run_dir.join("videos");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Some(Self {
            env,
            rng: ChaCha8Rng::seed_from_u64(seed),
            every,
            dir,
        }))
    }

    /// Whether iteration `it` (from 0) records.
    pub fn due(&self, it: usize) -> bool {
        (it + 1).is_multiple_of(self.every)
    }

    /// Plays and writes one episode of `agent` after iteration `it`.
    pub fn record(&mut self, agent: &dyn RolloutModel, device: &Device, it: usize) -> Result<Clip> {
        let start = std::time::Instant::now();
        let (eval, videos) = play(
            agent,
            &mut self.env,
            1,
            Recording::at_fps(1, f64::from(FPS)),
            ActionMode::Mode,
            device,
            &mut self.rng,
        )?;
        let ret = eval.returns.first().copied().unwrap_or(f64::NAN);
        let caption = format!("{} return {ret:.1}", it + 1);
        let frames: Vec<_> = videos
            .iter()
            .flatten()
            .map(|f| with_caption(f, &caption))
            .collect();
        let gif = gif_bytes(&frames, delay_cs(FPS))?;
        let path = self.dir.join(format!("iter_{:06}.gif", it + 1));
        std::fs::write(&path, &gif).map_err(io(&path))?;
        let size = frames.first().map_or((0, 0), |f| (f.width, f.height));
        Ok(Clip {
            path,
            size,
            gif,
            ret,
            seconds: start.elapsed().as_secs_f64(),
        })
    }
}
