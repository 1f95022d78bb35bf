//! Parameter-space vectors: a `Vec<Tensor>` with one tensor per parameter, in a fixed order.
//!
//! Every function that takes or returns a vector in parameter space (J v, Jᵀ w, Fisher-vector
//! products, gradients, momentum buffers) uses this representation. The order is the one of the
//! [`Recorder`](crate::layers::Recorder) sites (or the parameter list handed to a materialised
//! Jacobian); it defines the columns of J and must be the same everywhere a vector is flattened.

use candle_core::backprop::GradStore;
use candle_core::{Shape, Tensor, Var};

use crate::error::{Result, shape_err};

/// Checks that `v` has one tensor per shape in `shapes`, each of that shape.
pub fn check_shapes(op: &'static str, shapes: &[Shape], v: &[Tensor]) -> Result<()> {
    if shapes.len() != v.len() {
        return shape_err(
            op,
            format!(
                "expected {} parameter tensors, got {}",
                shapes.len(),
                v.len()
            ),
        );
    }
    for (i, (s, t)) in shapes.iter().zip(v).enumerate() {
        if s != t.shape() {
            return shape_err(
                op,
                format!("parameter {i}: expected {s:?}, got {:?}", t.shape()),
            );
        }
    }
    Ok(())
}

/// Concatenates the flattened (row-major) tensors into one vector of length P = Σ numel.
pub fn flatten(v: &[Tensor]) -> Result<Tensor> {
    if v.is_empty() {
        return shape_err("params::flatten", "no tensors to flatten");
    }
    let parts = v
        .iter()
        .map(|t| t.flatten_all())
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts, 0)?)
}

/// Splits a flat vector of length Σ numel(shapes) back into tensors of the given shapes.
pub fn unflatten(flat: &Tensor, shapes: &[Shape]) -> Result<Vec<Tensor>> {
    let total: usize = shapes.iter().map(|s| s.elem_count()).sum();
    if flat.dims() != [total] {
        return shape_err(
            "params::unflatten",
            format!("expected a vector of {total}, got {:?}", flat.shape()),
        );
    }
    let mut out = Vec::with_capacity(shapes.len());
    let mut offset = 0;
    for s in shapes {
        let n = s.elem_count();
        out.push(flat.narrow(0, offset, n)?.reshape(s)?);
        offset += n;
    }
    Ok(out)
}

/// ⟨u, v⟩ = Σ_k Σ u_k ⊙ v_k, accumulated in f64.
pub fn dot(u: &[Tensor], v: &[Tensor]) -> Result<f64> {
    if u.len() != v.len() {
        return shape_err(
            "params::dot",
            format!("{} tensors against {}", u.len(), v.len()),
        );
    }
    let mut acc = 0.0;
    for (a, b) in u.iter().zip(v) {
        acc += a
            .mul(b)?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    Ok(acc)
}

/// ‖v‖² = ⟨v, v⟩.
pub fn sq_norm(v: &[Tensor]) -> Result<f64> {
    dot(v, v)
}

/// α · v.
pub fn scale(v: &[Tensor], alpha: f64) -> Result<Vec<Tensor>> {
    Ok(v.iter()
        .map(|t| t.affine(alpha, 0.0))
        .collect::<candle_core::Result<_>>()?)
}

/// α · u + v.
pub fn axpy(alpha: f64, u: &[Tensor], v: &[Tensor]) -> Result<Vec<Tensor>> {
    if u.len() != v.len() {
        return shape_err(
            "params::axpy",
            format!("{} tensors against {}", u.len(), v.len()),
        );
    }
    Ok(u.iter()
        .zip(v)
        .map(|(a, b)| a.affine(alpha, 0.0)?.add(b))
        .collect::<candle_core::Result<_>>()?)
}

/// Zeros of the given shapes, dtype and device.
pub fn zeros(
    shapes: &[Shape],
    dtype: candle_core::DType,
    device: &candle_core::Device,
) -> Result<Vec<Tensor>> {
    Ok(shapes
        .iter()
        .map(|s| Tensor::zeros(s, dtype, device))
        .collect::<candle_core::Result<_>>()?)
}

/// Whether every element of every tensor is finite.
pub fn all_finite(v: &[Tensor]) -> Result<bool> {
    for t in v {
        if !tensor_is_finite(t)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether every element of `t` is finite (no NaN, no infinity).
pub fn tensor_is_finite(t: &Tensor) -> Result<bool> {
    // x − x is 0 for finite x and NaN for NaN or ±inf; the sum is NaN iff any element is.
    let s = t
        .sub(t)?
        .sum_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_scalar::<f64>()?;
    Ok(s == 0.0)
}

/// The gradients of `params` in a backward pass's `grads`, in their order; zeros for a parameter
/// the loss does not depend on.
pub fn gradients(grads: &GradStore, params: &[Var]) -> Result<Vec<Tensor>> {
    Ok(params
        .iter()
        .map(|p| {
            grads
                .get(p.as_tensor())
                .cloned()
                .map_or_else(|| p.as_tensor().zeros_like(), Ok)
        })
        .collect::<candle_core::Result<_>>()?)
}
