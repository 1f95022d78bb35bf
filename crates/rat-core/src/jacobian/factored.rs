//! The factored score Jacobian: J's products from recorded layer inputs and output gradients.
//!
//! For a dense layer with inputs A (b x in) and output gradients G (b x out), the block of row i
//! is [vec(g_i a_iᵀ), g_i], so
//!
//! * (J Jᵀ)_ij gets (a_i·a_j + 1)(g_i·g_j), i.e. K += (A Aᵀ + 1) ⊙ (G Gᵀ);
//! * (J v)_i gets g_iᵀ(V a_i + v_b), i.e. rowsum(G ⊙ (A Vᵀ + v_b));
//! * Jᵀ w gets V = (G ⊙ w)ᵀ A and v_b = Gᵀ w;
//! * diag(Jᵀ J) gets (G²)ᵀ(A²) and Σ_i g_i².
//!
//! A convolution is a dense layer applied at L positions with shared weights: with Ũ_i = [U_i | 1]
//! (L x D+1) the unfolded input and G_i (L x out) the output gradient, the block of row i is
//! G_iᵀ Ũ_i. Its kernel is either Σ_{p,q} (G_i G_jᵀ)_pq (Ũ_i Ũ_jᵀ)_pq (the spatial Gram form,
//! cheap when L is small) or J_c J_cᵀ with the per-sample blocks materialised (cheap when L is
//! large); [`ConvKernelMode::Auto`] picks the one with fewer flops, per layer.

use std::collections::HashSet;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Shape, Tensor, Var};

use super::blocks::{
    Block, ConvKernelMode, chunk_len, conv_cross_kernel, conv_kernel, conv_per_sample,
};
use super::{ScoreJacobian, check_sample_vector, host};
use crate::dist::{Communicator, tensor::all_gather_rows};
use crate::error::{Result, shape_err};
use crate::layers::{Recorder, SiteKind, unfold_rows};
use crate::linalg;
use crate::params;

/// J for a model built from [`crate::layers`], from one recorded forward and one backward pass.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use rat_core::jacobian::{FactoredJacobian, ScoreJacobian};
/// use rat_core::layers::{Dense, Layer, Recorder, Sequential};
/// use rand::SeedableRng;
///
/// # fn main() -> rat_core::Result<()> {
/// let dev = Device::Cpu;
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let net = Sequential::new(vec![
///     Layer::Dense(Dense::pytorch_init(3, 8, DType::F64, &dev, &mut rng)?),
///     Layer::Tanh,
///     Layer::Dense(Dense::pytorch_init(8, 1, DType::F64, &dev, &mut rng)?),
/// ]);
/// let x = Tensor::randn(0f64, 1.0, (5, 3), &dev)?;
/// let mut rec = Recorder::new();
/// let ell = net.forward(&x, Some(&mut rec))?.squeeze(1)?; // one scalar ℓ_i per sample
/// let jac = FactoredJacobian::from_objective(&rec, &ell)?;
/// assert_eq!(jac.kernel()?.dims(), &[5, 5]);
/// assert_eq!(jac.num_params(), 3 * 8 + 8 + 8 + 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct FactoredJacobian {
    blocks: Vec<Block>,
    params: Vec<Var>,
    /// Whether the host fast paths apply (CPU, f32/f64).
    host: bool,
    b: usize,
    dtype: DType,
    device: Device,
    /// The convolution kernel mode asked for (each conv block holds the one resolved for b).
    conv_mode: ConvKernelMode,
}

impl FactoredJacobian {
    /// Runs the backward pass of Σ_i ℓ_i for the per-sample objective `objective` (b), computed
    /// by a forward pass that used `rec`, and builds J from it.
    pub fn from_objective(rec: &Recorder, objective: &Tensor) -> Result<Self> {
        Self::from_objective_with(rec, objective, ConvKernelMode::Auto)
    }

    /// [`from_objective`](Self::from_objective) with an explicit convolution kernel mode.
    pub fn from_objective_with(
        rec: &Recorder,
        objective: &Tensor,
        mode: ConvKernelMode,
    ) -> Result<Self> {
        if objective.rank() != 1 {
            return shape_err(
                "FactoredJacobian::from_objective",
                format!(
                    "expected one objective per sample (b), got {:?}",
                    objective.shape()
                ),
            );
        }
        let grads = objective.sum_all()?.backward()?;
        Self::from_grads_with(rec, &grads, mode)
    }

    /// Builds J from a gradient store of a backward pass of Σ_i ℓ_i (a sum, not a mean).
    pub fn from_grads(rec: &Recorder, grads: &GradStore) -> Result<Self> {
        Self::from_grads_with(rec, grads, ConvKernelMode::Auto)
    }

    /// [`from_grads`](Self::from_grads) with an explicit convolution kernel mode.
    pub fn from_grads_with(
        rec: &Recorder,
        grads: &GradStore,
        mode: ConvKernelMode,
    ) -> Result<Self> {
        const OP: &str = "FactoredJacobian::from_grads";
        let sites = rec.sites();
        let Some(first) = sites.first() else {
            return shape_err(
                OP,
                "the recorder holds no layers: run the forward pass with Some(&mut recorder)",
            );
        };
        let b = first.probe().dims()[0];
        let (dtype, device) = (first.probe().dtype(), first.probe().device().clone());
        let mut seen = HashSet::new();
        let mut blocks = Vec::with_capacity(sites.len());
        for site in sites {
            for p in site.params() {
                if !seen.insert(p.as_tensor().id()) {
                    return shape_err(
                        OP,
                        "a parameter is used by two layers (weight sharing): use MaterialisedJacobian",
                    );
                }
            }
            let probe = site.probe();
            if probe.dims()[0] != b {
                return shape_err(
                    OP,
                    format!(
                        "layers disagree on the batch size ({} vs {b})",
                        probe.dims()[0]
                    ),
                );
            }
            // A layer that does not influence the objective has a zero output gradient.
            let g = match grads.get(probe.as_tensor()) {
                Some(g) => g.clone(),
                None => probe.as_tensor().zeros_like()?,
            };
            blocks.push(match site.kind() {
                SiteKind::Dense { input } => Block::Dense {
                    a: input.clone(),
                    g,
                },
                SiteKind::Broadcast => Block::Explicit {
                    g,
                    shape: site.params()[0].shape().clone(),
                },
                SiteKind::Conv2d { input, geometry } => {
                    // [U_i | 1] in one pass (a transpose and concatenation of `unfold` would
                    // cost more than the unfold itself).
                    let u = unfold_rows(
                        input,
                        geometry.kernel,
                        geometry.stride,
                        geometry.padding,
                        true,
                    )?;
                    let (_, l, d1) = u.dims3()?;
                    let out = g.dims()[1];
                    let g = g.reshape((b, out, l))?.transpose(1, 2)?.contiguous()?;
                    let weight_shape = site.params()[0].shape().clone();
                    let mode = resolve_conv_mode(mode, b, l, out, d1);
                    Block::Conv {
                        u,
                        g,
                        weight_shape,
                        mode,
                    }
                }
            });
        }
        Ok(Self {
            blocks,
            params: rec.params(),
            host: linalg::is_host(&device, dtype),
            b,
            dtype,
            device,
            conv_mode: mode,
        })
    }

    /// The Jacobian of every rank's rows, in rank order, on every rank: each layer's recorded
    /// inputs and output gradients all-gathered (`dist::tensor::all_gather_rows`), the
    /// parameters this rank's (which R ranks keep identical). The kernel of the result is the
    /// whole minibatch's; products with it cost what one process's do, so a sharded rule takes
    /// its own rows' J_r v and J_rᵀ w from `self` instead.
    pub fn gather_rows(&self, comm: &dyn Communicator) -> Result<Self> {
        if comm.size() == 1 {
            return Ok(self.clone());
        }
        let gather = |t: &Tensor| all_gather_rows(comm, t);
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            blocks.push(match block {
                Block::Dense { a, g } => Block::Dense {
                    a: gather(a)?,
                    g: gather(g)?,
                },
                Block::Explicit { g, shape } => Block::Explicit {
                    g: gather(g)?,
                    shape: shape.clone(),
                },
                Block::Conv {
                    u, g, weight_shape, ..
                } => {
                    let (u, g) = (gather(u)?, gather(g)?);
                    let (b, l, d1) = u.dims3()?;
                    let mode = resolve_conv_mode(self.conv_mode, b, l, g.dims()[2], d1);
                    Block::Conv {
                        u,
                        g,
                        weight_shape: weight_shape.clone(),
                        mode,
                    }
                }
            });
        }
        let b = match blocks.first() {
            Some(Block::Dense { a, .. }) => a.dims()[0],
            Some(Block::Explicit { g, .. } | Block::Conv { g, .. }) => g.dims()[0],
            None => 0,
        };
        Ok(Self {
            blocks,
            b,
            ..self.clone()
        })
    }

    /// J_r Jᵀ (b_r x b): this Jacobian's rows of the kernel of `all`, whose rows include
    /// them (rank r's rows against the gathered minibatch, [`gather_rows`](Self::gather_rows)),
    /// so that R ranks each build b_r x b of the b x b kernel. Candle tensor operations alone.
    pub fn kernel_rows(&self, all: &Self) -> Result<Tensor> {
        if all.blocks.len() != self.blocks.len() {
            return shape_err(
                "FactoredJacobian::kernel_rows",
                "the two Jacobians come from different networks",
            );
        }
        let mut k = Tensor::zeros((self.b, all.b), self.dtype, &self.device)?;
        for (block, other) in self.blocks.iter().zip(&all.blocks) {
            let term = match (block, other) {
                (Block::Dense { a, g }, Block::Dense { a: a2, g: g2 }) => a
                    .matmul(&a2.t()?)?
                    .affine(1.0, 1.0)?
                    .mul(&g.matmul(&g2.t()?)?)?,
                (Block::Explicit { g, .. }, Block::Explicit { g: g2, .. }) => g.matmul(&g2.t()?)?,
                (
                    Block::Conv { u, g, .. },
                    Block::Conv {
                        u: u2, g: g2, mode, ..
                    },
                ) => conv_cross_kernel((u, g), (u2, g2), *mode)?,
                _ => {
                    return shape_err(
                        "FactoredJacobian::kernel_rows",
                        "the two Jacobians' layers differ",
                    );
                }
            };
            k = k.add(&term)?;
        }
        Ok(k)
    }

    /// The parameters, in J's column order.
    pub fn params(&self) -> &[Var] {
        &self.params
    }

    /// Computes every product with candle tensor ops alone, as on a non-host device, instead of
    /// the host fast paths (faer's threaded and lower-triangular products). For testing the
    /// portable path on a CPU.
    pub fn portable(mut self) -> Self {
        self.host = false;
        self
    }

    fn kernel_candle(&self) -> Result<Tensor> {
        let mut k = Tensor::zeros((self.b, self.b), self.dtype, &self.device)?;
        for block in &self.blocks {
            let term = match block {
                Block::Dense { a, g } => a
                    .matmul(&a.t()?)?
                    .affine(1.0, 1.0)?
                    .mul(&g.matmul(&g.t()?)?)?,
                Block::Explicit { g, .. } => g.matmul(&g.t()?)?,
                Block::Conv { u, g, mode, .. } => conv_kernel(u, g, *mode)?,
            };
            k = k.add(&term)?;
        }
        Ok(k)
    }
}

fn resolve_conv_mode(
    mode: ConvKernelMode,
    b: usize,
    l: usize,
    out: usize,
    d1: usize,
) -> ConvKernelMode {
    if mode != ConvKernelMode::Auto {
        return mode;
    }
    let (b, l, out, d1) = (b as f64, l as f64, out as f64, d1 as f64);
    let materialise = 2.0 * b * l * out * d1 + 2.0 * b * b * out * d1;
    let gram = 2.0 * (b * l) * (b * l) * (out + d1 + 1.0);
    let chosen = if gram < materialise {
        ConvKernelMode::Gram
    } else {
        ConvKernelMode::Materialise
    };
    tracing::debug!(
        ?chosen,
        gram_flops = gram,
        materialise_flops = materialise,
        "conv kernel mode"
    );
    chosen
}

impl ScoreJacobian for FactoredJacobian {
    fn num_samples(&self) -> usize {
        self.b
    }

    fn param_shapes(&self) -> Vec<Shape> {
        self.params.iter().map(|p| p.shape().clone()).collect()
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn kernel(&self) -> Result<Tensor> {
        if self.host {
            return match self.dtype {
                DType::F32 => host::kernel::<f32>(&self.blocks, self.b, &self.device),
                _ => host::kernel::<f64>(&self.blocks, self.b, &self.device),
            };
        }
        self.kernel_candle()
    }

    fn jvp(&self, v: &[Tensor]) -> Result<Tensor> {
        params::check_shapes("FactoredJacobian::jvp", &self.param_shapes(), v)?;
        let mut out = Tensor::zeros(self.b, self.dtype, &self.device)?;
        let mut vs = v.iter();
        for block in &self.blocks {
            let term = match block {
                Block::Dense { a, g } => {
                    let (vw, vb) = (next(&mut vs)?, next(&mut vs)?);
                    match (self.host, self.dtype) {
                        (true, DType::F32) => host::dense_jvp::<f32>(a, g, vw, vb)?,
                        (true, _) => host::dense_jvp::<f64>(a, g, vw, vb)?,
                        _ => a.matmul(&vw.t()?)?.broadcast_add(vb)?.mul(g)?.sum(1)?,
                    }
                }
                Block::Explicit { g, .. } => {
                    let vp = next(&mut vs)?.flatten_all()?;
                    g.matmul(&vp.unsqueeze(1)?)?.squeeze(1)?
                }
                Block::Conv { u, g, .. } => {
                    let (vw, vb) = (next(&mut vs)?, next(&mut vs)?);
                    let out_ch = vw.dims()[0];
                    let vt = Tensor::cat(&[&vw.reshape((out_ch, ()))?, &vb.unsqueeze(1)?], 1)?;
                    u.broadcast_matmul(&vt.t()?)?.mul(g)?.sum((1, 2))?
                }
            };
            out = out.add(&term)?;
        }
        Ok(out)
    }

    fn vjp(&self, w: &Tensor) -> Result<Vec<Tensor>> {
        check_sample_vector("FactoredJacobian::vjp", w, self.b)?;
        let wc = w.unsqueeze(1)?;
        let mut out = Vec::with_capacity(self.params.len());
        for block in &self.blocks {
            match block {
                Block::Dense { a, g } => {
                    let (vw, vb) = match (self.host, self.dtype) {
                        (true, DType::F32) => host::dense_vjp(a, g, &w.to_vec1::<f32>()?)?,
                        (true, _) => host::dense_vjp(a, g, &w.to_vec1::<f64>()?)?,
                        _ => {
                            let gw = g.broadcast_mul(&wc)?;
                            (gw.t()?.matmul(a)?, gw.sum(0)?)
                        }
                    };
                    out.push(vw);
                    out.push(vb);
                }
                Block::Explicit { g, shape } => {
                    out.push(g.broadcast_mul(&wc)?.sum(0)?.reshape(shape)?)
                }
                Block::Conv {
                    u, g, weight_shape, ..
                } => {
                    let (b, l, d1) = u.dims3()?;
                    let out_ch = g.dims()[2];
                    let gw = g
                        .broadcast_mul(&w.reshape((b, 1, 1))?)?
                        .reshape((b * l, out_ch))?;
                    let full = gw.t()?.matmul(&u.reshape((b * l, d1))?)?;
                    out.push(full.narrow(1, 0, d1 - 1)?.reshape(weight_shape)?);
                    out.push(full.narrow(1, d1 - 1, 1)?.squeeze(1)?);
                }
            }
        }
        Ok(out)
    }

    fn sq_col_sums(&self) -> Result<Vec<Tensor>> {
        let mut out = Vec::with_capacity(self.params.len());
        for block in &self.blocks {
            match block {
                Block::Dense { a, g } => {
                    let g2 = g.sqr()?;
                    out.push(g2.t()?.matmul(&a.sqr()?)?);
                    out.push(g2.sum(0)?);
                }
                Block::Explicit { g, shape } => out.push(g.sqr()?.sum(0)?.reshape(shape)?),
                Block::Conv {
                    u, g, weight_shape, ..
                } => {
                    let (b, _, d1) = u.dims3()?;
                    let out_ch = g.dims()[2];
                    let mut acc = Tensor::zeros((out_ch, d1), self.dtype, &self.device)?;
                    let step = chunk_len(b, out_ch * d1);
                    for start in (0..b).step_by(step) {
                        let len = step.min(b - start);
                        acc = acc.add(&conv_per_sample(u, g, start, len)?.sqr()?.sum(0)?)?;
                    }
                    out.push(acc.narrow(1, 0, d1 - 1)?.reshape(weight_shape)?);
                    out.push(acc.narrow(1, d1 - 1, 1)?.squeeze(1)?);
                }
            }
        }
        Ok(out)
    }
}

fn next<'a>(it: &mut std::slice::Iter<'a, Tensor>) -> Result<&'a Tensor> {
    match it.next() {
        Some(t) => Ok(t),
        None => shape_err("FactoredJacobian", "fewer parameter tensors than layers"),
    }
}
