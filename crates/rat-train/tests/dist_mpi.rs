//! One run on two MPI ranks (`--dist mpi`, replicated update) computes what one process with the
//! same `num_envs` computes: for every rule on Pendulum-v1 and CartPole-v1 (and the shared
//! network), and for RAT's sharded `dist_mode: exact`, the networks and optimiser states after
//! two iterations agree with one process's to 1e-5 (f32), the curves too; the ranks agree bit for bit after every iteration (the run
//! checks it and fails otherwise, which a rank-dependent tensor shows); a two-rank checkpoint
//! resumes on one process and continues the uninterrupted one-process run.
//!
//! The test trains the one-process runs, then starts itself under `mpirun -np 2`.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};
use rat_core::dist::{Communicator, Mpi, Single};
use rat_train::config::Config;
use rat_train::loops::ranks::Ranks;
use rat_train::loops::{RunOptions, detach, shared};

/// (config, environment) of every case; `_shared` configs run `train_shared`.
const CASES: &[(&str, &str)] = &[
    ("rat_mlp.yaml", "Pendulum-v1"),
    ("rat_mlp.yaml", "CartPole-v1"),
    ("fvp_mlp.yaml", "Pendulum-v1"),
    ("fvp_mlp.yaml", "CartPole-v1"),
    ("diag_mlp.yaml", "Pendulum-v1"),
    ("diag_mlp.yaml", "CartPole-v1"),
    ("kfac_mlp.yaml", "Pendulum-v1"),
    ("kfac_mlp.yaml", "CartPole-v1"),
    ("ppo_mlp.yaml", "Pendulum-v1"),
    ("ppo_mlp.yaml", "CartPole-v1"),
    ("ekfac_mlp.yaml", "Pendulum-v1"),
    ("pg_mlp.yaml", "CartPole-v1"),
    ("rat_mlp_shared.yaml", "Pendulum-v1"),
    ("rat_mlp_shared.yaml", "CartPole-v1"),
    ("diag_mlp_shared.yaml", "CartPole-v1"),
    ("kfac_mlp_shared.yaml", "Pendulum-v1"),
];

type ExactCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// `dist_mode: exact` (the rows of every actor minibatch sharded over the ranks; RAT gathers
/// the layer factors, the others sum gradients, Fisher-vector products, column sums and K-FAC's
/// factor statistics):
/// (case name, config, environment, extra settings); the one-process run has the same settings
/// (`dist_mode` changes nothing on one process).
const EXACT_CASES: &[ExactCase] = &[
    ("exact_rat_pendulum", "rat_mlp.yaml", "Pendulum-v1", &[]),
    ("exact_rat_cartpole", "rat_mlp.yaml", "CartPole-v1", &[]),
    (
        "exact_rat_cartpole_controls",
        "rat_mlp.yaml",
        "CartPole-v1",
        &[
            ("ent_coef", "0.01"),
            ("max_kl", "0.00001"),
            ("target_kl", "0.05"),
            ("damping_mode", "relative"),
            ("cg_damping", "0.01"),
            ("step_diagnostics", "True"),
            ("solve_diagnostics", "True"),
        ],
    ),
    ("exact_fvp_pendulum", "fvp_mlp.yaml", "Pendulum-v1", &[]),
    ("exact_fvp_cartpole", "fvp_mlp.yaml", "CartPole-v1", &[]),
    (
        "exact_fvp_cartpole_damped",
        "fvp_mlp.yaml",
        "CartPole-v1",
        &[("cg_damping", "10.0")],
    ),
    ("exact_diag_pendulum", "diag_mlp.yaml", "Pendulum-v1", &[]),
    (
        "exact_diag_cartpole",
        "diag_mlp.yaml",
        "CartPole-v1",
        &[("ent_coef", "0.01")],
    ),
    ("exact_ppo_pendulum", "ppo_mlp.yaml", "Pendulum-v1", &[]),
    (
        "exact_ppo_cartpole",
        "ppo_mlp.yaml",
        "CartPole-v1",
        &[("ent_coef", "0.01")],
    ),
    (
        "exact_pg_cartpole",
        "pg_mlp.yaml",
        "CartPole-v1",
        &[("max_kl", "0.0001")],
    ),
    ("exact_kfac_pendulum", "kfac_mlp.yaml", "Pendulum-v1", &[]),
    ("exact_kfac_cartpole", "kfac_mlp.yaml", "CartPole-v1", &[]),
    ("exact_ekfac_pendulum", "ekfac_mlp.yaml", "Pendulum-v1", &[]),
    (
        "exact_rat_shared_pendulum",
        "rat_mlp_shared.yaml",
        "Pendulum-v1",
        &[],
    ),
    (
        "exact_rat_shared_cartpole_dropout",
        "rat_mlp_shared.yaml",
        "CartPole-v1",
        &[("dropout", "0.1")],
    ),
    (
        "exact_rat_shared_joint_exact",
        "rat_mlp_shared.yaml",
        "Pendulum-v1",
        &[("joint_mode", "exact")],
    ),
    (
        "exact_diag_shared_cartpole",
        "diag_mlp_shared.yaml",
        "CartPole-v1",
        &[],
    ),
    (
        "exact_kfac_shared_pendulum",
        "kfac_mlp_shared.yaml",
        "Pendulum-v1",
        &[],
    ),
];

fn exact_config(name: &str, env: &str, extra: &[(&str, &str)]) -> anyhow::Result<Config> {
    let mut c = config(name, env, 2)?;
    c.set("dist_mode", "exact")?;
    for (k, v) in extra {
        c.set(k, v)?;
    }
    Ok(c)
}

/// 4 environments x 32 steps (N = 128), `iterations` iterations, small networks.
fn config(name: &str, env: &str, iterations: usize) -> anyhow::Result<Config> {
    let mut c = Config::load(name)?;
    c.set("env_name", env)?;
    c.set("num_envs", "4")?;
    c.set("nsteps", "32")?;
    c.set("log_interval", "1")?;
    c.set(
        "timesteps_per_proc",
        &(128 * (iterations - 2) + 64).to_string(),
    )?;
    if name.contains("shared") {
        c.set("minibatches", "2")?;
        c.set("hidden_size", "16")?;
    } else {
        c.set("pi_minibatches", "2")?;
        c.set("v_minibatches", "2")?;
        c.set("a_hidden_size", "16")?;
        c.set("c_hidden_size", "16")?;
    }
    Ok(c)
}

fn train(
    comm: Arc<dyn Communicator>,
    c: &Config,
    name: &str,
    dir: PathBuf,
    resume: Option<PathBuf>,
) -> anyhow::Result<()> {
    let opts = RunOptions {
        seed: Some(7),
        run_dir: resume.is_none().then_some(dir),
        resume,
        verbose: false,
        checkpoint_every: 0,
        comm,
        ..RunOptions::default()
    };
    if name.contains("shared") {
        shared::run(c, &opts)?;
    } else {
        detach::run(c, &opts)?;
    }
    Ok(())
}

fn case_dir(root: &Path, (name, env): (&str, &str)) -> PathBuf {
    root.join(format!("{}_{env}", name.trim_end_matches(".yaml")))
}

/// A rank of the two-rank job: every case, the 2-iteration run to resume, and the check.
fn rank(comm: Arc<dyn Communicator>, dir: &Path) -> anyhow::Result<()> {
    for &(name, env) in CASES {
        let c = config(name, env, 2)?;
        train(
            comm.clone(),
            &c,
            name,
            case_dir(&dir.join("two"), (name, env)),
            None,
        )?;
    }
    for &(case, name, env, extra) in EXACT_CASES {
        let c = exact_config(name, env, extra)?;
        train(comm.clone(), &c, name, dir.join("two").join(case), None)?;
    }
    let c = config("rat_mlp.yaml", "CartPole-v1", 2)?;
    train(
        comm.clone(),
        &c,
        "rat_mlp.yaml",
        dir.join("two_then_one"),
        None,
    )?;
    let mut block = c.clone();
    block.set("dist_mode", "block")?;
    train(
        comm.clone(),
        &block,
        "rat_mlp.yaml",
        dir.join("two_block"),
        None,
    )?;
    // Block mode learns CartPole in the single-process learning test's budget
    // (tests/learn_cartpole.rs).
    let mut learn = common::cartpole_learning_config()?;
    learn.set("dist_mode", "block")?;
    let opts = RunOptions {
        seed: Some(2),
        run_dir: Some(dir.join("learn_block")),
        verbose: false,
        checkpoint_every: 0,
        comm: comm.clone(),
        ..RunOptions::default()
    };
    let out = detach::run(&learn, &opts)?;
    let last20 = &out.episode_returns[out.episode_returns.len().saturating_sub(20)..];
    let mean20 = last20.iter().sum::<f64>() / last20.len() as f64;
    println!("block mode, 2 ranks: last 20 episodes {mean20:.1}");
    assert!(
        mean20 >= 450.0,
        "block mode did not solve CartPole: {mean20}"
    );
    // Each rank offers a tensor of its own rank: the ranks must notice, both of them.
    let ranks = Ranks::new(comm.clone(), 2)?;
    let r = comm.rank() as f32;
    let differ = ranks.agree(5, || {
        Ok(vec![("x".into(), Tensor::new(&[r], &Device::Cpu)?)])
    });
    let text = differ
        .expect_err("rank-dependent tensors must fail")
        .to_string();
    assert!(text.contains("after iteration 5, rank 1"), "{text}");
    ranks.agree(5, || {
        Ok(vec![("x".into(), Tensor::new(&[1f32], &Device::Cpu)?)])
    })?;
    Ok(())
}

/// Every tensor but the clock's, by name.
fn tensors(run: &Path) -> anyhow::Result<Vec<(String, Vec<f64>)>> {
    let t = rat_train::io::checkpoint::load(&run.join("model.safetensors"))?;
    let mut out: Vec<(String, Vec<f64>)> = t
        .iter()
        .filter(|(k, _)| !k.starts_with("train.counters") && !k.starts_with("train.times"))
        .map(|(k, v)| {
            let v = v.to_dtype(candle_core::DType::F64)?.flatten_all()?;
            Ok((k.clone(), v.to_vec1::<f64>()?))
        })
        .collect::<anyhow::Result<_>>()?;
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The largest |a − b| / max(‖a‖∞, 1e-3) over every tensor of two runs whose name starts with
/// `prefix` (same names required).
fn relative_difference(a: &Path, b: &Path, prefix: &str) -> anyhow::Result<f64> {
    largest_difference(a, b, |k| k.starts_with(prefix))
}

/// [`relative_difference`] over the tensors whose name `keep` accepts.
fn largest_difference(a: &Path, b: &Path, keep: impl Fn(&str) -> bool) -> anyhow::Result<f64> {
    let only = |t: Vec<(String, Vec<f64>)>| -> Vec<(String, Vec<f64>)> {
        t.into_iter().filter(|(k, _)| keep(k)).collect()
    };
    let (ta, tb) = (only(tensors(a)?), only(tensors(b)?));
    let names = |t: &[(String, Vec<f64>)]| t.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ta), names(&tb), "{}", a.display());
    let mut worst = 0.0f64;
    for ((name, x), (_, y)) in ta.iter().zip(&tb) {
        assert_eq!(x.len(), y.len(), "{name}");
        let scale = x.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let d = x
            .iter()
            .zip(y)
            .fold(0.0f64, |m, (p, q)| m.max((p - q).abs()));
        worst = worst.max(d / scale);
    }
    Ok(worst)
}

/// progress.csv's values but the clock's, row by row.
fn curve(run: &Path) -> anyhow::Result<Vec<Vec<f64>>> {
    let rows = common::clockless_rows(&run.join("progress.csv"))?;
    let number = |v: &String| v.parse::<f64>().unwrap_or(f64::NAN);
    Ok(rows
        .iter()
        .map(|r| r.iter().map(number).collect())
        .collect())
}

fn close_curves(a: &[Vec<f64>], b: &[Vec<f64>], what: &str) {
    close_curves_to(a, b, what, 1e-5)
}

fn close_curves_to(a: &[Vec<f64>], b: &[Vec<f64>], what: &str, tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: rows");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        for (p, q) in x.iter().zip(y) {
            let same = (p.is_nan() && q.is_nan()) || (p - q).abs() <= tol * p.abs().max(1.0);
            assert!(same, "{what}, row {i}: {x:?} vs {y:?}");
        }
    }
}

#[test]
fn two_ranks_compute_what_one_process_computes() -> anyhow::Result<()> {
    let dir: PathBuf = match std::env::var_os("RAT_DIST_DIR") {
        Some(d) => d.into(),
        None => std::env::temp_dir().join(format!("rat-dist-{}", std::process::id())),
    };
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() {
        let comm: Arc<dyn Communicator> = Arc::new(Mpi::init()?);
        assert_eq!(comm.size(), 2);
        return rank(comm, &dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for &(name, env) in CASES {
        let c = config(name, env, 2)?;
        train(
            Arc::new(Single),
            &c,
            name,
            case_dir(&dir.join("one"), (name, env)),
            None,
        )?;
    }
    for &(case, name, env, extra) in EXACT_CASES {
        let c = exact_config(name, env, extra)?;
        train(Arc::new(Single), &c, name, dir.join("one").join(case), None)?;
    }
    let c3 = config("rat_mlp.yaml", "CartPole-v1", 3)?;
    train(
        Arc::new(Single),
        &c3,
        "rat_mlp.yaml",
        dir.join("one_3"),
        None,
    )?;
    let ranks_said = common::on_two_ranks(
        "two_ranks_compute_what_one_process_computes",
        "RAT_DIST_DIR",
        &dir,
    )?;
    ranks_said
        .lines()
        .filter(|l| l.starts_with("block mode"))
        .for_each(|l| println!("{l}"));
    for &case in CASES {
        let (one, two) = (
            case_dir(&dir.join("one"), case),
            case_dir(&dir.join("two"), case),
        );
        let d = relative_difference(&one, &two, "")?;
        println!("{case:?}: largest relative difference {d:.2e}");
        assert!(d <= 1e-5, "{case:?}: {d:e}");
        close_curves(&curve(&one)?, &curve(&two)?, &format!("{case:?}"));
        // Rank 0 alone wrote: no second run directory next to the case's.
        assert!(!two.with_file_name(format!("{}-1", two.display())).exists());
    }
    // dist_mode exact: each rank passed only its rows through the actor, and the steps are one
    // process's up to float summation order (the ranks agreed bit for bit after every iteration,
    // or the run would have failed).
    // The networks agree to 1e-5, and so does every optimiser state but two: FVP's SGD buffer
    // is the last CG solution of (F + λI) d = g, which amplifies the ranks' float summation
    // order by the system's conditioning (1.3e-4 at λ = 0.1; 2.9e-7 at λ = 10, the `_damped`
    // case, which is held to 1e-5 like the others), and the shared network's `joint_mode:
    // exact` buffer (g − Hᵀy)/λ is a difference of nearly equal terms divided by λ (3.5e-5). EK-FAC (not among the rules) is
    // held to 1e-3: its scalings live in the eigenbasis of factors that start as the identity,
    // and the eigenvectors of a nearly scalar matrix turn with the last bits of its entries
    // (K-FAC's preconditioner Q D Qᵀ does not depend on the basis, and agrees to 1e-7).
    let mut worst = Vec::new();
    for &(case, ..) in EXACT_CASES {
        let (one, two) = (dir.join("one").join(case), dir.join("two").join(case));
        // Every network's parameters and statistics: all but the optimiser states.
        let nets = largest_difference(&one, &two, |k| !k.starts_with("optim."))?;
        let all = relative_difference(&one, &two, "")?;
        println!("{case}: largest relative difference {nets:.2e} (networks), {all:.2e} (all)");
        worst.push((case, nets, all));
    }
    for &(case, nets, all) in &worst {
        // fvp's CG solution, and the shared network's exact mode (g − Hᵀy)/λ, cancel.
        let cg = (case.starts_with("exact_fvp") && !case.ends_with("_damped"))
            || case.ends_with("_joint_exact");
        let eigenbasis = case.starts_with("exact_ekfac");
        let (nets_bound, bound) = match (cg, eigenbasis) {
            (_, true) => (1e-3, 1e-3),
            (true, _) => (1e-5, 1e-3),
            _ => (1e-5, 1e-5),
        };
        assert!(
            nets <= nets_bound && all <= bound,
            "{case} (all: {worst:?})"
        );
        let (one, two) = (dir.join("one").join(case), dir.join("two").join(case));
        close_curves_to(&curve(&one)?, &curve(&two)?, case, nets_bound);
    }
    // The two-rank checkpoint resumes on one process with a larger budget and continues the
    // uninterrupted one-process run.
    let resumed = dir.join("two_then_one");
    let ckpt = resumed.join("model.safetensors");
    train(
        Arc::new(Single),
        &c3,
        "rat_mlp.yaml",
        resumed.clone(),
        Some(ckpt),
    )?;
    close_curves(&curve(&dir.join("one_3"))?, &curve(&resumed)?, "resumed");
    assert!(relative_difference(&dir.join("one_3"), &resumed, "")? <= 1e-5);
    // Block mode ran (its ranks agreed after every iteration, or the run would have failed) and
    // took other steps than the global solve.
    let global = case_dir(&dir.join("one"), ("rat_mlp.yaml", "CartPole-v1"));
    let d = relative_difference(&global, &dir.join("two_block"), "actor.")?;
    assert!(d > 1e-4, "block mode took the global solve's steps ({d:e})");
    let csv = std::fs::read_to_string(dir.join("learn_block").join("progress.csv"))?;
    assert!(csv.lines().count() > 2, "{csv}");
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn misuses_are_refused_with_the_key() -> anyhow::Result<()> {
    let mut c = config("ppo_mlp.yaml", "CartPole-v1", 2)?;
    c.set("dist_mode", "block")?;
    let text = c
        .validate(rat_train::config::Trainer::Detach)
        .unwrap_err()
        .to_string();
    assert!(text.contains("dist_mode = block"), "{text}");
    let mut c = config("kfac_mlp.yaml", "CartPole-v1", 2)?;
    c.set("dist_mode", "exact")?;
    c.set("kfac_stats", "sampled")?;
    let text = c
        .validate(rat_train::config::Trainer::Detach)
        .unwrap_err()
        .to_string();
    assert!(text.contains("dist_mode = exact"), "{text}");
    let mut c = config("rat_mlp_shared.yaml", "CartPole-v1", 2)?;
    c.set("dist_mode", "block")?;
    let text = c
        .validate(rat_train::config::Trainer::Shared)
        .unwrap_err()
        .to_string();
    assert!(text.contains("dist_mode = block"), "{text}");
    // Two ranks, one environment: the error names the key and the count (a fake two-rank
    // communicator is enough; nothing is exchanged before the check).
    #[derive(Debug)]
    struct Two;
    impl Communicator for Two {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            2
        }
        fn name(&self) -> &'static str {
            "two"
        }
        fn all_reduce_sum_f64(&self, _: &mut [f64]) -> rat_core::Result<()> {
            Ok(())
        }
        fn all_reduce_sum_f32(&self, _: &mut [f32]) -> rat_core::Result<()> {
            Ok(())
        }
        fn all_gather_v_f64(&self, m: &[f64]) -> rat_core::Result<(Vec<f64>, Vec<usize>)> {
            Ok((m.to_vec(), vec![m.len()]))
        }
        fn all_gather_v_f32(&self, m: &[f32]) -> rat_core::Result<(Vec<f32>, Vec<usize>)> {
            Ok((m.to_vec(), vec![m.len()]))
        }
        fn all_gather_v_bytes(&self, m: &[u8]) -> rat_core::Result<(Vec<u8>, Vec<usize>)> {
            Ok((m.to_vec(), vec![m.len()]))
        }
        fn broadcast_bytes(&self, _: usize, _: &mut Vec<u8>) -> rat_core::Result<()> {
            Ok(())
        }
        fn abort(&self, code: i32) -> ! {
            std::process::exit(code)
        }
    }
    let text = Ranks::new(Arc::new(Two), 1).unwrap_err().to_string();
    assert!(text.contains("num_envs 1 on 2 ranks"), "{text}");
    Ok(())
}
