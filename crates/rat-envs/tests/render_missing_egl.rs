//! A machine without a usable EGL gets one error naming what to install, not a crash. Its own
//! test binary: it points libglvnd (Debian's EGL loader) at no vendor before EGL is first loaded,
//! which is process-wide.
#![cfg(feature = "mujoco")]

use anyhow::{Result, ensure};

#[test]
fn rendering_without_egl_is_one_clear_error() -> Result<()> {
    // SAFETY: set before any thread of this test binary reads the environment or loads EGL.
    unsafe {
        std::env::set_var(
            "__EGL_VENDOR_LIBRARY_FILENAMES",
            "/nonexistent/egl_vendor.json",
        )
    };
    let mut env = rat_envs::mujoco::make("Hopper-v4")?;
    let mut obs = vec![0.0; env.observation_space().flat_dim()];
    env.reset(Some(0), &mut obs)?;
    let err = env.render().expect_err("no EGL vendor");
    let msg = err.to_string();
    ensure!(
        msg.contains("Hopper-v4 cannot render") && msg.contains("apt install libegl1"),
        "{msg}"
    );
    // The environment still steps.
    env.step(&[0.0; 3], &mut obs)?;
    Ok(())
}
