//! Without the fetched library, a Procgen id is one clear error that says how to get it (its own
//! test binary: the library is loaded once per process).

#[test]
fn a_missing_library_says_how_to_fetch_it() {
    // SAFETY: the only test of this binary; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("RAT_PROCGEN_DIR", "/nonexistent/procgen") };
    let err = rat_envs::make("procgen:coinrun", 2, 0)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("scripts/fetch-procgen.sh"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
    println!("{err}");
}
