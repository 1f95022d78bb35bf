//! Rendering throughput per environment family: frames per second of `Env::render` (classic
//! control drawn by tiny-skia, MinAtar's grid), and of turning frames into a captioned GIF.
//!
//! `cargo bench --bench render` prints one table.

use std::time::Instant;

use rat_envs::Env;
use rat_train::io::video::{gif_bytes, with_caption};

fn main() -> anyhow::Result<()> {
    let n = 300;
    println!("\nRendering, {n} frames each, one thread");
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
        let mut env: Box<dyn Env> = rat_envs::make_env(id)?;
        let mut obs = vec![0.0; env.observation_space().flat_dim()];
        env.reset(Some(0), &mut obs)?;
        let action = vec![0.0f32; env.action_space().flat_dim()];
        let mut frames = Vec::with_capacity(n);
        let t0 = Instant::now();
        for _ in 0..n {
            if env.step(&action, &mut obs)?.done() {
                env.reset(None, &mut obs)?;
            }
            frames.push(env.render()?);
        }
        // The stepping is a small part: classic control and MinAtar step in microseconds.
        let render = n as f64 / t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let captioned: Vec<_> = frames
            .iter()
            .map(|f| with_caption(f, "return 1.0"))
            .collect();
        std::hint::black_box(gif_bytes(&captioned, 4)?);
        let gif = n as f64 / t1.elapsed().as_secs_f64();
        let f = &frames[0];
        println!(
            "| {id} | {} x {} | {render:.0} | {gif:.0} |",
            f.width, f.height
        );
    }
    Ok(())
}
