//! K-FAC (Martens & Grosse 2015; the ACKTR variant of Wu et al. 2017) over `rat-core`'s
//! score-aware layers.
//!
//! The factors are the per-layer inputs and back-propagated output gradients that
//! [`rat_core::layers::Recorder`] already records for the factored score Jacobian, so this crate
//! needs no hooks. For a dense layer with input ũ = [u; 1] (b, in + 1) and per-sample output
//! gradients g (b, out) of the statistics objective Σ_i ℓ_i:
//!
//! * A ← β·A + (1 − β)·ũᵀũ / b every step;
//! * G ← β·G + (1 − β)·gᵀg / b every `t_inv` steps (both start at I before their first update);
//! * every `t_inv` steps, A = Q_A diag(d_A) Q_Aᵀ and G = Q_G diag(d_G) Q_Gᵀ (eigenvalues ≤ 1e-10
//!   set to 0);
//! * the layer's gradient 𝒢 = [∇W | ∇b] (out x (in + 1)) becomes
//!   V = Q_G [(Q_Gᵀ 𝒢 Q_A) / (d_G d_Aᵀ + δ)] Q_Aᵀ, i.e. (G ⊗ A + δI)⁻¹ 𝒢;
//! * KL clip: ν = min(1, √(κ / (lr² Σ_layers Σ V ⊙ 𝒢))), every layer's step is ν·V;
//! * parameters outside dense layers (a log-σ vector) keep their raw gradient;
//! * momentum SGD: buf ← d on the first step, then buf ← μ·buf + d; θ ← θ − lr·buf.
//!
//! EK-FAC (George et al. 2018; `eigen_corrected`) keeps K-FAC's eigenbases but replaces the
//! Kronecker eigenvalues d_G d_Aᵀ by per-entry scalings S, the EMA (β) of the squared
//! per-sample gradients projected on the basis: with P_g = g Q_G and P_a = ũ Q_A,
//! S_batch = (P_g ⊙ P_g)ᵀ (P_a ⊙ P_a) / b — one product per layer, from the same recorded
//! statistics, every step (S restarts from S_batch when the basis is refreshed). The update is
//! V = Q_G [(Q_Gᵀ 𝒢 Q_A) / (S + δ)] Q_Aᵀ, then the same KL clip and momentum.
//!
//! Defaults are the reference's (ALGORITHMS.md 4.3): β = 0.95, δ = 1e-3, κ = 1e-3, t_inv = 10,
//! μ = 0.9. The reference lets the statistics objective's gradient leak into the update on
//! refresh steps; here the statistics pass never touches the update.
//!
//! Convolutions follow KFC (Grosse & Martens 2016). With ũ_{i,t} = [patch_{i,t}; 1] the unfolded
//! input at output position t (C·kh·kw + 1 entries, in the weight's (C, kh, kw) order) and
//! g_{i,t} the output gradient there, sample i's weight gradient is Σ_t g_{i,t} ũ_{i,t}ᵀ; under
//! spatial homogeneity and uncorrelated positions its second moment is L·E(ũũᵀ) ⊗ E(ggᵀ) over
//! the L positions. So A averages ũũᵀ over samples *and* positions, G sums g gᵀ over positions
//! and averages over samples:
//!
//! * A_batch = Σ_{i,t} ũ_{i,t}ũ_{i,t}ᵀ / (b·L),  G_batch = Σ_{i,t} g_{i,t} g_{i,t}ᵀ / b,
//!
//! which reduce to the dense formulas at L = 1. (PyTorch K-FAC ports in the ACKTR line divide
//! A by L once more and multiply G by L, i.e. they drop KFC's factor L from the product; the KL
//! clip bounds the step either way.) EK-FAC's scalings use the exact per-sample gradients,
//! S_batch = Σ_i ((G_i Q_G)ᵀ(U_i Q_A))^⊙2 / b, with U_i (L, C·kh·kw + 1) and G_i (L, out).

#![warn(missing_docs)]

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use rat_core::layers::{Recorder, Site, SiteKind, unfold};
use rat_core::{Error, Result, linalg};

/// K-FAC's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KfacOptions {
    /// β, the EMA decay of the factors.
    pub stat_decay: f64,
    /// δ, added to every eigenvalue product.
    pub damping: f64,
    /// κ, the KL clip.
    pub kl_clip: f64,
    /// Refresh G and the eigen-decompositions every this many steps.
    pub t_inv: usize,
    /// μ, the SGD momentum.
    pub momentum: f64,
    /// EK-FAC: per-entry scalings in the Kronecker eigenbasis instead of d_G d_Aᵀ.
    pub eigen_corrected: bool,
}

impl Default for KfacOptions {
    fn default() -> Self {
        Self {
            stat_decay: 0.95,
            damping: 1e-3,
            kl_clip: 1e-3,
            t_inv: 10,
            momentum: 0.9,
            eigen_corrected: false,
        }
    }
}

/// One dense or convolutional layer's factors and their eigen-decompositions.
#[derive(Debug, Clone)]
struct Factors {
    a: Tensor,
    g: Tensor,
    /// [d_A, Q_A, d_G, Q_G] and the step they were computed at.
    eig: Option<([Tensor; 4], usize)>,
    /// EK-FAC's scalings in the current basis.
    s: Option<Tensor>,
}

/// The K-FAC optimiser state: factors per dense or convolutional layer, step count, momentum
/// buffers.
#[derive(Debug, Clone)]
pub struct Kfac {
    /// The hyperparameters.
    pub opts: KfacOptions,
    layers: Vec<Option<Factors>>,
    steps: usize,
    buf: Option<Vec<Tensor>>,
}

fn invalid<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(Error::InvalidArgument {
        op,
        msg: msg.into(),
    })
}

/// [u; 1] (b, in + 1).
fn with_ones(u: &Tensor) -> Result<Tensor> {
    let ones = Tensor::ones((u.dims()[0], 1), u.dtype(), u.device())?;
    Ok(Tensor::cat(&[u, &ones], 1)?)
}

/// A covered layer's input rows ũ and its number of output positions L: (b, in + 1) and 1 for a
/// dense layer, (b·L, C·kh·kw + 1) and L for a convolution; `None` for other sites.
fn input_rows(site: &Site) -> Result<Option<(Tensor, usize)>> {
    match site.kind() {
        SiteKind::Dense { input } => Ok(Some((with_ones(input)?, 1))),
        SiteKind::Conv2d { input, geometry } => {
            let u = unfold(input, geometry.kernel, geometry.stride, geometry.padding)?;
            let (b, c, kk, l) = u.dims4()?;
            let u = u
                .reshape((b, c * kk, l))?
                .transpose(1, 2)?
                .reshape((b * l, c * kk))?;
            Ok(Some((with_ones(&u)?, l)))
        }
        SiteKind::Broadcast => Ok(None),
    }
}

/// A covered layer's output-gradient rows g: (b, out) for a dense layer, (b·L, out) for a
/// convolution (one row per sample and output position), from the gradient of its probe.
fn grad_rows(site: &Site, grads: &GradStore) -> Result<Tensor> {
    let g = match grads.get(site.probe().as_tensor()) {
        Some(g) => g.clone(),
        None => site.probe().as_tensor().zeros_like()?,
    };
    match g.dims() {
        [_, _] => Ok(g),
        [b, out, h, w] => Ok(g
            .reshape((*b, *out, h * w))?
            .transpose(1, 2)?
            .reshape((b * h * w, *out))?),
        d => invalid("Kfac", format!("unexpected output-gradient shape {d:?}")),
    }
}

/// Maps a batch statistic averaged over this process's rows to the one averaged over the whole
/// minibatch (see [`Kfac::update_a_with`]).
pub type BatchMean<'a> = dyn Fn(Tensor) -> Result<Tensor> + 'a;

/// The statistic of a minibatch this process holds whole.
fn whole(t: Tensor) -> Result<Tensor> {
    Ok(t)
}

fn ema(old: &Tensor, new: &Tensor, beta: f64) -> Result<Tensor> {
    Ok(old.affine(beta, 0.0)?.add(&new.affine(1.0 - beta, 0.0)?)?)
}

impl Kfac {
    /// A fresh state.
    pub fn new(opts: KfacOptions) -> Result<Self> {
        if !(opts.stat_decay >= 0.0 && opts.stat_decay < 1.0) {
            return invalid("Kfac::new", "stat_decay must be in [0, 1)");
        }
        if !(opts.damping > 0.0 && opts.kl_clip > 0.0 && opts.t_inv > 0) {
            return invalid("Kfac::new", "damping, kl_clip and t_inv must be positive");
        }
        Ok(Self {
            opts,
            layers: Vec::new(),
            steps: 0,
            buf: None,
        })
    }

    /// Steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Whether this step refreshes G and the eigen-decompositions (steps 0, t_inv, 2·t_inv, …).
    pub fn refresh_due(&self) -> bool {
        self.steps.is_multiple_of(self.opts.t_inv)
    }

    fn check_sites(&mut self, rec: &Recorder) -> Result<()> {
        if self.layers.is_empty() {
            self.layers = vec![None; rec.sites().len()];
        }
        if self.layers.len() != rec.sites().len() {
            return invalid("Kfac", "the recorder's layers changed between steps");
        }
        Ok(())
    }

    /// A ← β·A + (1 − β)·ũᵀũ / (b·L) for every dense (L = 1) and convolutional layer of a
    /// recorded forward pass.
    pub fn update_a(&mut self, rec: &Recorder) -> Result<()> {
        self.update_a_with(rec, &whole)
    }

    /// [`update_a`](Self::update_a) with each layer's batch statistic (a mean over this
    /// process's rows) passed through `mean` first: the whole minibatch's mean when its rows are
    /// split over processes (the identity otherwise). Likewise the `_with` forms below.
    pub fn update_a_with(&mut self, rec: &Recorder, mean: &BatchMean<'_>) -> Result<()> {
        self.check_sites(rec)?;
        let beta = self.opts.stat_decay;
        for (slot, site) in self.layers.iter_mut().zip(rec.sites()) {
            let Some((u, _)) = input_rows(site)? else {
                continue;
            };
            let rows = u.dims()[0] as f64;
            let stat = mean(u.t()?.matmul(&u)?.affine(1.0 / rows, 0.0)?)?;
            let f = match slot {
                Some(f) => f,
                None => slot.insert(Factors {
                    a: Tensor::eye(u.dims()[1], u.dtype(), u.device())?,
                    g: Tensor::eye(site.probe().dims()[1], u.dtype(), u.device())?,
                    eig: None,
                    s: None,
                }),
            };
            f.a = ema(&f.a, &stat, beta)?;
        }
        Ok(())
    }

    /// G ← β·G + (1 − β)·gᵀg / b, with g the per-sample output gradients in `grads` (one row
    /// per sample and, for a convolution, output position), a backward pass of the statistics
    /// objective Σ_i ℓ_i through the recorded forward pass (ℓ_i = log π at the stored or at
    /// re-sampled actions). Call after [`update_a`](Self::update_a).
    pub fn update_g(&mut self, rec: &Recorder, grads: &GradStore) -> Result<()> {
        self.update_g_with(rec, grads, &whole)
    }

    /// [`update_g`](Self::update_g) with the batch statistic passed through `mean`.
    pub fn update_g_with(
        &mut self,
        rec: &Recorder,
        grads: &GradStore,
        mean: &BatchMean<'_>,
    ) -> Result<()> {
        self.check_sites(rec)?;
        let beta = self.opts.stat_decay;
        for (slot, site) in self.layers.iter_mut().zip(rec.sites()) {
            let Some(f) = slot.as_mut() else {
                continue;
            };
            let g = grad_rows(site, grads)?;
            let b = site.probe().dims()[0] as f64;
            f.g = ema(&f.g, &mean(g.t()?.matmul(&g)?.affine(1.0 / b, 0.0)?)?, beta)?;
        }
        Ok(())
    }

    /// Recomputes the eigen-decompositions when a refresh is due (once per step) or missing.
    fn ensure_eigen(&mut self) -> Result<()> {
        let (refresh, step) = (self.refresh_due(), self.steps);
        for f in self.layers.iter_mut().flatten() {
            let stale = match &f.eig {
                None => true,
                Some((_, at)) => refresh && *at != step,
            };
            if !stale {
                continue;
            }
            let (da, qa) = linalg::sym_eigh(&f.a)?;
            let (dg, qg) = linalg::sym_eigh(&f.g)?;
            let keep =
                |d: Tensor| -> Result<Tensor> { Ok(d.mul(&d.gt(1e-10)?.to_dtype(d.dtype())?)?) };
            f.eig = Some(([keep(da)?, qa, keep(dg)?, qg], step));
            f.s = None;
        }
        Ok(())
    }

    /// EK-FAC: S ← β·S + (1 − β)·S_batch in the current eigenbasis (S ← S_batch right after a
    /// refresh), S_batch the mean squared projected per-sample gradient: (P_g ⊙ P_g)ᵀ(P_a ⊙ P_a)/b
    /// for a dense layer, Σ_i ((G_i Q_G)ᵀ(U_i Q_A))^⊙2 / b for a convolution, from the recorded
    /// inputs and the per-sample output gradients in `grads`. Does nothing for plain K-FAC.
    /// Call after [`update_g`](Self::update_g).
    pub fn update_scales(&mut self, rec: &Recorder, grads: &GradStore) -> Result<()> {
        self.update_scales_with(rec, grads, &whole)
    }

    /// [`update_scales`](Self::update_scales) with the batch statistic passed through `mean`.
    pub fn update_scales_with(
        &mut self,
        rec: &Recorder,
        grads: &GradStore,
        mean: &BatchMean<'_>,
    ) -> Result<()> {
        if !self.opts.eigen_corrected {
            return Ok(());
        }
        self.check_sites(rec)?;
        self.ensure_eigen()?;
        let beta = self.opts.stat_decay;
        for (slot, site) in self.layers.iter_mut().zip(rec.sites()) {
            let Some(f) = slot.as_mut() else {
                continue;
            };
            let Some(([_, qa, _, qg], _)) = &f.eig else {
                continue;
            };
            let Some((u, l)) = input_rows(site)? else {
                continue;
            };
            let g = grad_rows(site, grads)?;
            let b = site.probe().dims()[0];
            let (pg, pa) = (g.matmul(qg)?, u.matmul(qa)?);
            let batch = if l == 1 {
                pg.sqr()?.t()?.matmul(&pa.sqr()?)?
            } else {
                // Per-sample gradients projected on the basis: (b, out, L) @ (b, L, in').
                let pg = pg.reshape((b, l, pg.dims()[1]))?.transpose(1, 2)?;
                let pa = pa.reshape((b, l, pa.dims()[1]))?;
                pg.matmul(&pa)?.sqr()?.sum(0)?
            };
            let batch = mean(batch.affine(1.0 / b as f64, 0.0)?)?;
            f.s = Some(match &f.s {
                Some(s) => ema(s, &batch, beta)?,
                None => batch,
            });
        }
        Ok(())
    }

    /// The preconditioned, KL-clipped step directions for loss gradients `grads` (one tensor per
    /// parameter of `rec`, in its order), refreshing the eigen-decompositions when due. Returns
    /// the directions and ν.
    pub fn precondition(
        &mut self,
        rec: &Recorder,
        grads: &[Tensor],
        lr: f64,
    ) -> Result<(Vec<Tensor>, f64)> {
        const OP: &str = "Kfac::precondition";
        self.check_sites(rec)?;
        if grads.len() != rec.params().len() {
            return invalid(
                OP,
                format!(
                    "{} gradients for {} parameters",
                    grads.len(),
                    rec.params().len()
                ),
            );
        }
        self.ensure_eigen()?;
        let mut out = Vec::with_capacity(grads.len());
        let mut dense = Vec::new();
        let mut quad = 0.0;
        let mut k = 0;
        for (slot, site) in self.layers.iter_mut().zip(rec.sites()) {
            let n = site.params().len();
            let block = &grads[k..k + n];
            k += n;
            let Some(f) = slot.as_mut() else {
                out.extend(block.iter().cloned());
                continue;
            };
            let Some(([da, qa, dg, qg], _)) = f.eig.as_ref() else {
                return invalid(OP, "no eigen-decomposition for a covered layer");
            };
            let (w, bias) = (&block[0], &block[1]);
            // A convolution's weight (out, C, kh, kw) as (out, C·kh·kw), the order of ũ.
            let w = w.flatten_from(1)?;
            let gm = Tensor::cat(&[&w, &bias.unsqueeze(1)?], 1)?;
            let inner = qg.t()?.matmul(&gm)?.matmul(qa)?;
            let scale = match (&f.s, self.opts.eigen_corrected) {
                (Some(s), true) => s.clone(),
                (None, true) => {
                    return invalid(OP, "EK-FAC needs update_scales before precondition");
                }
                _ => dg.unsqueeze(1)?.matmul(&da.unsqueeze(0)?)?,
            };
            let denom = scale.affine(1.0, self.opts.damping)?;
            let v = qg.matmul(&inner.div(&denom)?)?.matmul(&qa.t()?)?;
            quad += v
                .mul(&gm)?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            dense.push(out.len());
            let cols = w.dims()[1];
            out.push(v.narrow(1, 0, cols)?.reshape(block[0].shape())?);
            out.push(v.narrow(1, cols, 1)?.squeeze(1)?.contiguous()?);
        }
        let nu = if quad > 0.0 {
            (self.opts.kl_clip / (quad * lr * lr)).sqrt().min(1.0)
        } else {
            1.0
        };
        for i in dense {
            out[i] = out[i].affine(nu, 0.0)?;
            out[i + 1] = out[i + 1].affine(nu, 0.0)?;
        }
        Ok((out, nu))
    }

    /// The momentum update with directions `d`: buf ← d on the first step, then
    /// buf ← μ·buf + d; counts the step. Returns buf (θ ← θ − lr·buf).
    pub fn momentum_step(&mut self, d: &[Tensor]) -> Result<&[Tensor]> {
        let buf = match self.buf.take() {
            None => d.to_vec(),
            Some(b) => b
                .iter()
                .zip(d)
                .map(|(b, x)| Ok(b.affine(self.opts.momentum, 0.0)?.add(x)?))
                .collect::<Result<Vec<_>>>()?,
        };
        self.steps += 1;
        Ok(self.buf.insert(buf))
    }

    /// The factors and buffers to checkpoint, by name.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (i, f) in self.layers.iter().enumerate() {
            if let Some(f) = f {
                out.push((format!("A.{i}"), f.a.clone()));
                out.push((format!("G.{i}"), f.g.clone()));
            }
        }
        for (i, b) in self.buf.iter().flatten().enumerate() {
            out.push((format!("momentum_buffer.{i}"), b.clone()));
        }
        if let Ok(t) = Tensor::new(&[self.steps as f64], &candle_core::Device::Cpu) {
            out.push(("steps".into(), t));
        }
        out
    }

    /// Restores what [`state`](Self::state) saved (eigen-decompositions are recomputed and
    /// EK-FAC's scalings restart from the next minibatch).
    pub fn load_state(
        &mut self,
        state: &std::collections::HashMap<String, Tensor>,
        num_sites: usize,
    ) -> Result<()> {
        self.layers = (0..num_sites)
            .map(
                |i| match (state.get(&format!("A.{i}")), state.get(&format!("G.{i}"))) {
                    (Some(a), Some(g)) => Some(Factors {
                        a: a.clone(),
                        g: g.clone(),
                        eig: None,
                        s: None,
                    }),
                    _ => None,
                },
            )
            .collect();
        let buf: Vec<Tensor> = (0..)
            .map_while(|i| state.get(&format!("momentum_buffer.{i}")).cloned())
            .collect();
        self.buf = (!buf.is_empty()).then_some(buf);
        if let Some(s) = state.get("steps") {
            self.steps = s
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?
                .first()
                .copied()
                .unwrap_or(0.0) as usize;
        }
        Ok(())
    }
}
