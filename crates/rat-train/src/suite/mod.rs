//! Benchmark suites: a YAML list of (environment, config, seeds, budget) runs, trained one by
//! one into fixed directories so that a suite can be stopped and restarted at any time (a
//! finished run is skipped, an interrupted one resumes from its checkpoint), and reported as a
//! table with multi-seed statistics and curve plots. `examples/suite.rs` is the command.
//!
//! * [`file`] — the suite file and its jobs;
//! * [`runs`] — a run's state on disk, the lock between suite processes, training a run;
//! * [`stats`] — mean, IQM, the stratified bootstrap;
//! * [`report`] — `summary.csv`, `table.md` and the plots;
//! * [`driver`] — the plan, shards, and the pass that trains every unfinished run.

pub mod driver;
pub mod file;
pub mod report;
pub mod runs;
pub mod stats;

pub use file::{Anchor, Entry, Job, Suite};
pub use runs::{Lock, State};
