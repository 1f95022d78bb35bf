//! Build script of `rat-envs`: with the `mujoco` feature, makes the fetched MuJoCo 3.17.0 library
//! found at link time and at run time (rpath), and tells the crate where the model files are.
//! Without the feature it does nothing.
//!
//! The cache directory is `RAT_MUJOCO_DIR`, else `MUJOCO_DYNAMIC_LINK_DIR` (what `mujoco-rs`'s own
//! build script links from), else `<workspace>/.mujoco`; `scripts/fetch-mujoco.sh` fills it.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=RAT_MUJOCO_DIR");
    println!("cargo::rerun-if-env-changed=MUJOCO_DYNAMIC_LINK_DIR");
    if env::var_os("CARGO_FEATURE_MUJOCO").is_none() {
        return;
    }
    let dir = cache_dir();
    let lib = dir.join("libmujoco.so");
    println!("cargo::rerun-if-changed={}", lib.display());
    if !lib.is_file() {
        println!(
            "cargo::error=MuJoCo 3.17.0 not found at {}: run scripts/fetch-mujoco.sh (and build with MUJOCO_DYNAMIC_LINK_DIR={} set)",
            lib.display(),
            dir.display()
        );
        return;
    }
    match env::var_os("MUJOCO_DYNAMIC_LINK_DIR").map(PathBuf::from) {
        // mujoco-rs links from MUJOCO_DYNAMIC_LINK_DIR, read by its own build script, which
        // this one cannot set: the workspace's `.cargo/config.toml` does (`[env]`).
        None => println!(
            "cargo::error=MUJOCO_DYNAMIC_LINK_DIR is not set: set it to {} (the workspace's .cargo/config.toml [env] does)",
            dir.display()
        ),
        Some(d) if canonical(&d) != canonical(&dir) => println!(
            "cargo::warning=MUJOCO_DYNAMIC_LINK_DIR={} differs from the MuJoCo cache {}",
            d.display(),
            dir.display()
        ),
        Some(_) => {}
    }
    println!("cargo::rustc-link-search=native={}", dir.display());
    // Tests, examples and benches of this crate find the library without LD_LIBRARY_PATH.
    println!("cargo::rustc-link-arg=-Wl,-rpath,{}", dir.display());
    // The default place of the model files at run time (RAT_MUJOCO_DIR overrides it).
    println!("cargo::rustc-env=RAT_MUJOCO_DEFAULT_DIR={}", dir.display());
}

/// The MuJoCo cache directory, absolute.
fn cache_dir() -> PathBuf {
    for var in ["RAT_MUJOCO_DIR", "MUJOCO_DYNAMIC_LINK_DIR"] {
        if let Some(d) = env::var_os(var).filter(|d| !d.is_empty()) {
            return absolute(PathBuf::from(d));
        }
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    // crates/rat-envs -> workspace root
    let root = manifest
        .parent()
        .and_then(Path::parent)
        .map_or(manifest.clone(), Path::to_path_buf);
    root.join(".mujoco")
}

fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        env::current_dir().map(|c| c.join(&p)).unwrap_or(p)
    }
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}
