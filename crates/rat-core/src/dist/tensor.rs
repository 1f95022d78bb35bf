//! The collectives on candle tensors: host round trips for f32 and f64 tensors on any device
//! (for one rank, the tensor itself), so that the update rules can call them on gradients,
//! factors and statistics as they are.

use candle_core::{DType, Tensor};

use super::Communicator;
use crate::{Error, Result};

fn unsupported(op: &'static str, dtype: DType) -> Error {
    Error::InvalidArgument {
        op,
        msg: format!("{dtype:?} tensors (f32 and f64 only)"),
    }
}

/// Σ_ranks t, element-wise, with t's shape, dtype and device.
pub fn all_reduce_sum(comm: &dyn Communicator, t: &Tensor) -> Result<Tensor> {
    if comm.size() == 1 {
        return Ok(t.clone());
    }
    let flat = t.flatten_all()?;
    let out = match t.dtype() {
        DType::F64 => {
            let mut v = flat.to_vec1::<f64>()?;
            comm.all_reduce_sum_f64(&mut v)?;
            Tensor::from_vec(v, t.shape(), t.device())?
        }
        DType::F32 => {
            let mut v = flat.to_vec1::<f32>()?;
            comm.all_reduce_sum_f32(&mut v)?;
            Tensor::from_vec(v, t.shape(), t.device())?
        }
        d => return Err(unsupported("all_reduce_sum", d)),
    };
    Ok(out)
}

/// Every rank's rows of `t` (shape (n_r, …), the trailing dims equal on every rank),
/// concatenated along dim 0 in rank order: shape (Σ n_r, …).
pub fn all_gather_rows(comm: &dyn Communicator, t: &Tensor) -> Result<Tensor> {
    if comm.size() == 1 {
        return Ok(t.clone());
    }
    let dims = t.dims();
    let Some((_, rest)) = dims.split_first() else {
        return Err(Error::InvalidArgument {
            op: "all_gather_rows",
            msg: "a scalar has no rows".into(),
        });
    };
    let row_len: usize = rest.iter().product();
    let flat = t.flatten_all()?;
    let out = match t.dtype() {
        DType::F64 => {
            let (v, _) = comm.all_gather_v_f64(&flat.to_vec1::<f64>()?)?;
            Tensor::new(v, t.device())?
        }
        DType::F32 => {
            let (v, _) = comm.all_gather_v_f32(&flat.to_vec1::<f32>()?)?;
            Tensor::new(v, t.device())?
        }
        d => return Err(unsupported("all_gather_rows", d)),
    };
    let count = out.elem_count();
    if row_len == 0 || count % row_len != 0 {
        return Err(Error::Shape {
            op: "all_gather_rows",
            msg: format!("{count} gathered values are not rows of {rest:?}"),
        });
    }
    let mut shape = dims.to_vec();
    shape[0] = count / row_len;
    Ok(out.reshape(shape)?)
}

/// Σ_ranks t like [`all_reduce_sum`], but summed on every rank in rank order from the gathered
/// parts, so that every rank gets the same bits for any R (an engine's all-reduce may associate
/// the partial sums differently on different ranks, and ranks that must stay bit-identical, as
/// RAT's sharded step does, cannot rely on it). Costs an all-gather of R·|t| values.
pub fn all_reduce_sum_ordered(comm: &dyn Communicator, t: &Tensor) -> Result<Tensor> {
    if comm.size() == 1 {
        return Ok(t.clone());
    }
    let n = t.elem_count();
    let flat = t.flatten_all()?;
    let (all, counts) = match t.dtype() {
        DType::F64 => comm.all_gather_v_f64(&flat.to_vec1::<f64>()?)?,
        DType::F32 => {
            let (v, c) = comm.all_gather_v_f32(&flat.to_vec1::<f32>()?)?;
            (v.into_iter().map(f64::from).collect(), c)
        }
        d => return Err(unsupported("all_reduce_sum_ordered", d)),
    };
    if counts.iter().any(|&c| c != n) {
        return Err(Error::Shape {
            op: "all_reduce_sum_ordered",
            msg: format!("the ranks summed tensors of different sizes: {counts:?}"),
        });
    }
    // Each partial sum rounded to t's dtype, as the engine's sum in that dtype would be.
    let mut sum = Tensor::new(&all[..n], t.device())?.to_dtype(t.dtype())?;
    for part in all.chunks(n.max(1)).skip(1) {
        sum = sum.add(&Tensor::new(part, t.device())?.to_dtype(t.dtype())?)?;
    }
    Ok(sum.reshape(t.shape())?)
}
