//! The suite runner on a two-run CartPole suite (runs, skips finished runs, resumes a run
//! stopped after its first checkpoint to the same curve as an uninterrupted one, takes over a
//! dead process's lock and respects a live one, refuses another config's directory), its
//! statistics against hand computations, and its plot as a decoded PNG.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_train::suite::driver::{self, Context};
use rat_train::suite::report::{self, Row};
use rat_train::suite::runs::{self, Settings, State};
use rat_train::suite::stats::{iqm, quantile, stratified_bootstrap};
use rat_train::suite::{Job, Suite};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rat-suite-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// Two CartPole runs of 6 iterations (2 environments x 32 steps, 16-unit networks).
const SUITE: &str = "
description: two tiny CartPole runs
runs:
  - env: CartPole-v1
    config: rat_mlp.yaml
    seeds: [1, 2]
    budget: 256
    overrides: {num_envs: 2, nsteps: 32, pi_minibatches: 2, v_minibatches: 2,
                a_hidden_size: 16, c_hidden_size: 16}
anchors:
  - {env: CartPole-v1, name: max, value: 500}
";

fn suite_in(dir: &Path, text: &str) -> anyhow::Result<Suite> {
    let path = dir.join("suite.yaml");
    std::fs::write(&path, text)?;
    Ok(Suite::load(&path)?)
}

fn cx<'a>(suite: &'a Suite, all: &'a [Job], out: &'a Path) -> Context<'a> {
    Context {
        suite,
        all,
        out,
        title: "t",
    }
}

fn settings(checkpoint_every: usize, stop: bool) -> Settings {
    Settings {
        device: Some(rat_train::cli::test_device().expect("RAT_TEST_DEVICE names a device")),
        checkpoint_every,
        verbose: false,
        write_reports: true,
        stop: Some(Arc::new(AtomicBool::new(stop))),
    }
}

/// `eprewmean` and `misc/nupdates` of every row of a run's progress.csv.
fn curve(out: &Path, job: &Job) -> anyhow::Result<Vec<(f64, Option<usize>)>> {
    let c = runs::Curve::read(&out.join(&job.dir).join("progress.csv"))?;
    Ok(c.eprewmean
        .iter()
        .enumerate()
        .map(|(i, r)| (*r, Some(i)))
        .collect())
}

#[test]
fn a_suite_runs_skips_finished_runs_and_resumes_a_stopped_one() -> anyhow::Result<()> {
    let dir = temp_dir("cycle");
    let suite = suite_in(&dir, SUITE)?;
    let jobs = suite.jobs()?;
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].dir, Path::new("runs/CartPole-v1/rat/seed_1"));
    let (out, reference) = (dir.join("out"), dir.join("reference"));

    // The reference: seed 1 trained in one go.
    let mut quiet = |_: &str| {};
    let one = [jobs[0].clone()];
    let pass = driver::run(
        cx(&suite, &jobs, &reference),
        &one,
        &settings(2, false),
        &mut quiet,
    )?;
    assert_eq!((pass.trained, pass.failed.len()), (1, 0));

    // Seed 1 stopped after its first iteration (a stop request checkpoints it).
    let stopped = runs::train(&jobs[0], &State::New, &out, &settings(2, true))?;
    assert!(stopped.interrupted);
    assert!(matches!(runs::state(&jobs[0], &out)?, State::Resume { .. }));
    // Seed 2's lock left by a process of this host that has exited.
    let mut child = std::process::Command::new("true").spawn()?;
    let dead = child.id();
    child.wait()?;
    let lock = out.join(&jobs[1].dir).with_extension("lock");
    std::fs::create_dir_all(lock.parent().expect("a parent"))?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    std::fs::write(&lock, format!("{} {dead}\n", host.trim()))?;

    // The suite resumes seed 1, takes over seed 2's stale lock and trains it.
    let mut lines = Vec::new();
    let mut say = |l: &str| lines.push(l.to_string());
    let pass = driver::run(
        cx(&suite, &jobs, &out),
        &jobs,
        &settings(2, false),
        &mut say,
    )?;
    assert_eq!(
        (pass.trained, pass.skipped, pass.locked),
        (2, 0, 0),
        "{lines:?}"
    );
    assert!(lines[0].contains("resuming"), "{lines:?}");
    assert!(!lock.exists(), "the lock is removed after the run");
    // Resumed = uninterrupted, iteration by iteration.
    assert_eq!(curve(&out, &jobs[0])?, curve(&reference, &jobs[0])?);
    assert_eq!(curve(&out, &jobs[0])?.len(), 6);

    // A second invocation trains nothing and leaves the runs' files alone.
    let progress = out.join(&jobs[1].dir).join("progress.csv");
    let before = std::fs::metadata(&progress)?.modified()?;
    let pass = driver::run(
        cx(&suite, &jobs, &out),
        &jobs,
        &settings(2, false),
        &mut quiet,
    )?;
    assert_eq!((pass.trained, pass.skipped), (0, 2));
    assert_eq!(std::fs::metadata(&progress)?.modified()?, before);

    // A live process's lock (this one's) is respected.
    std::fs::write(&lock, format!("{} {}\n", host.trim(), std::process::id()))?;
    let fresh = dir.join("fresh");
    std::fs::create_dir_all(fresh.join("runs/CartPole-v1/rat"))?;
    std::fs::copy(&lock, fresh.join(&jobs[1].dir).with_extension("lock"))?;
    let pass = driver::run(
        cx(&suite, &jobs, &fresh),
        &jobs[1..],
        &settings(2, false),
        &mut quiet,
    )?;
    assert_eq!((pass.trained, pass.locked), (0, 1));

    // The outputs: one summary row per run, the table, a plot.
    let summary = std::fs::read_to_string(out.join("summary.csv"))?;
    let rows: Vec<&str> = summary.lines().collect();
    assert_eq!(rows[0], report::SUMMARY_HEADER);
    assert_eq!(rows.len(), 3);
    assert!(rows[1].starts_with("CartPole-v1,rat,1,384,"), "{}", rows[1]);
    let table = std::fs::read_to_string(out.join("table.md"))?;
    assert!(table.contains("| CartPole-v1 | rat | 2 |"), "{table}");
    assert!(table.contains("max 500 |"), "{table}");
    assert!(out.join("curves_CartPole-v1.png").exists());
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn a_directory_holding_another_configs_run_is_refused() -> anyhow::Result<()> {
    let dir = temp_dir("other");
    let suite = suite_in(&dir, SUITE)?;
    let jobs = suite.jobs()?;
    let out = dir.join("out");
    runs::train(&jobs[0], &State::New, &out, &settings(0, true))?;
    let changed = suite_in(&dir, &SUITE.replace("nsteps: 32", "nsteps: 64"))?;
    let err = runs::state(&changed.jobs()?[0], &out).expect_err("another config");
    let msg = err.to_string();
    assert!(msg.contains("nsteps: 32 there, 64 in the suite"), "{msg}");
    // A run stopped in its first iteration (an empty progress.csv, no checkpoint) restarts.
    let second = &changed.jobs()?[1];
    std::fs::create_dir_all(out.join(&second.dir))?;
    std::fs::write(out.join(&second.dir).join("progress.csv"), "")?;
    assert!(matches!(runs::state(second, &out)?, State::Restart));
    // A budget raised later continues the run (a resume may change it).
    let longer = suite_in(&dir, &SUITE.replace("budget: 256", "budget: 512"))?;
    assert!(matches!(
        runs::state(&longer.jobs()?[0], &out)?,
        State::Resume { .. }
    ));
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn suite_files_with_mistakes_are_refused_with_the_reason() -> anyhow::Result<()> {
    let dir = temp_dir("mistakes");
    let cases = [
        (SUITE.replace("seeds:", "seed:"), "unknown field `seed`"),
        (
            SUITE.replace(
                "config: rat_mlp.yaml",
                "config: rat_mlp.yaml\n    configs: [ppo_mlp.yaml]",
            ),
            "give `config` or `configs`, not both",
        ),
        (
            SUITE.replace("seeds: [1, 2]", "seeds: [1, 1]"),
            "already a run of the suite",
        ),
        (SUITE.replace("num_envs: 2", "num_envz: 2"), "num_envz"),
        (
            SUITE.replace("budget: 256", "budget: 256\n    trainer: joint"),
            "trainer: joint is not a loop",
        ),
    ];
    for (text, expected) in cases {
        let err = suite_in(&dir, &text).and_then(|s| Ok(s.jobs()?));
        let msg = format!("{:#}", err.expect_err(expected));
        assert!(msg.contains(expected), "expected '{expected}' in: {msg}");
    }
    assert!(driver::shard(vec![], "2/2").is_err());
    std::fs::remove_dir_all(dir)?;
    Ok(())
}

#[test]
fn iqm_and_the_bootstrap_interval_match_a_hand_computation() {
    // scipy.stats.trim_mean([5, 1, 9, 3, 7, 2, 8, 4], 0.25): cut 2 of each end of the sorted
    // values, mean of 3, 4, 5, 7.
    assert_eq!(iqm(&[5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0]), 4.75);
    assert_eq!(iqm(&[3.0, 1.0, 2.0]), 2.0); // fewer than 4: nothing cut
    assert_eq!(quantile(&[1.0, 2.0, 4.0], 0.25), 1.5);

    // Two seeds: a resample's mean is a, (a + b)/2 or b with probabilities 1/4, 1/2, 1/4, so
    // the 2.5 % and 97.5 % quantiles of 2000 resamples are a and b.
    let (lo, hi) = stratified_bootstrap(&[vec![10.0, 20.0]], iqm, 2000, 0);
    assert_eq!((lo, hi), (10.0, 20.0));

    // The same procedure written out: draws stratum by stratum with the documented RNG calls.
    let strata = vec![vec![1.0, 4.0, 9.0], vec![2.0, 3.0]];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut stats: Vec<f64> = (0..300)
        .map(|_| {
            let mut sample = Vec::new();
            for s in &strata {
                for _ in 0..s.len() {
                    sample.push(s[rng.random_range(0..s.len())]);
                }
            }
            sample.sort_by(f64::total_cmp);
            let cut = sample.len() / 4; // 5 values: cut 1 of each end
            sample[cut..sample.len() - cut].iter().sum::<f64>() / (sample.len() - 2 * cut) as f64
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let pos = q * 299.0;
        let (i, f) = (pos.floor() as usize, pos - pos.floor());
        stats[i] + f * (stats[i + 1] - stats[i])
    };
    let (lo, hi) = stratified_bootstrap(&strata, iqm, 300, 7);
    assert_eq!((lo, hi), (pick(0.025), pick(0.975)));
    assert!(lo < hi);
}

#[test]
fn the_table_states_the_hand_computed_statistics() -> anyhow::Result<()> {
    let suite = suite_in(&temp_dir("table"), SUITE)?;
    let row = |algo: &str, seed: u64, ret: f64| Row {
        env: "CartPole-v1".into(),
        algo: algo.into(),
        seed,
        steps: 1000.0,
        eprewmean: ret,
        eprewmean_last10pct: ret - 1.0,
        wall_s: 7200.0,
        fps: 1000.0 / 7200.0,
    };
    let rows = [
        row("rat", 1, 100.0),
        row("rat", 2, 200.0),
        row("rat", 3, 600.0),
    ];
    let table = report::table_md(&suite, &rows, "T");
    let (lo, hi) = stratified_bootstrap(&[vec![100.0, 200.0, 600.0]], iqm, 2000, 0);
    // mean 300, population std √((200² + 100² + 300²)/3) = 216.02, IQM of 3 = the mean.
    let expected = format!(
        "| CartPole-v1 | rat | 3 | 1k | 300.0 ± 216.0 | 300.0 [{}, {}] | 299.0 | 2.0 h | max 500 |",
        report::fmt(lo),
        report::fmt(hi)
    );
    assert!(table.contains(&expected), "{expected}\nnot in\n{table}");
    assert!((100.0..300.0).contains(&lo) && 300.0 < hi && hi <= 600.0);
    assert_eq!(report::fmt(1234567.25), "1,234,567.2");
    Ok(())
}

#[test]
fn curves_plot_to_a_png_that_is_not_blank() -> anyhow::Result<()> {
    use rat_train::io::plot::{PALETTE, PLOT_SIZE, Series, plot_curves};
    let path = temp_dir("plot").join("curves.png");
    let x: Vec<f64> = (0..50).map(|i| i as f64 * 2e4).collect();
    let y: Vec<f64> = x.iter().map(|v| (v / 1e5).sqrt() * 100.0).collect();
    let s = Series {
        label: "minatar:breakout".into(),
        color: PALETTE[1],
        lo: y.iter().map(|v| v - 10.0).collect(),
        hi: y.iter().map(|v| v + 10.0).collect(),
        x,
        y,
    };
    plot_curves(&path, "test", "environment steps", "eprewmean", &[s])?;
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf)?;
    assert_eq!((info.width, info.height), PLOT_SIZE);
    let px = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let pixels: Vec<&[u8]> = px.chunks(step).collect();
    let white = pixels.iter().filter(|p| p[..3] == [255, 255, 255]).count();
    let line = pixels.iter().filter(|p| p[..3] == PALETTE[1]).count();
    assert!(white > pixels.len() / 2, "mostly background");
    assert!(
        line > 1000,
        "the line is drawn ({line} pixels of its colour)"
    );
    assert!(
        white < pixels.len() - 20_000,
        "text, axes and a band are drawn"
    );
    Ok(())
}
