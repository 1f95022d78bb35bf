//! Support for the workspace's test suites: a test whose inputs are missing (the parity venv,
//! Procgen's library) says it was skipped and passes on a developer's machine, but fails under
//! CI (`CI=true`), where every test must really run.

/// Whether this is a CI run (`CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
}

/// A test that could not run under CI, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CI=true, and this test cannot run: {0}")]
pub struct SkippedInCi(pub String);

/// Reports a test that cannot run for `reason`: prints `skipped: {reason}` and returns `Ok`, or,
/// under CI, returns the error instead.
pub fn skip(reason: &str) -> Result<(), SkippedInCi> {
    skip_if(in_ci(), reason)
}

fn skip_if(ci: bool, reason: &str) -> Result<(), SkippedInCi> {
    if ci {
        return Err(SkippedInCi(reason.to_string()));
    }
    println!("skipped: {reason}");
    Ok(())
}

/// Resets `env` with `seed`, takes `steps` steps with `action` in every dimension, and renders:
/// a frame of a known state, for the rendering tests.
pub fn frame_after(
    env: &mut dyn crate::Env,
    seed: u64,
    steps: usize,
    action: f32,
) -> crate::Result<crate::Frame> {
    let mut obs = vec![0.0; env.observation_space().flat_dim()];
    env.reset(Some(seed), &mut obs)?;
    let a = vec![action; env.action_space().flat_dim()];
    for _ in 0..steps {
        env.step(&a, &mut obs)?;
    }
    env.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_an_error_under_ci_and_a_pass_elsewhere() {
        assert_eq!(skip_if(true, "no venv"), Err(SkippedInCi("no venv".into())));
        assert_eq!(skip_if(false, "no venv"), Ok(()));
    }
}
