//! The Woodbury transform against explicit P x P solves, and its error handling.

mod common;

use candle_core::{DType, Tensor};
use common::*;
use rat_core::jacobian::{MaterialisedJacobian, ScoreJacobian};
use rat_core::{linalg, params, woodbury};

/// x* = (Jᵀ R J / b + λI)⁻¹ Jᵀ R a / b by an explicit P x P solve.
fn primal_solve(j: &Tensor, r: &Tensor, a: &Tensor, lambda: f64) -> Res<Tensor> {
    let (b, p) = j.dims2()?;
    let jr = j.broadcast_mul(&r.unsqueeze(1)?)?; // R J
    let f = j.t()?.matmul(&jr)?.affine(1.0 / b as f64, 0.0)?;
    let f = f.add(&Tensor::eye(p, DType::F64, &dev())?.affine(lambda, 0.0)?)?;
    let g = jr
        .t()?
        .matmul(&a.unsqueeze(1)?)?
        .squeeze(1)?
        .affine(1.0 / b as f64, 0.0)?;
    Ok(linalg::lu_solve(&f, &g)?)
}

fn problem(seed: u64, b: usize, p: usize) -> Res<(MaterialisedJacobian, Tensor, Tensor)> {
    let mut r = rng(seed);
    let j = randn(&mut r, &[b, p], DType::F64)?;
    let ratio = uniform(&mut r, &[b], 0.1, 10.0, DType::F64)?;
    let a = randn(&mut r, &[b], DType::F64)?;
    let jac = MaterialisedJacobian::from_matrix(j, vec![candle_core::Shape::from(p)])?;
    Ok((jac, ratio, a))
}

#[test]
fn natural_gradient_equals_explicit_parameter_space_solve() -> Res<()> {
    for (seed, b, p) in [(1, 8, 30), (2, 20, 6), (3, 16, 16)] {
        let (jac, ratio, a) = problem(seed, b, p)?;
        for lambda in [0.1, 1e-3, 3.0] {
            let psi = woodbury::transform_advantages(&jac.kernel()?, &ratio, &a, lambda)?;
            let x = params::flatten(&woodbury::natural_gradient(&jac, &ratio, &psi)?)?;
            let expected = primal_solve(jac.matrix(), &ratio, &a, lambda)?;
            let e = rel_err(&x, &expected)?;
            assert!(e < 1e-9, "b={b} P={p} λ={lambda}: relative error {e:e}");
        }
    }
    Ok(())
}

#[test]
fn psi_solves_the_sample_space_system() -> Res<()> {
    let (jac, ratio, a) = problem(4, 12, 40)?;
    let k = jac.kernel()?;
    let lambda = 0.1;
    let psi = woodbury::transform_advantages(&k, &ratio, &a, lambda)?;
    // (K R / b + λ I) ψ = a, checked by multiplying out.
    let kr_psi = k
        .matmul(&ratio.mul(&psi)?.unsqueeze(1)?)?
        .squeeze(1)?
        .affine(1.0 / 12.0, 0.0)?;
    let lhs = kr_psi.add(&psi.affine(lambda, 0.0)?)?;
    assert!(rel_err(&lhs, &a)? < 1e-11);
    Ok(())
}

#[test]
fn reference_lu_form_agrees_with_cholesky_form() -> Res<()> {
    let (jac, ratio, a) = problem(5, 32, 10)?;
    let k = jac.kernel()?;
    let chol = woodbury::transform_advantages(&k, &ratio, &a, 0.1)?;
    let lu = woodbury::transform_advantages_reference(&k, &ratio, &a, 0.1)?;
    assert!(rel_err(&lu, &chol)? < 1e-10);
    // In f32 the two agree to the tolerance the spec gives for per-minibatch comparisons.
    let (k32, r32, a32) = (
        k.to_dtype(DType::F32)?,
        ratio.to_dtype(DType::F32)?,
        a.to_dtype(DType::F32)?,
    );
    let chol32 = woodbury::transform_advantages(&k32, &r32, &a32, 0.1)?;
    let lu32 = woodbury::transform_advantages_reference(&k32, &r32, &a32, 0.1)?;
    assert!(rel_err(&chol32, &lu32)? < 1e-4);
    assert!(rel_err(&chol32, &chol)? < 1e-4);
    Ok(())
}

#[test]
fn two_right_hand_sides_solve_column_by_column() -> Res<()> {
    let (jac, ratio, a) = problem(6, 10, 7)?;
    let k = jac.kernel()?;
    let ones = Tensor::ones(10, DType::F64, &dev())?;
    let both = woodbury::transform_advantages(&k, &ratio, &Tensor::stack(&[&a, &ones], 1)?, 0.1)?;
    let psi = woodbury::transform_advantages(&k, &ratio, &a, 0.1)?;
    let phi = woodbury::transform_advantages(&k, &ratio, &ones, 0.1)?;
    assert!(rel_err(&both.narrow(1, 0, 1)?.squeeze(1)?, &psi)? < 1e-13);
    assert!(rel_err(&both.narrow(1, 1, 1)?.squeeze(1)?, &phi)? < 1e-13);
    Ok(())
}

#[test]
fn bad_input_is_an_error() -> Res<()> {
    let (jac, ratio, a) = problem(7, 6, 4)?;
    let k = jac.kernel()?;
    let dev = dev();
    // Mismatched shapes.
    assert!(woodbury::transform_advantages(&k, &ratio.narrow(0, 0, 5)?, &a, 0.1).is_err());
    assert!(woodbury::transform_advantages(&k, &ratio, &a.narrow(0, 0, 5)?, 0.1).is_err());
    assert!(woodbury::transform_advantages(&k.narrow(1, 0, 5)?, &ratio, &a, 0.1).is_err());
    // Non-positive or non-finite damping.
    for lambda in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(
            woodbury::transform_advantages(&k, &ratio, &a, lambda).is_err(),
            "λ = {lambda}"
        );
    }
    // Ratios ≤ 0.
    let mut rv = ratio.to_vec1::<f64>()?;
    rv[2] = 0.0;
    assert!(
        woodbury::transform_advantages(&k, &Tensor::new(rv.as_slice(), &dev)?, &a, 0.1).is_err()
    );
    rv[2] = -0.5;
    assert!(
        woodbury::transform_advantages_reference(&k, &Tensor::new(rv.as_slice(), &dev)?, &a, 0.1)
            .is_err()
    );
    // Non-finite values.
    let mut av = a.to_vec1::<f64>()?;
    av[0] = f64::NAN;
    let err = woodbury::transform_advantages(&k, &ratio, &Tensor::new(av.as_slice(), &dev)?, 0.1)
        .unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    let kinf = k.broadcast_mul(&Tensor::new(&[f64::INFINITY], &dev)?)?;
    assert!(woodbury::transform_advantages(&kinf, &ratio, &a, 0.1).is_err());
    // Wrong sizes for the natural gradient.
    assert!(woodbury::natural_gradient(&jac, &ratio, &a.narrow(0, 0, 3)?).is_err());
    Ok(())
}

#[test]
fn every_form_and_precision_gives_the_same_psi() -> Res<()> {
    use woodbury::SolveForm;
    let (jac, ratio, a) = problem(6, 24, 12)?;
    let k = jac.kernel()?;
    let exact = woodbury::transform_advantages(&k, &ratio, &a, 0.1)?;
    let (k32, r32, a32) = (
        k.to_dtype(DType::F32)?,
        ratio.to_dtype(DType::F32)?,
        a.to_dtype(DType::F32)?,
    );
    for form in [SolveForm::Cholesky, SolveForm::Lu] {
        // f64 inputs solved in f64: the exact answer.
        let psi = woodbury::transform_advantages_with(&k, &ratio, &a, 0.1, form, DType::F64)?;
        assert!(rel_err(&psi, &exact)? < 1e-10, "{form:?} f64");
        // f32 inputs solved in f64, returned in f32: only the inputs' rounding remains.
        let psi = woodbury::transform_advantages_with(&k32, &r32, &a32, 0.1, form, DType::F64)?;
        assert_eq!(psi.dtype(), DType::F32);
        assert!(
            rel_err(&psi.to_dtype(DType::F64)?, &exact)? < 1e-5,
            "{form:?} f32→f64"
        );
        let psi = woodbury::transform_advantages_with(&k32, &r32, &a32, 0.1, form, DType::F32)?;
        assert!(
            rel_err(&psi.to_dtype(DType::F64)?, &exact)? < 1e-4,
            "{form:?} f32"
        );
    }
    Ok(())
}

#[test]
fn solve_quality_matches_an_explicit_computation() -> Res<()> {
    let (jac, ratio, a) = problem(7, 10, 6)?;
    let k = jac.kernel()?;
    let lambda = 0.3;
    // A perturbed ψ, so that the residual is not zero.
    let psi = woodbury::transform_advantages(&k, &ratio, &a, lambda)?.affine(1.01, 0.0)?;
    let (residual, cond) = woodbury::solve_quality(&k, &ratio, &a, &psi, lambda)?;
    // By hand, entry by entry.
    let (kv, rv, av, pv) = (
        k.to_vec2::<f64>()?,
        ratio.to_vec1::<f64>()?,
        a.to_vec1::<f64>()?,
        psi.to_vec1::<f64>()?,
    );
    let b = av.len();
    let mut num = 0.0;
    for i in 0..b {
        let mut row = lambda * pv[i] - av[i];
        for j in 0..b {
            row += kv[i][j] * rv[j] * pv[j] / b as f64;
        }
        num += row * row;
    }
    let den: f64 = av.iter().map(|x| x * x).sum();
    assert!((residual - (num / den).sqrt()).abs() < 1e-12, "{residual}");
    // The condition number of K/b + λR⁻¹ from its eigenvalues.
    let sym: Vec<f64> = (0..b * b)
        .map(|n| {
            let (i, j) = (n / b, n % b);
            kv[i][j] / b as f64 + if i == j { lambda / rv[i] } else { 0.0 }
        })
        .collect();
    let (eig, _) = linalg::sym_eigh(&Tensor::from_vec(sym, (b, b), &candle_core::Device::Cpu)?)?;
    let eig = eig.to_vec1::<f64>()?;
    let (lo, hi) = eig
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), &e| (l.min(e), h.max(e)));
    assert!(
        (cond - hi / lo).abs() < 1e-9 * cond,
        "{cond} vs {}",
        hi / lo
    );
    Ok(())
}
