//! Dense linear algebra on tensors: Cholesky solve (optionally of a scaled, diagonally shifted
//! matrix), LU solve, the symmetric eigen-decomposition, and the lower-triangular Gram products
//! the factored kernel is built from.
//!
//! candle has no factorisations, so these dispatch on the tensor's device. On the CPU they run
//! faer in the tensor's own precision (f32 or f64), reading candle's row-major buffers directly.
//! With the `cuda` feature, CUDA tensors are factorised by cuSOLVER on their own device memory
//! and stream (`crate::cusolver`); any other device goes through the host (copy, faer, copy
//! back). A non-finite input, a failed factorisation or a non-finite result is an `Err`, never
//! NaN output.

use std::cell::RefCell;
use std::thread::LocalKey;

use candle_core::{DType, Device, Storage, Tensor, WithDType};
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::{factor as llt_factor, solve as llt_solve};
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::solvers::Solve;
use faer::{Accum, MatMut, MatRef, Par, Side};

use crate::error::{Error, Result, arg_err, shape_err};

/// Solves A X = B for symmetric positive-definite A (n x n) by Cholesky; B is (n) or (n, k).
/// A must be symmetric: only one of its triangles is read.
pub fn cholesky_solve(a: &Tensor, rhs: &Tensor) -> Result<Tensor> {
    cholesky_solve_shifted(a, 1.0, None, rhs)
}

/// Solves (s·A + diag(d)) X = B by Cholesky, for s·A + diag(d) symmetric positive definite;
/// `shift` is d (n), B is (n) or (n, k). A must be symmetric: only one of its triangles is read.
/// One pass over A
/// forms the matrix, so a regularised solve such as (K/b + λR⁻¹) φ = a needs no b x b
/// temporaries.
pub fn cholesky_solve_shifted(
    a: &Tensor,
    scale: f64,
    shift: Option<&Tensor>,
    rhs: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "cholesky_solve";
    let n = check_square(OP, a)?;
    check_rhs(OP, a, rhs, n)?;
    if let Some(d) = shift
        && (d.dims() != [n] || d.dtype() != a.dtype())
    {
        return shape_err(
            OP,
            format!(
                "diagonal shift must be ({n}) of the matrix dtype, got {:?} {:?}",
                d.shape(),
                d.dtype()
            ),
        );
    }
    if !scale.is_finite() {
        return arg_err(OP, format!("scale must be finite, got {scale}"));
    }
    #[cfg(feature = "cuda")]
    if let Some(dev) = crate::cusolver::cuda_device(a) {
        if rhs.elem_count() == 0 {
            return Ok(rhs.clone());
        }
        return match a.dtype() {
            DType::F32 => {
                crate::cusolver::cholesky_solve_shifted::<f32>(OP, a, scale, shift, rhs, &dev)
            }
            _ => crate::cusolver::cholesky_solve_shifted::<f64>(OP, a, scale, shift, rhs, &dev),
        };
    }
    match a.dtype() {
        DType::F32 => cholesky_host::<f32>(OP, a, scale, shift, rhs),
        _ => cholesky_host::<f64>(OP, a, scale, shift, rhs),
    }
}

/// Solves A X = B for a general square A (n x n) by LU with partial pivoting; B is (n) or (n, k).
pub fn lu_solve(a: &Tensor, rhs: &Tensor) -> Result<Tensor> {
    const OP: &str = "lu_solve";
    let n = check_square(OP, a)?;
    check_rhs(OP, a, rhs, n)?;
    #[cfg(feature = "cuda")]
    if let Some(dev) = crate::cusolver::cuda_device(a) {
        if rhs.elem_count() == 0 {
            return Ok(rhs.clone());
        }
        return match a.dtype() {
            DType::F32 => crate::cusolver::lu_solve::<f32>(OP, a, rhs, &dev),
            _ => crate::cusolver::lu_solve::<f64>(OP, a, rhs, &dev),
        };
    }
    match a.dtype() {
        DType::F32 => lu_host::<f32>(OP, a, rhs),
        _ => lu_host::<f64>(OP, a, rhs),
    }
}

/// The eigen-decomposition A = Q diag(d) Qᵀ of a symmetric A (n x n): returns (d, Q) with the
/// eigenvalues d (n) in non-decreasing order and the eigenvectors as the columns of Q (n x n).
/// Only the lower triangle of A is read.
pub fn sym_eigh(a: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "sym_eigh";
    check_square(OP, a)?;
    #[cfg(feature = "cuda")]
    if let Some(dev) = crate::cusolver::cuda_device(a) {
        return match a.dtype() {
            DType::F32 => crate::cusolver::sym_eigh::<f32>(OP, a, &dev),
            _ => crate::cusolver::sym_eigh::<f64>(OP, a, &dev),
        };
    }
    match a.dtype() {
        DType::F32 => eigh_host::<f32>(OP, a),
        _ => eigh_host::<f64>(OP, a),
    }
}

fn check_square(op: &'static str, a: &Tensor) -> Result<usize> {
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
    Ok(n)
}

fn check_rhs(op: &'static str, a: &Tensor, b: &Tensor, n: usize) -> Result<()> {
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
    Ok(())
}

/// The element types faer and candle share, each with a per-thread scratch buffer.
pub(crate) trait Field: faer::traits::RealField + WithDType + Copy {
    /// This thread's scratch buffer for this type.
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>>;
}

thread_local! {
    static SCRATCH_F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

impl Field for f32 {
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>> {
        &SCRATCH_F32
    }
}

impl Field for f64 {
    fn scratch() -> &'static LocalKey<RefCell<Vec<Self>>> {
        &SCRATCH_F64
    }
}

/// Runs `f` on a scratch slice of at least `len` elements (contents unspecified), reusing this
/// thread's buffer across calls: fresh multi-megabyte allocations cost more in page faults than
/// the arithmetic they hold (measured: 3–7 ms per 8 MB on the 2-core CI machine).
pub(crate) fn with_scratch<T: Field, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let mut buf = T::scratch().with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    if buf.len() < len {
        buf.resize(len, T::from_f64(0.0));
    }
    let out = f(&mut buf[..len]);
    T::scratch().with(|cell| *cell.borrow_mut() = buf);
    out
}

/// The row-major elements of `t` on the host, refusing non-finite values.
fn host_vec<T: Field>(op: &'static str, t: &Tensor, what: &'static str) -> Result<Vec<T>> {
    let v = t.flatten_all()?.to_vec1::<T>()?;
    if v.iter().any(|x| !x.to_f64().is_finite()) {
        return Err(Error::NonFinite { op, what });
    }
    Ok(v)
}

/// (rows, cols) of a vector (as one column) or a matrix.
fn rows_cols(t: &Tensor) -> (usize, usize) {
    match t.dims() {
        [r] => (*r, 1),
        [r, c, ..] => (*r, *c),
        [] => (1, 1),
    }
}

/// A faer solution back to a tensor shaped like `like`, refusing non-finite results.
fn to_tensor<T: Field>(op: &'static str, m: MatRef<'_, T>, like: &Tensor) -> Result<Tensor> {
    let (r, c) = (m.nrows(), m.ncols());
    let mut v = Vec::with_capacity(r * c);
    for i in 0..r {
        v.extend((0..c).map(|j| m[(i, j)]));
    }
    if v.iter().any(|x| !x.to_f64().is_finite()) {
        return Err(Error::Solve {
            op,
            msg: "the solution is not finite (the matrix is numerically singular)".into(),
        });
    }
    Ok(Tensor::from_vec(v, like.shape(), like.device())?)
}

fn cholesky_host<T: Field>(
    op: &'static str,
    a: &Tensor,
    scale: f64,
    shift: Option<&Tensor>,
    b: &Tensor,
) -> Result<Tensor> {
    let n = a.dims()[0];
    let shift = shift
        .map(|d| host_vec::<T>(op, d, "diagonal shift"))
        .transpose()?;
    let (br, bc) = rows_cols(b);
    // Column-major right-hand side; a single column is already in that order.
    let mut x = host_vec::<T>(op, b, "right-hand side")?;
    if bc > 1 {
        let rows = x.clone();
        for i in 0..br {
            for j in 0..bc {
                x[j * br + i] = rows[i * bc + j];
            }
        }
    }
    with_scratch::<T, _>(n * n, |m| {
        // One pass: copy, check, scale. The row-major buffer read column-major is Aᵀ = A.
        let finite = with_host_slice(a, |src: &[T]| {
            let s = T::from_f64(scale);
            let mut ok = true;
            for (d, &v) in m.iter_mut().zip(src) {
                ok &= v.to_f64().is_finite();
                *d = v * s;
            }
            ok
        })?;
        if !finite {
            return Err(Error::NonFinite { op, what: "matrix" });
        }
        if let Some(d) = &shift {
            for (i, &di) in d.iter().enumerate() {
                m[i * n + i] += di;
            }
        }
        let par = Par::rayon(0);
        let req = llt_factor::cholesky_in_place_scratch::<T>(n, par, Default::default())
            .or(llt_solve::solve_in_place_scratch::<T>(n, bc, par));
        let mut buf = MemBuffer::new(req);
        let stack = MemStack::new(&mut buf);
        let mut l = MatMut::from_column_major_slice_mut(m, n, n);
        llt_factor::cholesky_in_place(
            l.as_mut(),
            Default::default(),
            par,
            stack,
            Default::default(),
        )
        .map_err(|_| Error::NotPositiveDefinite { op })?;
        llt_solve::solve_in_place(
            l.as_ref(),
            MatMut::from_column_major_slice_mut(&mut x, br, bc),
            par,
            stack,
        );
        Ok(())
    })?;
    to_tensor(op, MatRef::from_column_major_slice(&x, br, bc), b)
}

fn lu_host<T: Field>(op: &'static str, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let n = a.dims()[0];
    let m = host_vec::<T>(op, a, "matrix")?;
    let bv = host_vec::<T>(op, b, "right-hand side")?;
    let (br, bc) = rows_cols(b);
    let lu = MatRef::from_row_major_slice(&m, n, n).partial_piv_lu();
    to_tensor(
        op,
        lu.solve(MatRef::from_row_major_slice(&bv, br, bc)).as_ref(),
        b,
    )
}

fn eigh_host<T: Field>(op: &'static str, a: &Tensor) -> Result<(Tensor, Tensor)> {
    let n = a.dims()[0];
    let m = host_vec::<T>(op, a, "matrix")?;
    let evd = MatRef::from_row_major_slice(&m, n, n)
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| Error::Solve {
            op,
            msg: format!("eigen-decomposition did not converge: {e:?}"),
        })?;
    let s = evd.S().column_vector();
    let d = Tensor::from_vec((0..n).map(|i| s[i]).collect::<Vec<T>>(), n, a.device())?;
    Ok((d, to_tensor(op, evd.U(), a)?))
}

/// Runs `f` on the row-major elements of `t`: zero-copy for a contiguous host tensor, through a
/// host copy otherwise.
pub(crate) fn with_host_slice<T: Field, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    {
        let (storage, layout) = t.storage_and_layout();
        if let Storage::Cpu(cpu) = &*storage {
            let start = layout.start_offset();
            return Ok(f(&cpu.as_slice::<T>()?[start..start + t.elem_count()]));
        }
    }
    Ok(f(&t.flatten_all()?.to_vec1::<T>()?))
}

/// Writes the lower triangle (diagonal included) of X Xᵀ into `dst` (rows x rows), for X
/// (rows x cols) given row-major; the strict upper triangle of `dst` is not touched. Half the
/// flops of a full product.
pub(crate) fn gram_lower_into<T: Field>(dst: MatMut<'_, T>, x: &[T], rows: usize, cols: usize) {
    let xr = MatRef::from_row_major_slice(x, rows, cols);
    triangular::matmul(
        dst,
        BlockStructure::TriangularLower,
        Accum::Replace,
        xr,
        BlockStructure::Rectangular,
        xr.transpose(),
        BlockStructure::Rectangular,
        T::from_f64(1.0),
        Par::rayon(0),
    );
}

/// lhs · rhs as a row-major vector (lhs.nrows() x rhs.ncols()), threaded.
pub(crate) fn matmul_host<T: Field>(lhs: MatRef<'_, T>, rhs: MatRef<'_, T>) -> Vec<T> {
    let (m, n) = (lhs.nrows(), rhs.ncols());
    let mut out = vec![T::from_f64(0.0); m * n];
    faer::linalg::matmul::matmul(
        MatMut::from_row_major_slice_mut(&mut out, m, n),
        Accum::Replace,
        lhs,
        rhs,
        T::from_f64(1.0),
        Par::rayon(0),
    );
    out
}

/// Whether tensors of this device and dtype live in host memory as f32/f64, where the faer fast
/// paths apply directly.
pub(crate) fn is_host(device: &Device, dtype: DType) -> bool {
    matches!(device, Device::Cpu) && matches!(dtype, DType::F32 | DType::F64)
}
