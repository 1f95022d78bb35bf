//! Runs a `train_detach` or `train_shared` checkpoint deterministically (mean action, squashed
//! as in training) for n episodes and prints the mean ± std return; `--video out.gif` (or `.mp4`
//! with `ffmpeg` on the PATH) records the first episode(s), captioned with their returns, at
//! the speed of simulated time (`--fps` frames a second; faster environments skip frames), every
//! pixel drawn (MuJoCo: 480 x 480 with shadows; `--video_scale 2` halves it).
//!
//! ```text
//! cargo run --release --example evaluate -- logs/<run>/model.safetensors [--episodes 10] [--seed 0] [--stochastic]
//! cargo run --release --example evaluate -- logs/<run>/model.safetensors --video agent.gif [--video_episodes 1] [--fps 25] [--video_scale 1]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use rat_train::loops::evaluate::Recording;
use rat_train::nets::ActionMode;

const USAGE: &str = "usage: evaluate <model.safetensors> [--episodes n (10)] [--seed s (0)] \
                     [--stochastic] [--device k (-1)] [--video out.gif|out.mp4] \
                     [--video_episodes n (1)] [--fps f (25)] [--video_scale k (1)]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> rat_train::Result<()> {
    use rat_train::cli::{Item, integer, items};
    let (mut path, mut episodes, mut seed, mut mode, mut device) =
        (None, 10usize, 0u64, ActionMode::Mode, -1i64);
    let (mut video, mut video_episodes, mut fps, mut scale) = (None, 1usize, 25u32, 1usize);
    let bad = |m: String| rat_train::Error::Invalid(m);
    for item in items(std::env::args().skip(1), &["stochastic"])? {
        match item {
            Item::Help => {
                println!("{USAGE}");
                return Ok(());
            }
            Item::Switch(_) => mode = ActionMode::Sample,
            Item::Flag(k, v) => match k.as_str() {
                "episodes" => episodes = integer(&k, &v)?,
                "seed" => seed = integer(&k, &v)?,
                "device" => device = integer(&k, &v)?,
                "video" => video = Some(PathBuf::from(v)),
                "video_episodes" => video_episodes = integer(&k, &v)?,
                "fps" => fps = integer(&k, &v)?,
                "video_scale" => scale = integer(&k, &v)?,
                _ => return Err(bad(format!("unknown flag --{k}"))),
            },
            Item::Positional(p) if path.is_none() => path = Some(PathBuf::from(p)),
            Item::Positional(p) => return Err(bad(format!("unexpected argument '{p}'"))),
        }
    }
    let path = path.ok_or_else(|| bad("no checkpoint given".into()))?;
    let device = rat_train::cli::device(device)?;
    if video.is_some() && (video_episodes == 0 || video_episodes > episodes || fps == 0) {
        return Err(bad(format!(
            "--video_episodes must be in 1..={episodes} (the episodes run) and --fps ≥ 1, got {video_episodes} and {fps}"
        )));
    }
    if scale == 0 {
        return Err(bad("--video_scale must be at least 1, got 0".into()));
    }
    let record = match video {
        Some(_) => Recording::at_fps(video_episodes, f64::from(fps)),
        None => Recording::NONE,
    };
    let (eval, recorded) = rat_train::loops::evaluate::evaluate_recorded(
        &path, episodes, seed, mode, &device, record,
    )?;
    if let Some(out) = &video {
        use rat_train::io::video::{downsample, with_caption, write_video};
        let frames: Vec<_> = recorded
            .iter()
            .zip(&eval.returns)
            .flat_map(|(frames, ret)| {
                let caption = format!("return {ret:.1}");
                frames
                    .iter()
                    .map(move |f| with_caption(&downsample(f, scale), &caption))
            })
            .collect();
        write_video(out, &frames, fps)?;
        println!("video: {} ({} frames)", out.display(), frames.len());
    }
    let (mean, std) = eval.mean_std();
    let mean_len = eval.lengths.iter().sum::<usize>() as f64 / eval.lengths.len() as f64;
    println!("{episodes} episodes: return {mean:.2} ± {std:.2} (mean length {mean_len:.1})");
    Ok(())
}
