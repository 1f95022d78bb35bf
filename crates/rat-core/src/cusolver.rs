//! The CUDA side of [`crate::linalg`]: Cholesky, LU and symmetric eigen-decomposition by cuSOLVER
//! on the tensor's own device memory and stream (feature `cuda`). Only the factorisation's
//! status word and one finiteness scalar come back to the host, to turn a failed factorisation
//! or a non-finite result into an `Err`.
//!
//! cuSOLVER is column-major and candle row-major: a row-major buffer read column-major is the
//! transpose. A symmetric matrix needs no transpose, only the triangle named changes (the
//! row-major lower triangle is the column-major upper one): Cholesky reads the row-major upper
//! triangle and the eigen-decomposition the lower one, as the CPU path does. LU factors Aᵀ and
//! solves with `trans = T`; a row-major (n, k) right-hand side goes in as its transpose (k, n).

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_int;
use std::sync::Arc;

use candle_core::cuda_backend::cudarc::cusolver::{DnHandle, sys};
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaStream, DevicePtr, DevicePtrMut};
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage};
use candle_core::op::BackpropOp;
use candle_core::{DType, Device, Storage, Tensor, WithDType};

use crate::error::{Error, Result};

use sys::cublasFillMode_t::{CUBLAS_FILL_MODE_LOWER as LOWER, CUBLAS_FILL_MODE_UPPER as UPPER};

/// One cuSOLVER handle per thread and (context, stream), created on first use (creating one
/// costs milliseconds). The context is part of the key because candle's per-thread stream has
/// the same handle value (`CU_STREAM_PER_THREAD`) on every GPU; the thread, because that value
/// names a different stream in every thread, and a handle made in one thread and used from
/// another may launch into the first thread's stream, which ends with that thread. A cache shared
/// across threads hung test binaries whose tests solve on parallel threads (H200, 2026-12-04).
fn with_handle<R>(stream: &Arc<CudaStream>, f: impl FnOnce(&DnHandle) -> Result<R>) -> Result<R> {
    thread_local! {
        static HANDLES: RefCell<HashMap<(usize, usize), DnHandle>> = RefCell::new(HashMap::new());
    }
    let key = (
        stream.context().cu_ctx() as usize,
        stream.cu_stream() as usize,
    );
    HANDLES.with(|cell| {
        let mut map = cell.try_borrow_mut().map_err(|_| Error::Solve {
            op: "cusolver",
            msg: "a cuSOLVER call inside another on the same thread".into(),
        })?;
        let h = match map.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                DnHandle::new(stream.clone()).map_err(|err| solver_err("cusolverDnCreate", err))?,
            ),
        };
        f(h)
    })
}

fn solver_err(op: &'static str, e: impl std::fmt::Debug) -> Error {
    Error::Solve {
        op,
        msg: format!("cuSOLVER: {e:?}"),
    }
}

fn check(op: &'static str, status: sys::cusolverStatus_t) -> Result<()> {
    status.result().map_err(|e| solver_err(op, e))
}

/// The element types cuSOLVER's dense routines take (S and D).
pub(crate) trait Lapack:
    WithDType + CudaDType + candle_core::cuda_backend::cudarc::driver::DeviceRepr
{
    unsafe fn potrf_buffer(
        h: sys::cusolverDnHandle_t,
        n: c_int,
        a: *mut Self,
        lw: *mut c_int,
    ) -> sys::cusolverStatus_t;
    unsafe fn potrf(
        h: sys::cusolverDnHandle_t,
        n: c_int,
        a: *mut Self,
        w: *mut Self,
        lw: c_int,
        info: *mut c_int,
    ) -> sys::cusolverStatus_t;
    unsafe fn potrs(
        h: sys::cusolverDnHandle_t,
        n: c_int,
        k: c_int,
        a: *const Self,
        b: *mut Self,
        info: *mut c_int,
    ) -> sys::cusolverStatus_t;
    unsafe fn getrf_buffer(
        h: sys::cusolverDnHandle_t,
        n: c_int,
        a: *mut Self,
        lw: *mut c_int,
    ) -> sys::cusolverStatus_t;
    unsafe fn getrf(
        h: sys::cusolverDnHandle_t,
        n: c_int,
        a: *mut Self,
        w: *mut Self,
        piv: *mut c_int,
        info: *mut c_int,
    ) -> sys::cusolverStatus_t;
    unsafe fn getrs_t(
        h: sys::cusolverDnHandle_t,
        n: c_int,
        k: c_int,
        a: *const Self,
        piv: *const c_int,
        b: *mut Self,
        info: *mut c_int,
    ) -> sys::cusolverStatus_t;
    unsafe fn syevd_buffer(
        h: sys::cusolverDnHandle_t,
        n: c_int,
        a: *const Self,
        w: *const Self,
        lw: *mut c_int,
    ) -> sys::cusolverStatus_t;
    unsafe fn syevd(
        h: sys::cusolverDnHandle_t,
        n: c_int,
        a: *mut Self,
        w: *mut Self,
        work: *mut Self,
        lw: c_int,
        info: *mut c_int,
    ) -> sys::cusolverStatus_t;
}

macro_rules! lapack {
    ($t:ty, $potrf_b:ident, $potrf:ident, $potrs:ident, $getrf_b:ident, $getrf:ident, $getrs:ident, $syevd_b:ident, $syevd:ident) => {
        impl Lapack for $t {
            unsafe fn potrf_buffer(
                h: sys::cusolverDnHandle_t,
                n: c_int,
                a: *mut Self,
                lw: *mut c_int,
            ) -> sys::cusolverStatus_t {
                unsafe { sys::$potrf_b(h, LOWER, n, a, n, lw) }
            }
            unsafe fn potrf(
                h: sys::cusolverDnHandle_t,
                n: c_int,
                a: *mut Self,
                w: *mut Self,
                lw: c_int,
                info: *mut c_int,
            ) -> sys::cusolverStatus_t {
                unsafe { sys::$potrf(h, LOWER, n, a, n, w, lw, info) }
            }
            unsafe fn potrs(
                h: sys::cusolverDnHandle_t,
                n: c_int,
                k: c_int,
                a: *const Self,
                b: *mut Self,
                info: *mut c_int,
            ) -> sys::cusolverStatus_t {
                unsafe { sys::$potrs(h, LOWER, n, k, a, n, b, n, info) }
            }
            unsafe fn getrf_buffer(
                h: sys::cusolverDnHandle_t,
                n: c_int,
                a: *mut Self,
                lw: *mut c_int,
            ) -> sys::cusolverStatus_t {
                unsafe { sys::$getrf_b(h, n, n, a, n, lw) }
            }
            unsafe fn getrf(
                h: sys::cusolverDnHandle_t,
                n: c_int,
                a: *mut Self,
                w: *mut Self,
                piv: *mut c_int,
                info: *mut c_int,
            ) -> sys::cusolverStatus_t {
                unsafe { sys::$getrf(h, n, n, a, n, w, piv, info) }
            }
            unsafe fn getrs_t(
                h: sys::cusolverDnHandle_t,
                n: c_int,
                k: c_int,
                a: *const Self,
                piv: *const c_int,
                b: *mut Self,
                info: *mut c_int,
            ) -> sys::cusolverStatus_t {
                unsafe {
                    sys::$getrs(
                        h,
                        sys::cublasOperation_t::CUBLAS_OP_T,
                        n,
                        k,
                        a,
                        n,
                        piv,
                        b,
                        n,
                        info,
                    )
                }
            }
            unsafe fn syevd_buffer(
                h: sys::cusolverDnHandle_t,
                n: c_int,
                a: *const Self,
                w: *const Self,
                lw: *mut c_int,
            ) -> sys::cusolverStatus_t {
                unsafe {
                    sys::$syevd_b(
                        h,
                        sys::cusolverEigMode_t::CUSOLVER_EIG_MODE_VECTOR,
                        UPPER,
                        n,
                        a,
                        n,
                        w,
                        lw,
                    )
                }
            }
            unsafe fn syevd(
                h: sys::cusolverDnHandle_t,
                n: c_int,
                a: *mut Self,
                w: *mut Self,
                work: *mut Self,
                lw: c_int,
                info: *mut c_int,
            ) -> sys::cusolverStatus_t {
                unsafe {
                    sys::$syevd(
                        h,
                        sys::cusolverEigMode_t::CUSOLVER_EIG_MODE_VECTOR,
                        UPPER,
                        n,
                        a,
                        n,
                        w,
                        work,
                        lw,
                        info,
                    )
                }
            }
        }
    };
}

lapack!(
    f32,
    cusolverDnSpotrf_bufferSize,
    cusolverDnSpotrf,
    cusolverDnSpotrs,
    cusolverDnSgetrf_bufferSize,
    cusolverDnSgetrf,
    cusolverDnSgetrs,
    cusolverDnSsyevd_bufferSize,
    cusolverDnSsyevd
);
lapack!(
    f64,
    cusolverDnDpotrf_bufferSize,
    cusolverDnDpotrf,
    cusolverDnDpotrs,
    cusolverDnDgetrf_bufferSize,
    cusolverDnDgetrf,
    cusolverDnDgetrs,
    cusolverDnDsyevd_bufferSize,
    cusolverDnDsyevd
);

/// The CUDA device of a tensor, or `None` for other devices.
pub(crate) fn cuda_device(t: &Tensor) -> Option<CudaDevice> {
    match t.device() {
        Device::Cuda(d) => Some(d.clone()),
        _ => None,
    }
}

/// A private copy of a tensor's elements in row-major order on its device, for cuSOLVER to
/// overwrite.
fn owned_copy<T: Lapack>(t: &Tensor, dev: &CudaDevice) -> Result<CudaSlice<T>> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cuda(cuda) = &*storage else {
        return Err(Error::Solve {
            op: "cusolver",
            msg: "expected a CUDA tensor".into(),
        });
    };
    let src = cuda.as_cuda_slice::<T>()?;
    let start = layout.start_offset();
    let view = src.slice(start..start + t.elem_count());
    let stream = dev.cuda_stream();
    // SAFETY: every element is written by the copy below before it is read.
    let mut dst =
        unsafe { stream.alloc::<T>(t.elem_count()) }.map_err(|e| solver_err("cusolver", e))?;
    stream
        .memcpy_dtod(&view, &mut dst)
        .map_err(|e| solver_err("cusolver", e))?;
    Ok(dst)
}

/// A tensor of `shape` over `slice` (row-major), on `dev`.
fn wrap<T: Lapack>(slice: CudaSlice<T>, dev: &CudaDevice, shape: &[usize]) -> Tensor {
    let storage = CudaStorage::wrap_cuda_slice(slice, dev.clone());
    Tensor::from_storage(Storage::Cuda(storage), shape, BackpropOp::none(), false)
}

/// The status word cuSOLVER left in `info` (one small device-to-host copy).
fn read_info(stream: &Arc<CudaStream>, info: &CudaSlice<c_int>) -> Result<c_int> {
    let v = stream
        .clone_dtoh(info)
        .map_err(|e| solver_err("cusolver", e))?;
    Ok(v.first().copied().unwrap_or(0))
}

/// Refuses a non-finite input as the host path does (one scalar back to the host): cuSOLVER's
/// factorisations need not carry a NaN into their result (seen on an H200: getrf of the identity
/// with two NaN off the diagonal gave a finite solution).
fn finite_input(op: &'static str, t: &Tensor, what: &'static str) -> Result<()> {
    if all_finite(t)? {
        Ok(())
    } else {
        Err(Error::NonFinite { op, what })
    }
}

/// Whether every element of `t` is finite, from one reduction and one scalar back to the host;
/// in f64, so that a large but finite f32 tensor cannot overflow the sum.
fn all_finite(t: &Tensor) -> Result<bool> {
    let s = t
        .to_dtype(DType::F64)?
        .abs()?
        .sum_all()?
        .to_scalar::<f64>()?;
    Ok(s.is_finite())
}

/// Refuses a non-finite result (one scalar back to the host).
fn finite(op: &'static str, t: &Tensor) -> Result<Tensor> {
    if !all_finite(t)? {
        return Err(Error::Solve {
            op,
            msg: "the result is not finite (non-finite input or a numerically singular matrix)"
                .into(),
        });
    }
    Ok(t.clone())
}

/// Right-hand side B (n) or (n, k) as a column-major private copy, with k.
fn rhs_columns<T: Lapack>(b: &Tensor, dev: &CudaDevice) -> Result<(CudaSlice<T>, usize)> {
    match b.dims() {
        [_] => Ok((owned_copy::<T>(b, dev)?, 1)),
        [_, k] => Ok((owned_copy::<T>(&b.t()?, dev)?, *k)),
        _ => Err(Error::Solve {
            op: "cusolver",
            msg: format!("right-hand side of shape {:?}", b.shape()),
        }),
    }
}

/// The solution X back in B's row-major shape.
fn solution<T: Lapack>(x: CudaSlice<T>, dev: &CudaDevice, b: &Tensor, k: usize) -> Result<Tensor> {
    let n = b.dims()[0];
    Ok(match b.rank() {
        1 => wrap(x, dev, &[n]),
        _ => wrap(x, dev, &[k, n]).t()?.contiguous()?,
    })
}

fn int(n: usize) -> Result<c_int> {
    c_int::try_from(n).map_err(|_| Error::Solve {
        op: "cusolver",
        msg: format!("dimension {n} is too large for cuSOLVER"),
    })
}

/// (s·A + diag(d)) X = B by cuSOLVER's Cholesky (potrf + potrs).
pub(crate) fn cholesky_solve_shifted<T: Lapack>(
    op: &'static str,
    a: &Tensor,
    scale: f64,
    shift: Option<&Tensor>,
    b: &Tensor,
    dev: &CudaDevice,
) -> Result<Tensor> {
    finite_input(op, a, "matrix")?;
    finite_input(op, b, "right-hand side")?;
    let n = a.dims()[0];
    let mut m = a.affine(scale, 0.0)?;
    if let Some(d) = shift {
        let eye = Tensor::eye(n, a.dtype(), a.device())?;
        m = (m + eye.broadcast_mul(&d.unsqueeze(0)?)?)?;
    }
    let mut m = owned_copy::<T>(&m, dev)?;
    let (mut x, k) = rhs_columns::<T>(b, dev)?;
    let stream = dev.cuda_stream();
    let (ni, ki) = (int(n)?, int(k)?);
    with_handle(&stream, |h| {
        let mut info = stream
            .alloc_zeros::<c_int>(1)
            .map_err(|e| solver_err(op, e))?;
        let mut lwork: c_int = 0;
        {
            let (mp, _g) = m.device_ptr_mut(&stream);
            // SAFETY: m holds n x n elements on this stream.
            check(op, unsafe {
                T::potrf_buffer(h.cu(), ni, mp as *mut T, &mut lwork)
            })?;
        }
        // SAFETY: workspace of the size cuSOLVER asked for, written before read by cuSOLVER.
        let mut work =
            unsafe { stream.alloc::<T>(lwork.max(1) as usize) }.map_err(|e| solver_err(op, e))?;
        {
            let (mp, _g1) = m.device_ptr_mut(&stream);
            let (wp, _g2) = work.device_ptr_mut(&stream);
            let (ip, _g3) = info.device_ptr_mut(&stream);
            // SAFETY: buffers of the documented sizes, all on this stream.
            check(op, unsafe {
                T::potrf(
                    h.cu(),
                    ni,
                    mp as *mut T,
                    wp as *mut T,
                    lwork,
                    ip as *mut c_int,
                )
            })?;
        }
        if read_info(&stream, &info)? != 0 {
            return Err(Error::NotPositiveDefinite { op });
        }
        {
            let (mp, _g1) = m.device_ptr(&stream);
            let (xp, _g2) = x.device_ptr_mut(&stream);
            let (ip, _g3) = info.device_ptr_mut(&stream);
            // SAFETY: the factor (n x n) and the right-hand side (n x k), on this stream.
            check(op, unsafe {
                T::potrs(
                    h.cu(),
                    ni,
                    ki,
                    mp as *const T,
                    xp as *mut T,
                    ip as *mut c_int,
                )
            })?;
        }
        Ok(())
    })?;
    finite(op, &solution(x, dev, b, k)?)
}

/// A X = B by cuSOLVER's LU with partial pivoting (getrf + getrs).
pub(crate) fn lu_solve<T: Lapack>(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    dev: &CudaDevice,
) -> Result<Tensor> {
    finite_input(op, a, "matrix")?;
    finite_input(op, b, "right-hand side")?;
    let n = a.dims()[0];
    // Row-major A read column-major is Aᵀ: factor that and solve with its transpose.
    let mut m = owned_copy::<T>(a, dev)?;
    let (mut x, k) = rhs_columns::<T>(b, dev)?;
    let stream = dev.cuda_stream();
    let (ni, ki) = (int(n)?, int(k)?);
    with_handle(&stream, |h| {
        let mut info = stream
            .alloc_zeros::<c_int>(1)
            .map_err(|e| solver_err(op, e))?;
        let mut piv = stream
            .alloc_zeros::<c_int>(n)
            .map_err(|e| solver_err(op, e))?;
        let mut lwork: c_int = 0;
        {
            let (mp, _g) = m.device_ptr_mut(&stream);
            // SAFETY: m holds n x n elements on this stream.
            check(op, unsafe {
                T::getrf_buffer(h.cu(), ni, mp as *mut T, &mut lwork)
            })?;
        }
        // SAFETY: workspace of the size cuSOLVER asked for.
        let mut work =
            unsafe { stream.alloc::<T>(lwork.max(1) as usize) }.map_err(|e| solver_err(op, e))?;
        {
            let (mp, _g1) = m.device_ptr_mut(&stream);
            let (wp, _g2) = work.device_ptr_mut(&stream);
            let (pp, _g3) = piv.device_ptr_mut(&stream);
            let (ip, _g4) = info.device_ptr_mut(&stream);
            // SAFETY: buffers of the documented sizes, all on this stream.
            check(op, unsafe {
                T::getrf(
                    h.cu(),
                    ni,
                    mp as *mut T,
                    wp as *mut T,
                    pp as *mut c_int,
                    ip as *mut c_int,
                )
            })?;
        }
        if read_info(&stream, &info)? != 0 {
            return Err(Error::Solve {
                op,
                msg: "the matrix is singular".into(),
            });
        }
        {
            let (mp, _g1) = m.device_ptr(&stream);
            let (pp, _g2) = piv.device_ptr(&stream);
            let (xp, _g3) = x.device_ptr_mut(&stream);
            let (ip, _g4) = info.device_ptr_mut(&stream);
            // SAFETY: the factors, pivots and right-hand side, on this stream.
            check(op, unsafe {
                T::getrs_t(
                    h.cu(),
                    ni,
                    ki,
                    mp as *const T,
                    pp as *const c_int,
                    xp as *mut T,
                    ip as *mut c_int,
                )
            })?;
        }
        Ok(())
    })?;
    finite(op, &solution(x, dev, b, k)?)
}

/// A = Q diag(d) Qᵀ by cuSOLVER's divide-and-conquer `syevd`: (d ascending, Q by columns).
pub(crate) fn sym_eigh<T: Lapack>(
    op: &'static str,
    a: &Tensor,
    dev: &CudaDevice,
) -> Result<(Tensor, Tensor)> {
    finite_input(op, a, "matrix")?;
    let n = a.dims()[0];
    let mut m = owned_copy::<T>(a, dev)?;
    let stream = dev.cuda_stream();
    let ni = int(n)?;
    // SAFETY: written by syevd before it is read.
    let mut w = unsafe { stream.alloc::<T>(n) }.map_err(|e| solver_err(op, e))?;
    with_handle(&stream, |h| {
        let mut info = stream
            .alloc_zeros::<c_int>(1)
            .map_err(|e| solver_err(op, e))?;
        let mut lwork: c_int = 0;
        {
            let (mp, _g1) = m.device_ptr(&stream);
            let (wp, _g2) = w.device_ptr(&stream);
            // SAFETY: m holds n x n elements and w n, on this stream.
            check(op, unsafe {
                T::syevd_buffer(h.cu(), ni, mp as *const T, wp as *const T, &mut lwork)
            })?;
        }
        // SAFETY: workspace of the size cuSOLVER asked for.
        let mut work =
            unsafe { stream.alloc::<T>(lwork.max(1) as usize) }.map_err(|e| solver_err(op, e))?;
        {
            let (mp, _g1) = m.device_ptr_mut(&stream);
            let (wp, _g2) = w.device_ptr_mut(&stream);
            let (kp, _g3) = work.device_ptr_mut(&stream);
            let (ip, _g4) = info.device_ptr_mut(&stream);
            // SAFETY: buffers of the documented sizes, all on this stream.
            check(op, unsafe {
                T::syevd(
                    h.cu(),
                    ni,
                    mp as *mut T,
                    wp as *mut T,
                    kp as *mut T,
                    lwork,
                    ip as *mut c_int,
                )
            })?;
        }
        if read_info(&stream, &info)? != 0 {
            return Err(Error::Solve {
                op,
                msg: "eigen-decomposition did not converge".into(),
            });
        }
        Ok(())
    })?;
    // Column j of the column-major result is eigenvector j: the row-major buffer is Qᵀ.
    let q = wrap(m, dev, &[n, n]).t()?.contiguous()?;
    let d = wrap(w, dev, &[n]);
    Ok((finite(op, &d)?, finite(op, &q)?))
}
