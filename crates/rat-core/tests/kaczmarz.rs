//! Block Kaczmarz: the exact mode converges to the full-batch solution; the reference mode
//! reproduces a hand-computed two-step sequence.

mod common;

use candle_core::{DType, Shape, Tensor};
use common::*;
use rand::seq::SliceRandom;
use rat_core::jacobian::MaterialisedJacobian;
use rat_core::kaczmarz::{ExactKaczmarz, Kaczmarz, ReferenceKaczmarz};
use rat_core::{clip, linalg, params};

fn explicit_npg(j: &Tensor, r: &Tensor, a: &Tensor, lambda: f64) -> Res<Tensor> {
    let (b, p) = j.dims2()?;
    let jr = j.broadcast_mul(&r.unsqueeze(1)?)?;
    let f = j.t()?.matmul(&jr)?.affine(1.0 / b as f64, 0.0)?;
    let f = f.add(&Tensor::eye(p, DType::F64, &dev())?.affine(lambda, 0.0)?)?;
    let g = jr
        .t()?
        .matmul(&a.unsqueeze(1)?)?
        .squeeze(1)?
        .affine(1.0 / b as f64, 0.0)?;
    Ok(linalg::lu_solve(&f, &g)?)
}

#[test]
fn exact_mode_converges_to_the_full_batch_natural_gradient() -> Res<()> {
    let (n, p, blocks, lambda) = (64, 12, 8, 0.1);
    let bs = n / blocks;
    let mut r = rng(11);
    let j = randn(&mut r, &[n, p], DType::F64)?;
    let ratio = uniform(&mut r, &[n], 0.5, 2.0, DType::F64)?;
    let a = randn(&mut r, &[n], DType::F64)?;
    let target = explicit_npg(&j, &ratio, &a, lambda)?;

    let shapes = vec![Shape::from(p)];
    let mut kz = Kaczmarz::Exact(ExactKaczmarz::new(n, &shapes, lambda, DType::F64, &dev())?);
    let mut order: Vec<usize> = (0..blocks).collect();
    let mut errors = Vec::new();
    let mut converged_at = None;
    for sweep in 0..400 {
        order.shuffle(&mut r);
        let mut x = Vec::new();
        for &blk in &order {
            let idx: Vec<usize> = (blk * bs..(blk + 1) * bs).collect();
            let jb = MaterialisedJacobian::from_matrix(j.narrow(0, blk * bs, bs)?, shapes.clone())?;
            let step = kz.block_step(
                &jb,
                &idx,
                &ratio.narrow(0, blk * bs, bs)?,
                &a.narrow(0, blk * bs, bs)?,
            )?;
            x = step.direction;
        }
        let e = params::flatten(&x)?
            .sub(&target)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f64>()?
            .sqrt();
        errors.push(e);
        if e < 1e-6 {
            converged_at = Some(sweep + 1);
            break;
        }
    }
    let sweeps = converged_at
        .unwrap_or_else(|| panic!("no convergence; errors {:?}", &errors[errors.len() - 5..]));
    eprintln!(
        "exact Kaczmarz: error < 1e-6 after {sweeps} sweeps (first-sweep error {:.3e})",
        errors[0]
    );
    assert!(
        errors[0] > 1e-3,
        "the first sweep should not already be converged"
    );
    // The dual iterate is the full-batch ψ*: x* = Jᵀ R ψ* / N.
    let Kaczmarz::Exact(state) = &kz else {
        unreachable!()
    };
    let x_from_psi = j
        .t()?
        .matmul(&ratio.mul(state.dual())?.unsqueeze(1)?)?
        .squeeze(1)?
        .affine(1.0 / n as f64, 0.0)?;
    assert!(rel_err(&x_from_psi, &target)? < 1e-5);
    Ok(())
}

#[test]
fn reference_mode_reproduces_a_hand_computed_two_step_sequence() -> Res<()> {
    let (b, p, lambda) = (4, 3, 0.1);
    let shapes = vec![Shape::from(p)];
    let dev = dev();
    let j1 = Tensor::new(
        &[
            [1.0f64, 0.5, -0.2],
            [0.3, -1.0, 0.8],
            [-0.7, 0.2, 0.4],
            [0.1, 0.9, -0.6],
        ],
        &dev,
    )?;
    let j2 = Tensor::new(
        &[
            [0.4f64, -0.3, 1.1],
            [-0.9, 0.6, 0.2],
            [0.5, 0.5, -0.5],
            [1.2, -0.1, 0.3],
        ],
        &dev,
    )?;
    let r1 = Tensor::new(&[1.0f64, 1.0, 1.0, 1.0], &dev)?;
    let r2 = Tensor::new(&[1.2f64, 0.8, 1.0, 0.5], &dev)?;
    let a1 = Tensor::new(&[1.0f64, -0.5, 0.25, -0.75], &dev)?;
    let a2 = Tensor::new(&[-0.2f64, 0.9, -1.1, 0.4], &dev)?;
    let max_norm = 0.5;

    // By hand, in parameter space: step 1 has no buffer; step 2's advantage is a − J g with g the
    // clipped loss gradient of step 1; the buffer then becomes 1e-6·g₁ + g₂.
    let x1 = explicit_npg(&j1, &r1, &a1, lambda)?;
    let (g1, _) = clip::clip_grad_norm(&[x1.neg()?], max_norm)?;
    let a2_corr = a2.sub(&j2.matmul(&g1[0].unsqueeze(1)?)?.squeeze(1)?)?;
    let x2 = explicit_npg(&j2, &r2, &a2_corr, lambda)?;
    let (g2, _) = clip::clip_grad_norm(&[x2.neg()?], max_norm)?;
    let buf2 = g1[0].affine(1e-6, 0.0)?.add(&g2[0])?;

    let mut kz = ReferenceKaczmarz::new(lambda)?;
    let jac1 = MaterialisedJacobian::from_matrix(j1, shapes.clone())?;
    let s1 = kz.block_step(&jac1, &r1, &a1)?;
    assert!(rel_err(&s1.direction[0], &x1)? < 1e-12);
    let (c1, _) = clip::clip_grad_norm(&[s1.direction[0].neg()?], max_norm)?;
    kz.momentum_step(&c1)?;
    assert!(
        rel_err(&kz.buffer().unwrap()[0], &g1[0])? < 1e-12,
        "first step: buf = ĝ"
    );

    let jac2 = MaterialisedJacobian::from_matrix(j2, shapes)?;
    let s2 = kz.block_step(&jac2, &r2, &a2)?;
    assert!(rel_err(&s2.direction[0], &x2)? < 1e-12);
    let (c2, _) = clip::clip_grad_norm(&[s2.direction[0].neg()?], max_norm)?;
    let buf = kz.momentum_step(&c2)?;
    assert!(
        rel_err(&buf[0], &buf2)? < 1e-12,
        "second step: buf = 1e-6·buf + ĝ"
    );
    assert_eq!(b, 4);
    Ok(())
}

#[test]
fn reference_correction_applies_to_every_right_hand_side() -> Res<()> {
    let dev = dev();
    let shapes = vec![Shape::from(2)];
    let mut kz = ReferenceKaczmarz::new(0.1)?;
    kz.momentum_step(&[Tensor::new(&[1.0f64, -2.0], &dev)?])?;
    let jac = MaterialisedJacobian::from_matrix(
        Tensor::new(&[[1.0f64, 1.0], [0.0, 2.0], [3.0, 0.0]], &dev)?,
        shapes,
    )?;
    let a = Tensor::new(&[[1.0f64, 1.0], [1.0, 1.0], [1.0, 1.0]], &dev)?;
    // J g = [-1, -4, 3]
    let got = kz.correct(&jac, &a)?.to_vec2::<f64>()?;
    assert_eq!(got, vec![vec![2.0, 2.0], vec![5.0, 5.0], vec![-2.0, -2.0]]);
    Ok(())
}

#[test]
fn bad_configuration_is_an_error() {
    assert!(ReferenceKaczmarz::new(0.0).is_err());
    assert!(ReferenceKaczmarz::with_momentum(0.1, -1.0).is_err());
    assert!(ExactKaczmarz::new(0, &[Shape::from(3)], 0.1, DType::F64, &dev()).is_err());
    assert!(ExactKaczmarz::new(8, &[Shape::from(3)], f64::NAN, DType::F64, &dev()).is_err());
}

#[test]
fn exact_block_indices_are_checked() -> Res<()> {
    let shapes = vec![Shape::from(2)];
    let mut kz = ExactKaczmarz::new(4, &shapes, 0.1, DType::F64, &dev())?;
    let dev = dev();
    let jac = MaterialisedJacobian::from_matrix(
        Tensor::new(&[[1.0f64, 0.0], [0.0, 1.0]], &dev)?,
        shapes,
    )?;
    let r = Tensor::new(&[1.0f64, 1.0], &dev)?;
    let a = Tensor::new(&[1.0f64, 1.0], &dev)?;
    assert!(
        kz.block_step(&jac, &[0, 9], &r, &a).is_err(),
        "index outside the rollout"
    );
    assert!(
        kz.block_step(&jac, &[0], &r, &a).is_err(),
        "wrong block length"
    );
    assert!(kz.block_step(&jac, &[0, 1], &r, &a).is_ok());
    Ok(())
}
