//! A sweep on two MPI ranks (`suite --dist mpi`): 2 seeds x 2 rules handed to the ranks round
//! robin write the same curves and the same summary as the four runs one by one. The test
//! trains the runs one by one, then starts itself under `mpirun -np 2` for the sweep.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};

use rat_core::dist::{Communicator, Mpi, Single};
use rat_train::suite::driver::{self, Context};
use rat_train::suite::runs::{Curve, Settings};
use rat_train::suite::{Job, Suite};

/// 2 seeds x {rat, ppo} on CartPole, 4 iterations of 2 environments x 32 steps.
const SUITE: &str = "
runs:
  - env: CartPole-v1
    configs: [rat_mlp.yaml, ppo_mlp.yaml]
    seeds: [1, 2]
    budget: 128
    overrides: {num_envs: 2, nsteps: 32, pi_minibatches: 2, v_minibatches: 2,
                a_hidden_size: 16, c_hidden_size: 16}
";

fn sweep(comm: &dyn Communicator, dir: &Path, out: &Path) -> anyhow::Result<()> {
    let path = dir.join("suite.yaml");
    if comm.is_root() {
        std::fs::write(&path, SUITE)?;
    }
    comm.sum_f64(0.0)?;
    let suite = Suite::load(&path)?;
    let jobs = suite.jobs()?;
    let settings = Settings {
        device: None,
        checkpoint_every: 0,
        verbose: false,
        write_reports: true,
        stop: None,
    };
    let cx = Context {
        suite: &suite,
        all: &jobs,
        out,
        title: "t",
    };
    let pass = driver::run_ranked(comm, cx, &jobs, &settings, &mut |_| {})?;
    assert_eq!((pass.trained, pass.failed.len()), (4 / comm.size(), 0));
    Ok(())
}

/// Every column but the clock's, row by row.
fn curve_of(out: &Path, job: &Job) -> anyhow::Result<Vec<String>> {
    let rows = common::clockless_rows(&out.join(&job.dir).join("progress.csv"))?;
    Ok(rows.into_iter().map(|r| r.join(",")).collect())
}

#[test]
fn a_sweep_on_two_ranks_writes_the_curves_of_the_runs_one_by_one() -> anyhow::Result<()> {
    let dir: PathBuf = match std::env::var_os("RAT_SWEEP_DIR") {
        Some(d) => d.into(),
        None => std::env::temp_dir().join(format!("rat-sweep-{}", std::process::id())),
    };
    if std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some() {
        // A rank of the sweep.
        let comm = Mpi::init()?;
        assert_eq!(comm.size(), 2);
        return sweep(&comm, &dir, &dir.join("ranks"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    sweep(&Single, &dir, &dir.join("one_by_one"))?;
    common::on_two_ranks(
        "a_sweep_on_two_ranks_writes_the_curves_of_the_runs_one_by_one",
        "RAT_SWEEP_DIR",
        &dir,
    )?;
    let jobs = Suite::load(&dir.join("suite.yaml"))?.jobs()?;
    for job in &jobs {
        let (a, b) = (dir.join("one_by_one"), dir.join("ranks"));
        assert_eq!(curve_of(&a, job)?, curve_of(&b, job)?, "{:?}", job.dir);
        assert_eq!(
            Curve::read(&b.join(&job.dir).join("progress.csv"))?
                .steps
                .len(),
            4
        );
    }
    // Rank 0's summary has the four runs in the suite's order, with the same returns.
    let rows = |d: &Path| -> anyhow::Result<Vec<String>> {
        Ok(std::fs::read_to_string(d.join("summary.csv"))?
            .lines()
            .map(|l| l.split(',').take(6).collect::<Vec<_>>().join(","))
            .collect())
    };
    let ranked = rows(&dir.join("ranks"))?;
    assert_eq!(ranked.len(), 5);
    assert_eq!(rows(&dir.join("one_by_one"))?, ranked);
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
