//! Frames of the environments a library draws: MuJoCo's offscreen renderer (through EGL; Mesa's
//! software device on a machine without a GPU) and Procgen's own frames. Without EGL or the
//! libraries the tests say they were skipped; under CI (`CI=true`) that is a failure.

use anyhow::{Result, ensure};
use rat_envs::{Env, Frame};

/// Distinct colours in a frame (a rendered scene has many; a blank one has one).
fn colours(frame: &Frame) -> usize {
    let mut seen: Vec<[u8; 3]> = frame
        .rgb
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// A frame after `steps` steps of `action` from the state seed 3 resets to.
fn frame_after(env: &mut dyn Env, steps: usize, action: f32) -> rat_envs::Result<Frame> {
    rat_envs::testing::frame_after(env, 3, steps, action)
}

#[cfg(feature = "mujoco")]
#[test]
fn mujoco_frames_have_gymnasiums_size_and_follow_the_state() -> Result<()> {
    use rat_envs::mujoco::RENDER_SIZE;
    for id in [
        "Hopper-v4",
        "HalfCheetah-v4",
        "Humanoid-v4",
        "InvertedPendulum-v4",
    ] {
        let mut env = rat_envs::mujoco::make(id)?;
        let first = match frame_after(env.as_mut(), 0, 0.0) {
            Err(e) if e.to_string().contains("cannot render") => {
                // No EGL here: the error names the packages; CI installs them.
                ensure!(e.to_string().contains("libegl"), "unhelpful error: {e}");
                rat_envs::testing::skip(&format!("{id}: {e}"))?;
                return Ok(());
            }
            other => other?,
        };
        let later = frame_after(env.as_mut(), 30, 0.4)?;
        for f in [&first, &later] {
            ensure!(
                (f.width, f.height) == (RENDER_SIZE, RENDER_SIZE),
                "{id}: size"
            );
            ensure!(f.rgb.len() == RENDER_SIZE * RENDER_SIZE * 3, "{id}: bytes");
            ensure!(
                colours(f) > 50,
                "{id}: {} colours, a blank frame",
                colours(f)
            );
        }
        ensure!(first != later, "{id}: the frame did not follow the state");
        // The same state draws the same frame.
        ensure!(
            frame_after(env.as_mut(), 30, 0.4)? == later,
            "{id}: rendering is not a function of the state"
        );
        // Fast frames: the fast size, still a scene.
        env.set_render_detail(rat_envs::render::Detail::Fast);
        let fast = frame_after(env.as_mut(), 30, 0.4)?;
        let side = rat_envs::mujoco::FAST_RENDER_SIZE;
        ensure!((fast.width, fast.height) == (side, side), "{id}: fast size");
        ensure!(colours(&fast) > 50, "{id}: a blank fast frame");
    }
    Ok(())
}

#[cfg(feature = "mujoco")]
#[test]
fn a_mujoco_renderer_moves_between_threads() -> Result<()> {
    let mut env = rat_envs::mujoco::make("Hopper-v4")?;
    let first = match frame_after(env.as_mut(), 5, 0.2) {
        Err(e) if e.to_string().contains("cannot render") => {
            rat_envs::testing::skip(&format!("Hopper-v4: {e}"))?;
            return Ok(());
        }
        other => other?,
    };
    // The GL context is released after each frame, so another thread can draw with it.
    let (mut env, second) = std::thread::spawn(move || -> Result<_> {
        let f = frame_after(env.as_mut(), 5, 0.2)?;
        Ok((env, f))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the rendering thread panicked"))??;
    ensure!(first == second, "another thread drew another frame");
    ensure!(frame_after(env.as_mut(), 5, 0.2)? == first, "and back");
    Ok(())
}

#[test]
fn a_procgen_frame_is_its_observation_scaled_up() -> Result<()> {
    if !rat_envs::procgen::is_fetched() {
        rat_envs::testing::skip("Procgen is not fetched (scripts/fetch-procgen.sh)")?;
        return Ok(());
    }
    let scale = rat_envs::procgen::RENDER_SCALE;
    let side = rat_envs::procgen::FRAME;
    let mut env = rat_envs::make("procgen:starpilot", 2, 5)?;
    let mut buf = env.buffers();
    env.reset(&mut buf.obs)?;
    for t in 0..10 {
        env.step(&[(t % 15) as f32, 4.0], &mut buf)?;
    }
    let dim = side * side * 3;
    for i in 0..2 {
        let frame = env.render(i)?;
        ensure!((frame.width, frame.height) == (side * scale, side * scale));
        ensure!(colours(&frame) > 10, "a blank frame");
        let obs = &buf.obs[i * dim..(i + 1) * dim];
        for y in 0..frame.height {
            for x in 0..frame.width {
                let k = 3 * ((y / scale) * side + x / scale);
                let want = [0, 1, 2].map(|c| (obs[k + c] * 255.0).round() as u8);
                ensure!(frame.pixel(x, y) == want, "env {i} pixel ({x}, {y})");
            }
        }
    }
    ensure!(env.render(2).is_err(), "environment 2 of 2");
    Ok(())
}
