//! Dense solves on tensors: Cholesky solve, LU solve and the symmetric eigen-decomposition.
//!
//! candle has no factorisations, so these dispatch on the tensor's device. On the CPU they run
//! faer in the tensor's own precision (f32 or f64). Other devices currently go through the host
//! (copy, faer, copy back); a device-native implementation (cuSOLVER on CUDA) plugs in here
//! without touching any caller. A non-finite input, a failed factorisation or a non-finite result
//! is an `Err`, never NaN output.

use candle_core::{DType, Device, Tensor, WithDType};
use faer::linalg::solvers::Solve;
use faer::{Mat, Side};

use crate::error::{Error, Result, arg_err, shape_err};

/// Solves A X = B for symmetric positive-definite A (n x n) by Cholesky; B is (n) or (n, k).
/// Only the lower triangle of A is read.
pub fn cholesky_solve(a: &Tensor, rhs: &Tensor) -> Result<Tensor> {
    const OP: &str = "cholesky_solve";
    dispatch(OP, a, Some(rhs), |a, b| {
        Ok(vec![match a.dtype() {
            DType::F32 => cholesky_cpu::<f32>(OP, a, b)?,
            _ => cholesky_cpu::<f64>(OP, a, b)?,
        }])
    })
    .map(|mut v| v.remove(0))
}

/// Solves A X = B for a general square A (n x n) by LU with partial pivoting; B is (n) or (n, k).
pub fn lu_solve(a: &Tensor, rhs: &Tensor) -> Result<Tensor> {
    const OP: &str = "lu_solve";
    dispatch(OP, a, Some(rhs), |a, b| {
        Ok(vec![match a.dtype() {
            DType::F32 => lu_cpu::<f32>(OP, a, b)?,
            _ => lu_cpu::<f64>(OP, a, b)?,
        }])
    })
    .map(|mut v| v.remove(0))
}

/// The eigen-decomposition A = Q diag(d) Qᵀ of a symmetric A (n x n): returns (d, Q) with the
/// eigenvalues d (n) in non-decreasing order and the eigenvectors as the columns of Q (n x n).
/// Only the lower triangle of A is read.
pub fn sym_eigh(a: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "sym_eigh";
    let mut v = dispatch(OP, a, None, |a, _| match a.dtype() {
        DType::F32 => eigh_cpu::<f32>(OP, a),
        _ => eigh_cpu::<f64>(OP, a),
    })?;
    let q = v.remove(1);
    Ok((v.remove(0), q))
}

/// Validates shapes and dtypes, moves to the host if needed, runs `f` there, moves results back.
fn dispatch(
    op: &'static str,
    a: &Tensor,
    rhs: Option<&Tensor>,
    f: impl FnOnce(&Tensor, Option<&Tensor>) -> Result<Vec<Tensor>>,
) -> Result<Vec<Tensor>> {
    let n = match a.dims() {
        [r, c] if r == c && *r > 0 => *r,
        _ => {
            return shape_err(
                op,
                format!("expected a non-empty square matrix, got {:?}", a.shape()),
            );
        }
    };
    if !matches!(a.dtype(), DType::F32 | DType::F64) {
        return arg_err(
            op,
            format!("only f32 and f64 are supported, got {:?}", a.dtype()),
        );
    }
    if let Some(b) = rhs {
        if b.dims().first() != Some(&n) || b.rank() > 2 {
            return shape_err(
                op,
                format!(
                    "right-hand side {:?} does not fit a {n}x{n} matrix",
                    b.shape()
                ),
            );
        }
        if b.dtype() != a.dtype() {
            return arg_err(
                op,
                format!(
                    "matrix is {:?} but right-hand side is {:?}",
                    a.dtype(),
                    b.dtype()
                ),
            );
        }
    }
    match a.device() {
        Device::Cpu => f(a, rhs),
        device => {
            let a_host = a.to_device(&Device::Cpu)?;
            let b_host = rhs.map(|b| b.to_device(&Device::Cpu)).transpose()?;
            let out = f(&a_host, b_host.as_ref())?;
            Ok(out
                .iter()
                .map(|t| t.to_device(device))
                .collect::<candle_core::Result<_>>()?)
        }
    }
}

trait Field: faer::traits::RealField + WithDType + Copy {}
impl Field for f32 {}
impl Field for f64 {}

fn to_mat<T: Field>(op: &'static str, t: &Tensor, what: &'static str) -> Result<Mat<T>> {
    let (r, c) = match t.dims() {
        [r] => (*r, 1),
        [r, c] => (*r, *c),
        _ => {
            return shape_err(
                op,
                format!("{what} must be a vector or matrix, got {:?}", t.shape()),
            );
        }
    };
    let v = t.flatten_all()?.to_vec1::<T>()?;
    if v.iter().any(|x| !x.to_f64().is_finite()) {
        return Err(Error::NonFinite { op, what });
    }
    Ok(Mat::from_fn(r, c, |i, j| v[i * c + j]))
}

/// Back to a tensor of `shape` (the right-hand side's), refusing non-finite results.
fn from_mat<T: Field>(op: &'static str, m: &Mat<T>, like: &Tensor) -> Result<Tensor> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut v = Vec::with_capacity(r * c);
    for i in 0..r {
        for j in 0..c {
            v.push(m[(i, j)]);
        }
    }
    if v.iter().any(|x| !x.to_f64().is_finite()) {
        return Err(Error::Solve {
            op,
            msg: "the solution is not finite (the matrix is numerically singular)".into(),
        });
    }
    Ok(Tensor::from_vec(v, like.shape(), like.device())?)
}

fn cholesky_cpu<T: Field>(op: &'static str, a: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let b = b.ok_or_else(|| Error::InvalidArgument {
        op,
        msg: "missing right-hand side".into(),
    })?;
    let am = to_mat::<T>(op, a, "matrix")?;
    let bm = to_mat::<T>(op, b, "right-hand side")?;
    let llt = am
        .llt(Side::Lower)
        .map_err(|_| Error::NotPositiveDefinite { op })?;
    from_mat(op, &llt.solve(bm.as_ref()), b)
}

fn lu_cpu<T: Field>(op: &'static str, a: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let b = b.ok_or_else(|| Error::InvalidArgument {
        op,
        msg: "missing right-hand side".into(),
    })?;
    let am = to_mat::<T>(op, a, "matrix")?;
    let bm = to_mat::<T>(op, b, "right-hand side")?;
    from_mat(op, &am.partial_piv_lu().solve(bm.as_ref()), b)
}

fn eigh_cpu<T: Field>(op: &'static str, a: &Tensor) -> Result<Vec<Tensor>> {
    let n = a.dims()[0];
    let am = to_mat::<T>(op, a, "matrix")?;
    let evd = am
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::Solve {
            op,
            msg: format!("eigen-decomposition did not converge: {e:?}"),
        })?;
    let s = evd.S().column_vector();
    let d: Vec<T> = (0..n).map(|i| s[i]).collect();
    let d = Tensor::from_vec(d, n, a.device())?;
    let q = from_mat(op, &evd.U().to_owned(), a)?;
    Ok(vec![d, q])
}
