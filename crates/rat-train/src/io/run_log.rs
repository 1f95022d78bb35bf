//! Run outputs (ALGORITHMS.md 9): the log directory named as the reference names it,
//! `progress.csv` with a stdout table, TensorBoard scalars, `config.yaml`, `time.json`, and a
//! progress line on the terminal.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::progress::Progress;
use super::report::{IterationReport, TB_TAGS};
use super::tensorboard::{self, EventWriter};
use crate::config::{Config, Trainer, spelling};
use crate::error::{Result, io};

/// A float as Python's `str` writes it for the values that appear in log names
/// (`0.0`, `0.1`, `0.05`, `1e-05`).
pub fn py_float(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-4 || x.abs() >= 1e16) {
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{x:?}")
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// UTC time as `YYYYmmdd-HHMMSS`.
pub fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The separate script's run directory, relative to `root` (normally `logs`):
/// `{algo}.karzmarz_{…}.{type}.a{h}x{l}x{p}e{E}x{M}.c{…}.{grad}_{post_grad}_{clip}.{sigma}.damping_{λ}.lr_pi_{lr}/{env}.{time}_{seed}`.
pub fn detach_log_dir(root: &Path, c: &Config, seed: u64) -> PathBuf {
    let (a, n) = (&c.algo_config, &c.nets_config);
    let group = format!(
        "{}.karzmarz_{}.{}.a{}x{}x{}e{}x{}.c{}x{}x{}e{}x{}.{}_{}_{}.{}.damping_{}.lr_pi_{}",
        spelling(&c.algo),
        py_bool(a.is_karzmarz),
        n.net_type,
        n.a_hidden_size,
        n.a_num_layers,
        py_float(n.a_dropout),
        a.pi_epochs,
        a.pi_minibatches,
        n.c_hidden_size,
        n.c_num_layers,
        py_float(n.c_dropout),
        a.v_epochs,
        a.v_minibatches,
        spelling(&a.grad),
        spelling(&a.post_grad),
        py_float(a.max_grad_norm),
        spelling(&a.sigma_type),
        py_float(a.cg_damping),
        py_float(a.lr_pi),
    );
    root.join(group).join(format!(
        "{}.{}_{seed}",
        path_safe(&c.env_config.env_name),
        timestamp()
    ))
}

/// The shared script's run directory, relative to `root`:
/// `shared.{algo}.karzmarz_{…}.{type}.a{h}x{l}x{p}e{E}x{M}.clip_grad_{clip}.{sigma}.damping_{λ}.lr_{lr}/{env}.{time}_{seed}`.
pub fn shared_log_dir(root: &Path, c: &Config, seed: u64) -> PathBuf {
    let (a, n) = (&c.algo_config, &c.nets_config);
    let group = format!(
        "shared.{}.karzmarz_{}.{}.a{}x{}x{}e{}x{}.clip_grad_{}.{}.damping_{}.lr_{}",
        spelling(&c.algo),
        py_bool(a.is_karzmarz),
        n.net_type,
        n.hidden_size,
        n.num_layers,
        py_float(n.dropout),
        a.epochs,
        a.minibatches,
        py_float(a.max_grad_norm),
        spelling(&a.sigma_type),
        py_float(a.cg_damping),
        py_float(a.lr),
    );
    root.join(group).join(format!(
        "{}.{}_{seed}",
        path_safe(&c.env_config.env_name),
        timestamp()
    ))
}

/// `progress.csv` (header = the first row's reference keys, sorted, then the added columns in
/// their order) plus the stdout table.
pub struct ProgressCsv {
    path: PathBuf,
    out: BufWriter<File>,
    keys: Option<Vec<String>>,
}

impl ProgressCsv {
    /// Keeps the header and the rows of iterations before `iteration` (`misc/nupdates` <
    /// `iteration`) of `dir/progress.csv`, if there is one.
    pub fn truncate(dir: &Path, iteration: usize) -> Result<()> {
        let path = dir.join("progress.csv");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let mut lines = text.lines();
        let Some(header) = lines.next() else {
            return Ok(());
        };
        let col = header.split(',').position(|h| h == "misc/nupdates");
        let mut out = format!("{header}\n");
        for line in lines {
            let it = col
                .and_then(|c| line.split(',').nth(c))
                .and_then(|v| v.parse::<f64>().ok());
            if it.is_some_and(|it| it < iteration as f64) {
                out.push_str(line);
                out.push('\n');
            }
        }
        std::fs::write(&path, out).map_err(io(&path))
    }

    /// Opens `dir/progress.csv`; `append` keeps an existing file (a resumed run) and its header.
    pub fn open(dir: &Path, append: bool) -> Result<Self> {
        let path = dir.join("progress.csv");
        let keys = if append {
            std::fs::read_to_string(&path).ok().and_then(|s| {
                s.lines()
                    .next()
                    .map(|h| h.split(',').map(String::from).collect())
            })
        } else {
            None
        };
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&path)
            .map_err(io(&path))?;
        Ok(Self {
            path,
            out: BufWriter::new(file),
            keys,
        })
    }

    /// Appends one row, the reference's columns `row` then the `extra` ones (keys missing from
    /// the header are dropped, absent ones left empty), and flushes it.
    pub fn write(&mut self, row: &BTreeMap<String, f64>, extra: &[(&str, f64)]) -> Result<()> {
        let keys = self.keys.get_or_insert_with(|| {
            row.keys()
                .cloned()
                .chain(extra.iter().map(|(k, _)| k.to_string()))
                .collect()
        });
        let lookup = |k: &str| {
            row.get(k)
                .copied()
                .or_else(|| extra.iter().find(|(e, _)| *e == k).map(|(_, v)| *v))
        };
        let mut text = String::new();
        if self.out.get_ref().metadata().map_or(true, |m| m.len() == 0) {
            text.push_str(&keys.join(","));
            text.push('\n');
        }
        let cells: Vec<String> = keys
            .iter()
            .map(|k| lookup(k).map_or(String::new(), |v| fmt_value(v, None)))
            .collect();
        text.push_str(&cells.join(","));
        text.push('\n');
        self.out
            .write_all(text.as_bytes())
            .map_err(io(&self.path))?;
        self.out.flush().map_err(io(&self.path))
    }
}

/// A value as text: integers without a fraction, others in full or to `digits` places.
fn fmt_value(v: f64, digits: Option<usize>) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if let Some(d) = digits {
        format!("{v:.d$}")
    } else {
        format!("{v}")
    }
}

/// The key/value table printed to stdout with every CSV row.
pub fn table(row: &BTreeMap<String, f64>) -> String {
    let cell = |v: f64| fmt_value(v, Some(4));
    let kw = row.keys().map(String::len).max().unwrap_or(0);
    let vw = row.values().map(|v| cell(*v).len()).max().unwrap_or(0);
    let rule = format!("{}\n", "-".repeat(kw + vw + 7));
    let mut s = rule.clone();
    for (k, v) in row {
        s.push_str(&format!("| {k:<kw$} | {:<vw$} |\n", cell(*v)));
    }
    s.push_str(&rule);
    s
}

/// All outputs of one run directory.
pub struct RunLog {
    /// The run directory.
    pub dir: PathBuf,
    csv: ProgressCsv,
    tb: EventWriter,
    progress: Progress,
}

impl RunLog {
    /// Opens the outputs in the existing run directory `dir`: a new CSV and TensorBoard file;
    /// or, when resuming at iteration `resumed_at`, the CSV and every event file cut back to the
    /// iterations before it (the ones after the checkpoint will be run again) and a new event
    /// file.
    pub fn create(dir: &Path, resumed_at: Option<usize>, total_iterations: usize) -> Result<Self> {
        if let Some(it) = resumed_at {
            ProgressCsv::truncate(dir, it)?;
            for entry in std::fs::read_dir(dir).map_err(io(dir))? {
                let path = entry.map_err(io(dir))?.path();
                let is_events = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("events.out.tfevents."));
                if is_events {
                    tensorboard::truncate(&path, it as i64)?;
                }
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            csv: ProgressCsv::open(dir, resumed_at.is_some())?,
            tb: EventWriter::create(dir)?,
            progress: Progress::new(total_iterations),
        })
    }

    /// Writes `config.yaml`: the four sections after overrides, keys sorted, without the keys
    /// only the other loop reads (`algo` is not saved, as in the reference).
    pub fn write_config(&self, c: &Config, trainer: Trainer) -> Result<()> {
        let mut tree =
            serde_yaml_ng::to_value(c).map_err(|e| crate::Error::Invalid(e.to_string()))?;
        if let Some(m) = tree.as_mapping_mut() {
            m.remove("algo");
        }
        let mut sorted: BTreeMap<String, BTreeMap<String, serde_yaml_ng::Value>> =
            serde_yaml_ng::from_value(tree).map_err(|e| crate::Error::Invalid(e.to_string()))?;
        // The keys only the other loop reads are not this run's settings.
        let other = trainer.other();
        for section in sorted.values_mut() {
            section.retain(|k, _| !other.own_keys().contains(&k.as_str()));
        }
        let text =
            serde_yaml_ng::to_string(&sorted).map_err(|e| crate::Error::Invalid(e.to_string()))?;
        let path = self.dir.join("config.yaml");
        std::fs::write(&path, text).map_err(io(&path))
    }

    /// Logs one iteration: its TensorBoard scalars (every iteration), its `progress.csv` row
    /// (every `log_interval` iterations and at the `last`, with the table on stdout when
    /// `verbose`) and the progress line (when `verbose`).
    pub fn iteration(
        &mut self,
        report: &IterationReport,
        log_interval: usize,
        last: bool,
        verbose: bool,
    ) -> Result<()> {
        let row = report.row();
        let step = report.iteration as i64;
        for (key, tag) in TB_TAGS {
            if let Some(v) = row.get(*key) {
                self.tb.scalar(tag, *v, step)?;
            }
        }
        for (tag, v) in &report.tb_only {
            self.tb.scalar(tag, *v, step)?;
        }
        for (name, v) in report.extra.iter().filter(|(_, v)| v.is_finite()) {
            self.tb.scalar(&format!("train/{name}"), *v, step)?;
        }
        self.tb.flush()?;
        let every = log_interval.max(1);
        if last || (report.iteration + 1).is_multiple_of(every) {
            if verbose {
                self.progress.clear();
                let mut all = row.clone();
                all.extend(report.extra.iter().map(|(k, v)| (k.to_string(), *v)));
                print!("{}", table(&all));
            }
            self.csv.write(&row, &report.extra)?;
        }
        if verbose {
            let ret = row.get("eprewmean").copied().unwrap_or(f64::NAN);
            self.progress
                .update(report.iteration, report.fps, ret, log_interval);
        }
        Ok(())
    }

    /// Logs a recorded evaluation episode after iteration `it`: its GIF of `size` = (width,
    /// height) as an animated image (`eval/video`) and its return (`eval/return`) in
    /// TensorBoard, with the seconds it took (`time/video`).
    pub fn video(
        &mut self,
        it: usize,
        size: (usize, usize),
        gif: &[u8],
        ret: f64,
        seconds: f64,
    ) -> Result<()> {
        self.tb.image("eval/video", size, gif, it as i64)?;
        self.tb.scalar("eval/return", ret, it as i64)?;
        self.tb.scalar("time/video", seconds, it as i64)?;
        self.tb.flush()
    }

    /// Writes `time.json`: per-iteration update seconds, their mean, mean per minibatch step,
    /// standard error and count.
    pub fn write_times(&self, times: &[f64], steps_per_iteration: usize) -> Result<()> {
        let n = times.len().max(1) as f64;
        let mean = times.iter().sum::<f64>() / n;
        let var = times.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n;
        let json = serde_json::json!({
            "compute_time_array": times,
            "average": mean,
            "time_per_update": mean / steps_per_iteration.max(1) as f64,
            "stderr": var.sqrt() / n.sqrt(),
            "updates": times.len(),
        });
        let path = self.dir.join("time.json");
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        )
        .map_err(io(&path))
    }

    /// Ends the progress line.
    pub fn finish(&mut self) {
        self.progress.clear();
    }
}

/// `name` with the characters that are awkward in a directory name (an id's `?options`, `/`)
/// replaced by `_`.
pub fn path_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
