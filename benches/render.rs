//! Rendering throughput per environment family: frames per second of `Env::render` (classic
//! control drawn by tiny-skia, MinAtar's grid, MuJoCo offscreen through EGL at Gymnasium's
//! 480 x 480 with every effect, and at `Detail::Fast` as `--video_every` records them: 240 x 240
//! without shadows or reflections; Procgen's own frames), and of turning frames into a captioned
//! GIF.
//!
//! `cargo bench --bench render [--features mujoco]` prints one table.

use std::time::Instant;

use rat_envs::render::Detail;
use rat_envs::{Frame, VecEnv};
use rat_train::io::video::{gif_bytes, with_caption};

/// Steps environment 0 of `env` with action 0 and renders after each step.
fn render_frames(env: &mut VecEnv, n: usize) -> anyhow::Result<(Vec<Frame>, f64)> {
    let mut buf = env.buffers();
    env.reset(&mut buf.obs)?;
    let action = vec![0.0f32; env.action_space().flat_dim()];
    // The first frame opens MuJoCo's GL context: not counted.
    env.render(0)?;
    let mut frames = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        env.step(&action, &mut buf)?;
        frames.push(env.render(0)?);
    }
    Ok((frames, n as f64 / t0.elapsed().as_secs_f64()))
}

fn row(label: &str, frames: &[Frame], render: f64) -> anyhow::Result<()> {
    let t1 = Instant::now();
    let captioned: Vec<_> = frames
        .iter()
        .map(|f| with_caption(f, "return 1.0"))
        .collect();
    std::hint::black_box(gif_bytes(&captioned, 4)?);
    let gif = frames.len() as f64 / t1.elapsed().as_secs_f64();
    let f = &frames[0];
    println!(
        "| {label} | {} x {} | {render:.1} | {gif:.0} |",
        f.width, f.height
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    println!("\nRendering: frames per second, one environment");
    println!("| environment | frame (px) | render frames/s | captioned GIF frames/s |");
    println!("|---|---|---|---|");
    for id in [
        "CartPole-v1",
        "Pendulum-v1",
        "Acrobot-v1",
        "MountainCar-v0",
        "minatar:breakout",
        "minatar:seaquest",
    ] {
        let mut env = rat_envs::make(id, 1, 0)?;
        let (frames, fps) = render_frames(&mut env, 300)?;
        row(id, &frames, fps)?;
    }
    if cfg!(feature = "mujoco") {
        for id in ["Hopper-v4", "Humanoid-v4"] {
            let mut env = rat_envs::make(id, 1, 0)?;
            let (frames, fps) = render_frames(&mut env, 50)?;
            row(id, &frames, fps)?;
            env.set_render_detail(Detail::Fast);
            let (frames, fps) = render_frames(&mut env, 100)?;
            row(&format!("{id}, fast (--video_every)"), &frames, fps)?;
        }
    }
    if rat_envs::procgen::is_fetched() {
        let mut env = rat_envs::make("procgen:starpilot", 1, 0)?;
        let (frames, fps) = render_frames(&mut env, 300)?;
        row("procgen:starpilot", &frames, fps)?;
    }
    Ok(())
}
