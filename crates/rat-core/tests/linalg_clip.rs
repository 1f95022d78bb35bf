//! Dense solves, the eigen-decomposition, clipping rules and shape errors of the Jacobians.

mod common;

use candle_core::{DType, Shape, Tensor};
use common::*;
use rat_core::clip::{PostGrad, clip_grad_norm, post_grad};
use rat_core::jacobian::{MaterialisedJacobian, ScoreJacobian};
use rat_core::{Error, linalg};

#[test]
fn cholesky_and_lu_solve_known_systems() -> Res<()> {
    let dev = dev();
    let a = Tensor::new(&[[4.0f64, 2.0], [2.0, 3.0]], &dev)?;
    let b = Tensor::new(&[2.0f64, 1.0], &dev)?; // x = [0.5, 0]
    for x in [linalg::cholesky_solve(&a, &b)?, linalg::lu_solve(&a, &b)?] {
        assert!(rel_err(&x, &Tensor::new(&[0.5f64, 0.0], &dev)?)? < 1e-15);
    }
    // Non-symmetric system for LU, two right-hand sides.
    let m = Tensor::new(&[[0.0f64, 1.0], [2.0, 0.0]], &dev)?;
    let rhs = Tensor::new(&[[1.0f64, 2.0], [4.0, 6.0]], &dev)?;
    let x = linalg::lu_solve(&m, &rhs)?;
    assert_eq!(x.to_vec2::<f64>()?, vec![vec![2.0, 3.0], vec![1.0, 2.0]]);
    // f32 stays f32.
    let x32 = linalg::cholesky_solve(&a.to_dtype(DType::F32)?, &b.to_dtype(DType::F32)?)?;
    assert_eq!(x32.dtype(), DType::F32);
    Ok(())
}

#[test]
fn failures_are_errors_not_nan() -> Res<()> {
    let dev = dev();
    let indefinite = Tensor::new(&[[1.0f64, 2.0], [2.0, 1.0]], &dev)?;
    let b = Tensor::new(&[1.0f64, 1.0], &dev)?;
    assert!(matches!(
        linalg::cholesky_solve(&indefinite, &b),
        Err(Error::NotPositiveDefinite { .. })
    ));
    let singular = Tensor::new(&[[1.0f64, 2.0], [2.0, 4.0]], &dev)?;
    assert!(linalg::lu_solve(&singular, &b).is_err());
    let nan = Tensor::new(&[[1.0f64, f64::NAN], [0.0, 1.0]], &dev)?;
    assert!(matches!(
        linalg::lu_solve(&nan, &b),
        Err(Error::NonFinite { .. })
    ));
    assert!(linalg::sym_eigh(&nan).is_err());
    assert!(linalg::cholesky_solve(&Tensor::ones((2, 3), DType::F64, &dev)?, &b).is_err());
    assert!(linalg::cholesky_solve(&indefinite, &Tensor::ones(3, DType::F64, &dev)?).is_err());
    assert!(
        linalg::cholesky_solve(&indefinite.to_dtype(DType::F32)?, &b).is_err(),
        "dtype mismatch"
    );
    assert!(
        linalg::lu_solve(&Tensor::ones((2, 2), DType::U32, &dev)?, &b).is_err(),
        "integer dtype"
    );
    Ok(())
}

#[test]
fn symmetric_eigen_decomposition_reconstructs_the_matrix() -> Res<()> {
    let mut r = rng(3);
    let m = randn(&mut r, &[6, 6], DType::F64)?;
    let a = m.add(&m.t()?)?;
    let (d, q) = linalg::sym_eigh(&a)?;
    let dv = d.to_vec1::<f64>()?;
    assert!(
        dv.windows(2).all(|w| w[0] <= w[1]),
        "non-decreasing eigenvalues"
    );
    let rebuilt = q.broadcast_mul(&d.unsqueeze(0)?)?.matmul(&q.t()?)?;
    assert!(rel_err(&rebuilt, &a)? < 1e-12);
    let qtq = q.t()?.matmul(&q)?;
    assert!(rel_err(&qtq, &Tensor::eye(6, DType::F64, &dev())?)? < 1e-12);
    Ok(())
}

#[test]
fn l2_clipping_follows_the_reference_formula() -> Res<()> {
    let dev = dev();
    let g = vec![
        Tensor::new(&[3.0f64], &dev)?,
        Tensor::new(&[[4.0f64]], &dev)?,
    ]; // ‖g‖ = 5
    let (c, norm) = clip_grad_norm(&g, 0.5)?;
    assert_eq!(norm, 5.0);
    let coef = 0.5 / (5.0 + 1e-6);
    assert!((c[0].to_vec1::<f64>()?[0] - 3.0 * coef).abs() < 1e-15);
    let (same, _) = clip_grad_norm(&g, 10.0)?;
    assert_eq!(same[1].to_vec2::<f64>()?, vec![vec![4.0]]);
    assert!(clip_grad_norm(&g, 0.0).is_err());
    assert!(clip_grad_norm(&[Tensor::new(&[f64::NAN], &dev)?], 1.0).is_err());
    Ok(())
}

#[test]
fn post_grad_rules_use_squared_norms() -> Res<()> {
    let dev = dev();
    let d = vec![Tensor::new(&[1.0f64, 1.0], &dev)?];
    let fd = vec![Tensor::new(&[2.0f64, 2.0], &dev)?]; // dᵀ(F+λ)d = 4
    let (x, q) = post_grad(&d, Some(&fd), PostGrad::FisherClip, 0.5)?;
    assert_eq!(q, 4.0);
    assert_eq!(x[0].to_vec1::<f64>()?, vec![0.125, 0.125]);
    let (x, q) = post_grad(&d, None, PostGrad::L2Clip, 0.5)?;
    assert_eq!(q, 2.0);
    assert_eq!(x[0].to_vec1::<f64>()?, vec![0.25, 0.25]);
    let (x, _) = post_grad(&d, Some(&fd), PostGrad::Norm, 0.5)?;
    assert_eq!(x[0].to_vec1::<f64>()?, vec![0.5, 0.5]);
    let (x, q) = post_grad(&d, None, PostGrad::None, 0.5)?;
    assert_eq!((q, x[0].to_vec1::<f64>()?), (0.5, vec![1.0, 1.0]));
    assert!(
        post_grad(&d, None, PostGrad::FisherClip, 0.5).is_err(),
        "needs (F+λ)d"
    );
    Ok(())
}

#[test]
fn jacobian_products_reject_mismatched_shapes() -> Res<()> {
    let dev = dev();
    let jac = MaterialisedJacobian::from_matrix(
        Tensor::ones((3, 5), DType::F64, &dev)?,
        vec![Shape::from((2, 2)), Shape::from(1)],
    )?;
    assert!(
        jac.jvp(&[Tensor::ones((2, 2), DType::F64, &dev)?]).is_err(),
        "missing a block"
    );
    assert!(
        jac.jvp(&[
            Tensor::ones(4, DType::F64, &dev)?,
            Tensor::ones(1, DType::F64, &dev)?
        ])
        .is_err(),
        "wrong block shape"
    );
    assert!(jac.vjp(&Tensor::ones(4, DType::F64, &dev)?).is_err());
    assert!(
        MaterialisedJacobian::from_matrix(
            Tensor::ones((3, 4), DType::F64, &dev)?,
            vec![Shape::from(5)]
        )
        .is_err()
    );
    Ok(())
}
