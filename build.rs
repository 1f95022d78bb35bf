//! With the `mujoco` feature, the examples, benches and tests of this package find the fetched
//! MuJoCo library at run time through an rpath (a dependency's rpath does not carry over).

fn main() {
    println!("cargo::rerun-if-env-changed=MUJOCO_DYNAMIC_LINK_DIR");
    if std::env::var_os("CARGO_FEATURE_MUJOCO").is_some()
        && let Some(dir) = std::env::var_os("MUJOCO_DYNAMIC_LINK_DIR")
    {
        println!(
            "cargo::rustc-link-arg=-Wl,-rpath,{}",
            std::path::Path::new(&dir).display()
        );
    }
}
