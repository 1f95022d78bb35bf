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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_an_error_under_ci_and_a_pass_elsewhere() {
        assert_eq!(skip_if(true, "no venv"), Err(SkippedInCi("no venv".into())));
        assert_eq!(skip_if(false, "no venv"), Ok(()));
    }
}
