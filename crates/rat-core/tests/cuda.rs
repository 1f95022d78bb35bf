//! The cuSOLVER path of `rat_core::linalg` (feature `cuda`) against the CPU's faer path on the
//! same matrices, and its error handling: a matrix that is not positive definite, a singular one
//! or a non-finite input is an `Err`, never NaN. Needs a CUDA device; without one each test
//! prints that it was skipped. The rest of the numerical tests run on CUDA with
//! `RAT_TEST_DEVICE=cuda` (see scripts/build-cuda.sh).
#![cfg(feature = "cuda")]

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use rat_core::linalg::{cholesky_solve, cholesky_solve_shifted, lu_solve, sym_eigh};

fn cuda() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        // CI never builds the `cuda` feature; a CI-like run that does must have the GPU.
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and no CUDA device for the cuda tests: {e}")
        }
        Err(e) => {
            println!("skipped: no CUDA device ({e})");
            None
        }
    }
}

/// A well-conditioned symmetric positive-definite n x n matrix X Xᵀ / n + I on the CPU.
fn spd(seed: u64, n: usize, dtype: DType) -> Res<Tensor> {
    let x = randn(&mut rng(seed), &[n, n], DType::F64)?;
    let a = x.matmul(&x.t()?)?.affine(1.0 / n as f64, 0.0)?;
    Ok(a.add(&Tensor::eye(n, DType::F64, &Device::Cpu)?)?
        .to_dtype(dtype)?)
}

fn cpu(t: &Tensor) -> Res<Tensor> {
    Ok(t.to_device(&Device::Cpu)?)
}

fn tol(dtype: DType) -> f64 {
    if dtype == DType::F32 { 1e-4 } else { 1e-10 }
}

#[test]
fn cholesky_solves_match_the_cpu() -> Res<()> {
    let Some(gpu) = cuda() else { return Ok(()) };
    for dtype in [DType::F32, DType::F64] {
        let n = 96;
        let a = spd(1, n, dtype)?;
        let d = uniform(&mut rng(2), &[n], 0.1, 1.0, dtype)?;
        for rhs in [
            randn(&mut rng(3), &[n], dtype)?,
            randn(&mut rng(4), &[n, 5], dtype)?,
        ] {
            let want = cholesky_solve_shifted(&a, 0.5, Some(&d), &rhs)?;
            let got = cholesky_solve_shifted(
                &a.to_device(&gpu)?,
                0.5,
                Some(&d.to_device(&gpu)?),
                &rhs.to_device(&gpu)?,
            )?;
            assert!(got.device().is_cuda(), "the result stays on the device");
            assert_eq!(got.shape(), rhs.shape());
            let e = rel_err(&cpu(&got)?, &want)?;
            assert!(e < tol(dtype), "{dtype:?} {:?}: rel err {e}", rhs.shape());
            let plain = cholesky_solve(&a.to_device(&gpu)?, &rhs.to_device(&gpu)?)?;
            let e = rel_err(&cpu(&plain)?, &cholesky_solve(&a, &rhs)?)?;
            assert!(e < tol(dtype), "{dtype:?} unshifted: rel err {e}");
        }
    }
    Ok(())
}

#[test]
fn lu_solves_match_the_cpu() -> Res<()> {
    let Some(gpu) = cuda() else { return Ok(()) };
    for dtype in [DType::F32, DType::F64] {
        let n = 64;
        // Not symmetric: a transposition mistake would show.
        let a = spd(5, n, dtype)?.add(&randn(&mut rng(6), &[n, n], dtype)?.affine(0.1, 0.0)?)?;
        let b = randn(&mut rng(7), &[n, 3], dtype)?;
        let got = lu_solve(&a.to_device(&gpu)?, &b.to_device(&gpu)?)?;
        let e = rel_err(&cpu(&got)?, &lu_solve(&a, &b)?)?;
        assert!(e < 10.0 * tol(dtype), "{dtype:?}: rel err {e}");
        // And it solves A X = B.
        let r = rel_err(&a.matmul(&cpu(&got)?)?, &b)?;
        assert!(r < 10.0 * tol(dtype), "{dtype:?}: residual {r}");
    }
    Ok(())
}

#[test]
fn eigen_decomposition_matches_the_cpu() -> Res<()> {
    let Some(gpu) = cuda() else { return Ok(()) };
    for dtype in [DType::F32, DType::F64] {
        let n = 48;
        let a = spd(8, n, dtype)?;
        let (d, q) = sym_eigh(&a.to_device(&gpu)?)?;
        let (d, q) = (cpu(&d)?, cpu(&q)?);
        let (d0, _) = sym_eigh(&a)?;
        let e = rel_err(&d, &d0)?;
        assert!(e < tol(dtype), "{dtype:?}: eigenvalues rel err {e}");
        let v: Vec<f64> = d.to_dtype(DType::F64)?.to_vec1()?;
        assert!(v.windows(2).all(|w| w[0] <= w[1]), "ascending");
        // Q diag(d) Qᵀ = A and Qᵀ Q = I: the eigenvectors are Q's columns.
        let rebuilt = q.broadcast_mul(&d.unsqueeze(0)?)?.matmul(&q.t()?)?;
        let e = rel_err(&rebuilt, &a)?;
        assert!(
            e < 10.0 * tol(dtype),
            "{dtype:?}: reconstruction rel err {e}"
        );
        let eye = Tensor::eye(n, dtype, &Device::Cpu)?;
        let e = rel_err(&q.t()?.matmul(&q)?, &eye)?;
        assert!(
            e < 10.0 * tol(dtype),
            "{dtype:?}: orthogonality rel err {e}"
        );
    }
    Ok(())
}

#[test]
fn bad_matrices_are_errors_not_nan() -> Res<()> {
    let Some(gpu) = cuda() else { return Ok(()) };
    let n = 16;
    let b = randn(&mut rng(9), &[n], DType::F32)?.to_device(&gpu)?;
    let minus_eye = Tensor::eye(n, DType::F32, &gpu)?.affine(-1.0, 0.0)?;
    let err = cholesky_solve(&minus_eye, &b).err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|e| e.contains("positive definite")),
        "not positive definite: {err:?}"
    );
    let zeros = Tensor::zeros((n, n), DType::F32, &gpu)?;
    assert!(lu_solve(&zeros, &b).is_err(), "a singular LU is an error");
    let mut v = vec![0f32; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    // Symmetric, so whichever triangle a routine reads holds it.
    (v[3], v[3 * n]) = (f32::NAN, f32::NAN);
    let nan = Tensor::from_vec(v, (n, n), &gpu)?;
    // Refused before the factorisation, as on the CPU: getrf does not always carry the NaN
    // into its result.
    let non_finite =
        |e: Option<rat_core::Error>| matches!(e, Some(rat_core::Error::NonFinite { .. }));
    assert!(
        non_finite(cholesky_solve(&nan, &b).err()),
        "NaN input (Cholesky)"
    );
    assert!(non_finite(lu_solve(&nan, &b).err()), "NaN input (LU)");
    assert!(non_finite(sym_eigh(&nan).err()), "NaN input (eigh)");
    let b_nan = b.affine(f64::NAN, 0.0)?;
    let eye = Tensor::eye(n, DType::F32, &gpu)?;
    assert!(
        non_finite(lu_solve(&eye, &b_nan).err()),
        "NaN right-hand side"
    );
    Ok(())
}
