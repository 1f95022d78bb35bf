//! What one iteration reports ([`IterationReport`]), the `progress.csv` row it becomes
//! (ALGORITHMS.md 9.2), and every TensorBoard tag either loop writes, in one table
//! ([`TB_TAGS`], ALGORITHMS.md 9.3).

use std::collections::{BTreeMap, VecDeque};

use crate::rules::StepInfo;

/// Everything one iteration logs.
#[derive(Debug, Clone)]
pub struct IterationReport<'a> {
    /// The iteration, from 0.
    pub iteration: usize,
    /// Environment steps per iteration (N = E·T).
    pub batch: usize,
    /// Environment steps per second over this iteration.
    pub fps: f64,
    /// Seconds of training so far, across resumes.
    pub elapsed: f64,
    /// The rollout's pre-squash actions (or indices).
    pub actions: &'a [f32],
    /// The rollout's normalised advantages.
    pub advantages: &'a [f64],
    /// The rollout's normalised returns.
    pub returns: &'a [f64],
    /// The window of the last finished episodes, (return, length).
    pub episodes: &'a VecDeque<(f64, usize)>,
    /// The last update step's report (its `clipfrac`: the mean over the iteration's steps).
    pub step: StepInfo,
    /// The last value loss.
    pub loss_v: f64,
    /// The learning-rate columns (`lr_pi`/`lr_v` or `curr_lr`/`lr`).
    pub learning_rates: [(&'static str, f64); 2],
    /// TensorBoard-only values (`time/rollout`, …, `solve/residual`).
    pub tb_only: Vec<(&'static str, f64)>,
    /// Columns this project adds (`actor_steps`, `kl_step_mean`, …): written to `progress.csv`
    /// after the reference's, in this order, and to TensorBoard as `train/<name>`.
    pub extra: Vec<(&'static str, f64)>,
}

impl IterationReport<'_> {
    /// The `progress.csv` row, keyed by the reference's column names.
    pub fn row(&self) -> BTreeMap<String, f64> {
        let mut row = BTreeMap::new();
        let mut put = |k: &str, v: f64| {
            row.insert(k.to_string(), v);
        };
        let (amin, amax) = self
            .actions
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &a| {
                (lo.min(a as f64), hi.max(a as f64))
            });
        put("action_max", amax);
        put("action_min", amin);
        for (name, x) in [("adv", self.advantages), ("ret", self.returns)] {
            let (min, max, avg, med, var) = summary(x);
            put(&format!("{name}_avg"), avg);
            put(&format!("{name}_max"), max);
            put(&format!("{name}_med"), med);
            put(&format!("{name}_min"), min);
            put(&format!("{name}_var"), var);
        }
        let rets: Vec<f64> = self.episodes.iter().map(|e| e.0).collect();
        let lens: Vec<f64> = self.episodes.iter().map(|e| e.1 as f64).collect();
        let (it, n, info) = (self.iteration, self.batch, &self.step);
        put("clipfrac", info.clipfrac);
        put("entropy", info.entropy);
        put("eplenmean", mean(&lens));
        put("eprewmean", mean(&rets));
        put("fps", self.fps.floor());
        put("grad_norm", info.grad_norm);
        put("kl", info.kl);
        put("loss_pi", info.loss_pi);
        put("loss_v", self.loss_v);
        for (k, v) in self.learning_rates {
            put(k, v);
        }
        put("misc/nupdates", it as f64);
        put("misc/serial_timesteps", ((it + 1) * n) as f64);
        put("misc/total_timesteps", ((it + 1) * n) as f64);
        put("misc/time_elapsed", self.elapsed);
        put("ratio_max", info.ratio_max);
        put("ratio_min", info.ratio_min);
        row
    }
}

/// CSV column → TensorBoard tag, for every column either loop writes (a loop writes the tags of
/// the columns its row has).
pub const TB_TAGS: &[(&str, &str)] = &[
    ("kl", "train/kl"),
    ("grad_norm", "grad_norm"),
    ("clipfrac", "train/clipfrac"),
    ("entropy", "train/entropy"),
    ("ratio_max", "train/ratio_max"),
    ("ratio_min", "train/ratio_min"),
    ("loss_pi", "train/loss_pi"),
    ("loss_v", "train/loss_v"),
    ("ret_max", "train/ret_max"),
    ("ret_min", "train/ret_min"),
    ("ret_avg", "train/ret_avg"),
    ("ret_med", "train/ret_med"),
    ("ret_var", "train/ret_var"),
    ("action_max", "train/act_max"),
    ("action_min", "train/act_min"),
    ("adv_max", "train/adv_max"),
    ("adv_min", "train/adv_min"),
    ("adv_avg", "train/adv_avg"),
    ("adv_med", "train/adv_med"),
    ("adv_var", "train/adv_var"),
    ("eprewmean", "train/eprewmean"),
    ("eplenmean", "train/eplenmean"),
    ("fps", "train/fps"),
    ("misc/time_elapsed", "misc/time_elapsed"),
    ("misc/serial_timesteps", "misc/serial_timesteps"),
    ("misc/nupdates", "misc/nupdates"),
    ("misc/total_timesteps", "misc/total_timesteps"),
    // train_detach's learning rates.
    ("lr_pi", "train/lr_pi"),
    ("lr_v", "train/lr_v"),
    // train_shared's learning rates.
    ("curr_lr", "train/curr_lr"),
    ("lr", "train/lr"),
];

/// The mean of a sample (NaN when empty).
pub fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        f64::NAN
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}

/// min, max, mean, lower median and unbiased variance of a sample (NaN when empty).
pub fn summary(x: &[f64]) -> (f64, f64, f64, f64, f64) {
    if x.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN, f64::NAN, f64::NAN);
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = if x.len() > 1 {
        x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        f64::NAN
    };
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let med = sorted[(sorted.len() - 1) / 2];
    (sorted[0], sorted[sorted.len() - 1], mean, med, var)
}
