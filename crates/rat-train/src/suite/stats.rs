//! The statistics of a results table over seeds, as rliable (Agarwal et al., 2021) reports them:
//! the interquartile mean and a percentile interval from a stratified bootstrap.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bootstrap resamples behind every interval.
pub const BOOTSTRAP_REPS: usize = 2000;

/// The RNG seed of every bootstrap, so that a table is the same each time it is made.
pub const BOOTSTRAP_SEED: u64 = 0;

/// The mean of the finite values (NaN if none).
pub fn mean(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().sum::<f64>() / v.len() as f64
}

/// The population standard deviation √(Σ(x − x̄)²/n) of the finite values (numpy's default).
pub fn std(x: &[f64]) -> f64 {
    let v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    let m = mean(&v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// The interquartile mean: the mean of the sorted values after ⌊n/4⌋ are cut from each end
/// (scipy's `trim_mean(x, 0.25)`, which rliable uses). With fewer than four values nothing is
/// cut, so the IQM of three seeds is their mean.
pub fn iqm(x: &[f64]) -> f64 {
    let mut v: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let cut = v.len() / 4;
    mean(&v[cut..v.len() - cut])
}

/// The `q`-quantile (0 ≤ q ≤ 1) of sorted values, linearly interpolated between order
/// statistics at position q·(n − 1) (numpy's default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + frac * (next - sorted[i]),
        None => sorted[i],
    }
}

/// A 95 % stratified-bootstrap percentile interval of `statistic`: each of `reps` resamples
/// draws, stratum by stratum in order, as many values as the stratum has, uniformly with
/// replacement from that stratum (`rng.random_range(0..n)` each, on a ChaCha8 RNG seeded with
/// `seed`), and applies `statistic` to the concatenation; the interval is the 2.5 % and 97.5 %
/// quantiles ([`quantile`]) of the resampled statistics. Strata are the tasks of an aggregate;
/// a single stratum is the ordinary bootstrap over seeds. Empty strata are skipped; with no
/// values at all the interval is (NaN, NaN).
pub fn stratified_bootstrap(
    strata: &[Vec<f64>],
    statistic: fn(&[f64]) -> f64,
    reps: usize,
    seed: u64,
) -> (f64, f64) {
    if strata.iter().all(|s| s.is_empty()) {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats: Vec<f64> = (0..reps)
        .map(|_| {
            let sample: Vec<f64> = strata
                .iter()
                .filter(|s| !s.is_empty())
                .flat_map(|s| {
                    (0..s.len())
                        .map(|_| s[rng.random_range(0..s.len())])
                        .collect::<Vec<_>>()
                })
                .collect();
            statistic(&sample)
        })
        .collect();
    stats.sort_by(f64::total_cmp);
    (quantile(&stats, 0.025), quantile(&stats, 0.975))
}
