//! Host fast paths of the factored Jacobian (CPU tensors, f32/f64): faer's threaded and
//! lower-triangular products, reused scratch buffers, no b x b temporaries beyond the result.
//! [`FactoredJacobian::portable`](super::FactoredJacobian::portable) switches them off, which
//! is how the tests check that both paths agree.

use candle_core::{Device, Tensor};
use faer::{MatMut, MatRef};

use super::blocks::{Block, conv_kernel};
use crate::error::Result;
use crate::linalg::{self, Field};

/// The kernel on the host: lower-triangular Gram products (half the flops of full ones, in
/// reused scratch buffers) fused into a column-major lower-triangular accumulator, which is
/// mirrored into the result in one pass.
pub(super) fn kernel<T: Field>(blocks: &[Block], b: usize, device: &Device) -> Result<Tensor> {
    let bb = b * b;
    let one = T::from_f64(1.0);
    let gram = |dst: &mut [T], t: &Tensor| -> Result<()> {
        let (rows, cols) = t.dims2()?;
        let dst = MatMut::from_column_major_slice_mut(dst, b, b);
        linalg::with_host_slice(t, |x: &[T]| linalg::gram_lower_into(dst, x, rows, cols))
    };
    // The lower triangle of column j of a column-major b x b buffer.
    let lower = |j: usize| j * b + j..(j + 1) * b;
    linalg::with_scratch::<T, _>(3 * bb, |scratch| -> Result<Tensor> {
        let (k, rest) = scratch.split_at_mut(bb);
        let (aa, gg) = rest.split_at_mut(bb);
        k.iter_mut().for_each(|x| *x = T::from_f64(0.0));
        for block in blocks {
            match block {
                Block::Dense { a, g } => {
                    gram(aa, a)?;
                    gram(gg, g)?;
                    for j in 0..b {
                        let (r, x, y) = (lower(j), &aa[lower(j)], &gg[lower(j)]);
                        for ((kk, &x), &y) in k[r].iter_mut().zip(x).zip(y) {
                            *kk += (x + one) * y;
                        }
                    }
                }
                Block::Explicit { g, .. } => {
                    gram(gg, g)?;
                    for j in 0..b {
                        for (kk, &y) in k[lower(j)].iter_mut().zip(&gg[lower(j)]) {
                            *kk += y;
                        }
                    }
                }
                Block::Conv { u, g, mode, .. } => {
                    // Symmetric, so its row-major buffer is also column-major.
                    let term = conv_kernel(u, g, *mode)?.flatten_all()?.to_vec1::<T>()?;
                    k.iter_mut().zip(term).for_each(|(kk, t)| *kk += t);
                }
            }
        }
        // Row i of the result: K_ij = k[j·b + i] for j < i (the lower triangle, read across
        // columns), then k[i·b + j] for j ≥ i (column i, read down).
        let mut full = Vec::with_capacity(bb);
        for i in 0..b {
            full.extend((0..i).map(|j| k[j * b + i]));
            full.extend_from_slice(&k[lower(i)]);
        }
        Ok(Tensor::from_vec(full, (b, b), device)?)
    })
}

/// J v on the host for dense blocks: rowsum(G ⊙ (A Vᵀ + v_b)) with a threaded product.
pub(super) fn dense_jvp<T: Field>(
    a: &Tensor,
    g: &Tensor,
    vw: &Tensor,
    vb: &Tensor,
) -> Result<Tensor> {
    let ((b, din), dout) = (a.dims2()?, g.dims()[1]);
    let t: Vec<T> = linalg::with_host_slice(a, |av: &[T]| {
        linalg::with_host_slice(vw, |wv: &[T]| {
            linalg::matmul_host(
                MatRef::from_row_major_slice(av, b, din),
                MatRef::from_row_major_slice(wv, dout, din).transpose(),
            )
        })
    })??;
    let vb = vb.to_vec1::<T>()?;
    let out = linalg::with_host_slice(g, |gv: &[T]| {
        (0..b)
            .map(|i| {
                let (gi, ti) = (&gv[i * dout..(i + 1) * dout], &t[i * dout..(i + 1) * dout]);
                gi.iter()
                    .zip(ti)
                    .zip(&vb)
                    .fold(T::from_f64(0.0), |s, ((&g, &t), &c)| s + g * (t + c))
            })
            .collect::<Vec<T>>()
    })?;
    Ok(Tensor::from_vec(out, b, a.device())?)
}

/// Jᵀ w on the host for dense blocks: V = (G ⊙ w)ᵀ A, v_b = Gᵀ w.
pub(super) fn dense_vjp<T: Field>(a: &Tensor, g: &Tensor, w: &[T]) -> Result<(Tensor, Tensor)> {
    let ((b, din), dout) = (a.dims2()?, g.dims()[1]);
    let mut gw = g.flatten_all()?.to_vec1::<T>()?;
    let mut vb = vec![T::from_f64(0.0); dout];
    for (row, &wi) in gw.chunks_mut(dout).zip(w) {
        for (x, acc) in row.iter_mut().zip(vb.iter_mut()) {
            *x *= wi;
            *acc += *x;
        }
    }
    let vw = linalg::with_host_slice(a, |av: &[T]| {
        linalg::matmul_host(
            MatRef::from_row_major_slice(&gw, b, dout).transpose(),
            MatRef::from_row_major_slice(av, b, din),
        )
    })?;
    Ok((
        Tensor::from_vec(vw, (dout, din), a.device())?,
        Tensor::from_vec(vb, dout, a.device())?,
    ))
}
