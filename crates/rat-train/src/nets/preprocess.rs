//! What every agent carries besides its networks ([`Preprocess`]: observation normaliser, PopArt
//! statistics, widths) and what a rollout asks of an agent ([`RolloutModel`]), in one module so
//! that the rollout depends on the networks and never the other way round.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use rat_core::layers::Dense;
use rat_envs::Space;
use rat_rollout::{ObsNormaliser, PopArt, PopArtStats};

use super::policy::Policy;
use crate::config::Config;
use crate::error::{Result, invalid};
use crate::io::checkpoint::checkpoint_tensor;

/// What every agent keeps besides its networks: the observation normaliser, the PopArt return
/// statistics and the widths of observations and actions.
#[derive(Debug, Clone)]
pub struct Preprocess {
    /// The running observation normaliser (`norm_obs`).
    pub obs_norm: Option<ObsNormaliser>,
    /// The return statistics (`with_popart`).
    pub popart: Option<PopArt>,
    /// Observation width.
    pub obs_dim: usize,
    /// Action width (1 for discrete actions, holding the index).
    pub act_dim: usize,
}

impl Preprocess {
    /// The observation width of a flat `Box` space, or an error.
    pub fn obs_width(obs_space: &Space) -> Result<usize> {
        match obs_space {
            Space::Box { .. } => Ok(obs_space.flat_dim()),
            Space::Discrete { .. } => {
                invalid("discrete observation spaces are not supported; need a Box")
            }
        }
    }

    /// Fresh statistics as `norm_obs` and `with_popart` say.
    pub fn new(config: &Config, obs_dim: usize, act_dim: usize) -> Self {
        Self {
            obs_norm: config
                .nets_config
                .norm_obs
                .then(|| ObsNormaliser::new(obs_dim)),
            popart: config.algo_config.with_popart.then(PopArt::default),
            obs_dim,
            act_dim,
        }
    }

    /// Raw observation rows → the networks' input (n, obs_dim) in f32, normalised when
    /// `norm_obs` is on.
    pub fn normalise(&self, raw: &[f64], device: &Device) -> Result<Tensor> {
        let n = raw.len() / self.obs_dim.max(1);
        let mut out = vec![0f32; raw.len()];
        match &self.obs_norm {
            Some(norm) => norm.normalise(raw, &mut out)?,
            None => out.iter_mut().zip(raw).for_each(|(o, &x)| *o = x as f32),
        }
        Ok(Tensor::from_vec(out, (n, self.obs_dim), device)?)
    }

    /// Updates the observation normaliser (when `norm_obs` is on) with raw observation rows.
    pub fn update_obs_norm(&mut self, raw: &[f64]) -> Result<()> {
        if let Some(norm) = self.obs_norm.as_mut() {
            norm.update(raw)?;
        }
        Ok(())
    }

    /// The current PopArt statistics (identity when PopArt is off).
    pub fn value_stats(&self) -> PopArtStats {
        self.popart.as_ref().map_or(
            PopArtStats {
                mean: 0.0,
                std: 1.0,
            },
            PopArt::stats,
        )
    }

    /// Unnormalised values of normalised-scale predictions `v` (n).
    pub fn unnormalise_values(&self, v: &Tensor) -> Result<Vec<f64>> {
        let stats = self.value_stats();
        let v = v.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        Ok(v.into_iter().map(|y| stats.unnormalise(y)).collect())
    }

    /// Updates PopArt with a rollout's returns and rescales the value `head` so that
    /// unnormalised predictions are unchanged. Returns the new statistics.
    pub fn update_popart(&mut self, returns: &[f64], head: &Dense) -> Result<PopArtStats> {
        let Some(popart) = self.popart.as_mut() else {
            return Ok(PopArtStats {
                mean: 0.0,
                std: 1.0,
            });
        };
        let (old, new) = popart.update(returns)?;
        let (w, b) =
            PopArt::rescale_head(head.weight().as_tensor(), head.bias().as_tensor(), old, new)?;
        head.weight().set(&w)?;
        head.bias().set(&b)?;
        Ok(new)
    }

    /// The statistics as named tensors (f64).
    pub fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let cpu = Device::Cpu;
        let mut out = Vec::new();
        if let Some(n) = &self.obs_norm {
            out.push((
                "obs_rms.mean".into(),
                Tensor::new(n.stats.mean.as_slice(), &cpu)?,
            ));
            out.push((
                "obs_rms.var".into(),
                Tensor::new(n.stats.var.as_slice(), &cpu)?,
            ));
            out.push(("obs_rms.count".into(), Tensor::new(&[n.stats.count], &cpu)?));
        }
        if let Some(p) = &self.popart {
            let stats = [p.mean, p.mean_sq, p.debiasing_term];
            out.push((
                "popart.mean_meansq_debias".into(),
                Tensor::new(&stats, &cpu)?,
            ));
        }
        Ok(out)
    }

    /// Restores what [`tensors`](Self::tensors) saved.
    pub fn load(&mut self, t: &HashMap<String, Tensor>) -> Result<()> {
        let f64s = |name: &str| -> Result<Vec<f64>> {
            Ok(checkpoint_tensor(t, name)?
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?)
        };
        if let Some(n) = self.obs_norm.as_mut() {
            let (mean, var, count) = (
                f64s("obs_rms.mean")?,
                f64s("obs_rms.var")?,
                f64s("obs_rms.count")?,
            );
            if mean.len() != n.stats.dim() || var.len() != n.stats.dim() || count.len() != 1 {
                return invalid("checkpoint observation statistics do not fit this environment");
            }
            (n.stats.mean, n.stats.var, n.stats.count) = (mean, var, count[0]);
        }
        if let Some(p) = self.popart.as_mut() {
            let s = f64s("popart.mean_meansq_debias")?;
            if s.len() != 3 {
                return invalid("checkpoint PopArt statistics must be 3 values");
            }
            (p.mean, p.mean_sq, p.debiasing_term) = (s[0], s[1], s[2]);
        }
        Ok(())
    }
}

/// What a rollout needs of an agent: its preprocessing, its policy and its values.
pub trait RolloutModel {
    /// The observation normaliser, PopArt statistics and widths.
    fn pre(&self) -> &Preprocess;

    /// The policy at network inputs `obs` (no recording).
    fn policy(&self, obs: &Tensor) -> Result<Policy>;

    /// Unnormalised values V(s) of network inputs `obs` (n), on the host.
    fn values(&self, obs: &Tensor) -> Result<Vec<f64>>;

    /// Raw observation rows → the networks' input.
    fn normalise(&self, raw: &[f64], device: &Device) -> Result<Tensor> {
        self.pre().normalise(raw, device)
    }
}
