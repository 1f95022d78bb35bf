//! The parameter blocks of a factored Jacobian and the convolution kernel they share: what
//! [`FactoredJacobian`](super::FactoredJacobian) records per layer, and what both its tensor path
//! and its host path (`host.rs`) read.

use candle_core::{Shape, Tensor};

use crate::error::Result;

/// How a convolution's contribution to the kernel J Jᵀ is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConvKernelMode {
    /// The cheaper of the two, by flop count, per layer.
    #[default]
    Auto,
    /// Σ_{p,q} (G_i G_jᵀ)_pq (Ũ_i Ũ_jᵀ)_pq over output positions: O((bL)² (out + D)) flops.
    Gram,
    /// Per-sample blocks G_iᵀ Ũ_i materialised, then their Gram matrix: O(b L out D + b² out D).
    Materialise,
}

/// Elements of the largest temporary a conv block may allocate at once (64 Mi elements).
const CHUNK_ELEMS: usize = 1 << 26;

#[derive(Debug, Clone)]
pub(super) enum Block {
    Dense {
        a: Tensor,
        g: Tensor,
    },
    Conv {
        u: Tensor,
        g: Tensor,
        weight_shape: Shape,
        mode: ConvKernelMode,
    },
    Explicit {
        g: Tensor,
        shape: Shape,
    },
}

/// Per-sample blocks G_iᵀ Ũ_i for samples [start, start + len), shape (len, out, D+1).
pub(super) fn conv_per_sample(u: &Tensor, g: &Tensor, start: usize, len: usize) -> Result<Tensor> {
    let gc = g.narrow(0, start, len)?.transpose(1, 2)?.contiguous()?;
    Ok(gc.matmul(&u.narrow(0, start, len)?)?)
}

/// Number of samples per chunk so that a temporary of `per_sample` elements each stays bounded.
pub(super) fn chunk_len(b: usize, per_sample: usize) -> usize {
    (CHUNK_ELEMS / per_sample.max(1)).clamp(1, b)
}

pub(super) fn conv_kernel(u: &Tensor, g: &Tensor, mode: ConvKernelMode) -> Result<Tensor> {
    conv_cross_kernel((u, g), (u, g), mode)
}

/// The conv block's rows of J_r Jᵀ: the samples of `rows` (Ũ, G) against those of `all`.
pub(super) fn conv_cross_kernel(
    (u, g): (&Tensor, &Tensor),
    (u_all, g_all): (&Tensor, &Tensor),
    mode: ConvKernelMode,
) -> Result<Tensor> {
    let (b, l, d1) = u.dims3()?;
    let b_all = u_all.dims()[0];
    let out = g.dims()[2];
    let mut rows = Vec::new();
    match mode {
        ConvKernelMode::Gram => {
            let uf = u.reshape((b * l, d1))?;
            let gf = g.reshape((b * l, out))?;
            let (uf_all, gf_all) = (
                u_all.reshape((b_all * l, d1))?,
                g_all.reshape((b_all * l, out))?,
            );
            let step = chunk_len(b, l * b_all * l);
            for start in (0..b).step_by(step) {
                let len = step.min(b - start);
                let gg = gf.narrow(0, start * l, len * l)?.matmul(&gf_all.t()?)?;
                let uu = uf.narrow(0, start * l, len * l)?.matmul(&uf_all.t()?)?;
                rows.push(gg.mul(&uu)?.reshape((len, l, b_all, l))?.sum(3)?.sum(1)?);
            }
        }
        _ => {
            let jc = conv_per_sample(u, g, 0, b)?.reshape((b, out * d1))?;
            // The whole kernel (one process) needs the per-sample blocks once.
            let jc_all = match u.id() == u_all.id() && g.id() == g_all.id() {
                true => jc.clone(),
                false => conv_per_sample(u_all, g_all, 0, b_all)?.reshape((b_all, out * d1))?,
            };
            return Ok(jc.matmul(&jc_all.t()?)?);
        }
    }
    Ok(Tensor::cat(&rows, 0)?)
}
