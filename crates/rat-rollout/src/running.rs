//! Running mean and variance, and the observation normaliser built on them.

use crate::error::{Error, Result, shape};

/// Running per-component mean and (population) variance over batches, in f64.
///
/// Batches merge by the parallel-variance rule: with batch mean μ_b, unbiased batch variance
/// σ_b² (divisor n − 1) and n rows, δ = μ_b − μ, n' = count + n,
/// μ' = μ + δ·n/n', var' = (var·count + σ_b²·n + δ²·count·n/n') / n', count' = n'.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningMeanStd {
    /// Per-component mean.
    pub mean: Vec<f64>,
    /// Per-component variance.
    pub var: Vec<f64>,
    /// The (pseudo-)count of rows seen.
    pub count: f64,
}

impl RunningMeanStd {
    /// Mean 0, variance 1 and the given initial count (the reference's observation normaliser
    /// starts at 1.0).
    pub fn new(dim: usize, initial_count: f64) -> Self {
        Self {
            mean: vec![0.0; dim],
            var: vec![1.0; dim],
            count: initial_count,
        }
    }

    /// Number of components.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Merges a batch of rows (row-major, `dim` columns); a batch of one row has variance 0.
    pub fn update(&mut self, rows: &[f64]) -> Result<()> {
        let d = self.dim();
        if d == 0 || rows.is_empty() || !rows.len().is_multiple_of(d) {
            return shape(
                "RunningMeanStd::update",
                format!("{} values do not form rows of {d}", rows.len()),
            );
        }
        if rows.iter().any(|x| !x.is_finite()) {
            return Err(Error::InvalidArgument {
                op: "RunningMeanStd::update",
                msg: "non-finite value in the batch".into(),
            });
        }
        let n = (rows.len() / d) as f64;
        let mut bmean = vec![0.0; d];
        for row in rows.chunks(d) {
            bmean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
        }
        bmean.iter_mut().for_each(|m| *m /= n);
        let mut bvar = vec![0.0; d];
        for row in rows.chunks(d) {
            bvar.iter_mut()
                .zip(row)
                .zip(&bmean)
                .for_each(|((v, x), m)| *v += (x - m) * (x - m));
        }
        let denom = if n > 1.0 { n - 1.0 } else { 1.0 };
        bvar.iter_mut().for_each(|v| *v /= denom);
        let total = self.count + n;
        for k in 0..d {
            let delta = bmean[k] - self.mean[k];
            let m2 =
                self.var[k] * self.count + bvar[k] * n + delta * delta * self.count * n / total;
            self.mean[k] += delta * n / total;
            self.var[k] = m2 / total;
        }
        self.count = total;
        Ok(())
    }
}

/// The reference's observation normaliser: y = clip((x − μ) / √(var + ε), −c, c), with ε = 1e-5,
/// c = 5 and the statistics cast to f32. Frozen unless [`update`](Self::update) is called (once
/// per rollout, with all of its observations).
#[derive(Debug, Clone, PartialEq)]
pub struct ObsNormaliser {
    /// The running statistics (count starts at 1).
    pub stats: RunningMeanStd,
    /// ε inside the square root.
    pub epsilon: f64,
    /// The clip bound c.
    pub clip: f64,
}

impl ObsNormaliser {
    /// A normaliser for observations of `dim` components, with the reference's constants.
    pub fn new(dim: usize) -> Self {
        Self {
            stats: RunningMeanStd::new(dim, 1.0),
            epsilon: 1e-5,
            clip: 5.0,
        }
    }

    /// Merges a batch of raw observations into the statistics.
    pub fn update(&mut self, rows: &[f64]) -> Result<()> {
        self.stats.update(rows)
    }

    /// Normalises rows of raw observations into `out` (same length), in f32.
    pub fn normalise(&self, rows: &[f64], out: &mut [f32]) -> Result<()> {
        let d = self.stats.dim();
        if rows.len() != out.len() || d == 0 || !rows.len().is_multiple_of(d) {
            return shape(
                "ObsNormaliser::normalise",
                format!("{} inputs, {} outputs, rows of {d}", rows.len(), out.len()),
            );
        }
        let mean: Vec<f32> = self.stats.mean.iter().map(|&m| m as f32).collect();
        let scale: Vec<f32> = self
            .stats
            .var
            .iter()
            .map(|&v| (v as f32 + self.epsilon as f32).sqrt())
            .collect();
        let c = self.clip as f32;
        for (row, o) in rows.chunks(d).zip(out.chunks_mut(d)) {
            for k in 0..d {
                o[k] = ((row[k] as f32 - mean[k]) / scale[k]).clamp(-c, c);
            }
        }
        Ok(())
    }
}
