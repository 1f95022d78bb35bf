//! Conjugate gradient against a direct solve; the exact and empirical Fisher-vector products
//! against Fisher matrices built explicitly from materialised Jacobians.

mod common;

use candle_core::{DType, Tensor, Var};
use common::*;
use rat_core::cg::{CgOptions, conjugate_gradient};
use rat_core::distributions::{Categorical, DiagGaussian};
use rat_core::jacobian::{FactoredJacobian, MaterialisedJacobian, ScoreJacobian};
use rat_core::layers::{Recorder, Tangents};
use rat_core::{Error, fisher, linalg, params};

fn spd(seed: u64, n: usize) -> Res<Tensor> {
    let mut r = rng(seed);
    let m = randn(&mut r, &[n, n], DType::F64)?;
    Ok(m.matmul(&m.t()?)?
        .add(&Tensor::eye(n, DType::F64, &dev())?.affine(0.5, 0.0)?)?)
}

#[test]
fn cg_matches_the_direct_solve() -> Res<()> {
    let a = spd(1, 12)?;
    let b = randn(&mut rng(2), &[12], DType::F64)?;
    let sol = conjugate_gradient(
        |p| Ok(a.matmul(&p.unsqueeze(1)?)?.squeeze(1)?),
        &b,
        CgOptions {
            max_iters: 200,
            tol: 1e-24,
        },
    )?;
    let direct = linalg::cholesky_solve(&a, &b)?;
    assert!(rel_err(&sol.x, &direct)? < 1e-9, "CG {:?}", sol.iterations);
    assert!(sol.iterations >= 12 && sol.residual_sq < 1e-20);
    Ok(())
}

#[test]
fn cg_respects_the_iteration_limit_and_stops_early() -> Res<()> {
    let a = spd(3, 30)?;
    let b = randn(&mut rng(4), &[30], DType::F64)?;
    let ten = conjugate_gradient(
        |p| Ok(a.matmul(&p.unsqueeze(1)?)?.squeeze(1)?),
        &b,
        CgOptions::default(),
    )?;
    assert_eq!(ten.iterations, 10);
    // A multiple of the identity converges in one step.
    let one = conjugate_gradient(|p| Ok(p.affine(3.0, 0.0)?), &b, CgOptions::default())?;
    assert_eq!(one.iterations, 1);
    assert!(rel_err(&one.x, &b.affine(1.0 / 3.0, 0.0)?)? < 1e-14);
    Ok(())
}

#[test]
fn cg_reports_non_positive_curvature() -> Res<()> {
    let b = Tensor::new(&[1.0f64, 2.0], &dev())?;
    let err = conjugate_gradient(|p| Ok(p.neg()?), &b, CgOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::NonPositiveCurvature { iteration: 0, .. }),
        "{err}"
    );
    let nan = Tensor::new(&[1.0f64, f64::NAN], &dev())?;
    assert!(conjugate_gradient(|p| Ok(p.clone()), &nan, CgOptions::default()).is_err());
    Ok(())
}

/// Σ_i J_iᵀ M_i J_i / b + λI from per-output backward passes, then times v.
fn explicit_fvp(
    params_: &[Var],
    outputs_of: impl Fn(usize) -> Res<Tensor>, // outputs of sample i, (k)
    metric_of: impl Fn(usize) -> Res<Tensor>,  // M_i, (k, k)
    b: usize,
    v: &[Tensor],
    lambda: f64,
) -> Res<Tensor> {
    let p: usize = params_.iter().map(|p| p.elem_count()).sum();
    let mut f = Tensor::zeros((p, p), DType::F64, &dev())?;
    for i in 0..b {
        let k = outputs_of(i)?.dims()[0];
        let mut rows = Vec::new();
        for o in 0..k {
            let y = outputs_of(i)?.narrow(0, o, 1)?.sum_all()?;
            let g = y.backward()?;
            let parts: Vec<Tensor> = params_
                .iter()
                .map(|p| {
                    g.get(p.as_tensor())
                        .cloned()
                        .map_or_else(|| p.as_tensor().zeros_like(), Ok)
                })
                .collect::<candle_core::Result<_>>()?;
            rows.push(params::flatten(&parts)?);
        }
        let ji = Tensor::stack(&rows, 0)?; // (k, P)
        f = f.add(&ji.t()?.matmul(&metric_of(i)?)?.matmul(&ji)?)?;
    }
    let f = f
        .affine(1.0 / b as f64, 0.0)?
        .add(&Tensor::eye(p, DType::F64, &dev())?.affine(lambda, 0.0)?)?;
    Ok(f.matmul(&params::flatten(v)?.unsqueeze(1)?)?.squeeze(1)?)
}

#[test]
fn exact_fvp_of_a_gaussian_mlp_matches_the_explicit_fisher() -> Res<()> {
    let mut r = rng(5);
    let net = GaussianMlp::new(&mut r, &[3, 6, 2], DType::F64)?;
    let b = 5;
    let x = randn(&mut r, &[b, 3], DType::F64)?;
    let ps = net.params();
    let v = randn_like(
        &mut r,
        &ps.iter().map(|p| p.shape().clone()).collect::<Vec<_>>(),
        DType::F64,
    )?;
    let lambda = 0.1;

    // Forward tangents give J_out v; the metric is (1/σ², 2).
    let tan = Tangents::new(&ps, &v)?;
    let (_, t_mu) = net.mean.forward_tangent(&x, None, &tan)?;
    let (_, t_ls) = net.log_std.forward_tangent(b, &tan)?;
    let dist = net.dist(&x, None)?;
    let (m_mu, m_ls) = dist.fisher_metric(&t_mu.unwrap(), &t_ls.unwrap())?;
    let outputs = Tensor::cat(&[dist.mean(), &dist.log_std().broadcast_as((b, 2))?], 1)?;
    let metric_tangent = Tensor::cat(&[&m_mu, &m_ls], 1)?;
    let got = params::flatten(&fisher::exact_fvp(
        &ps,
        &outputs,
        &metric_tangent,
        &v,
        lambda,
    )?)?;

    let out_i = |i: usize| -> Res<Tensor> {
        let d = net.dist(&x.narrow(0, i, 1)?, None)?;
        Ok(Tensor::cat(&[d.mean(), d.log_std()], 1)?.squeeze(0)?)
    };
    let metric_i = |_: usize| -> Res<Tensor> {
        let var = net.log_std.param().as_tensor().affine(2.0, 0.0)?.exp()?;
        let diag = Tensor::cat(&[&var.recip()?, &Tensor::new(&[2.0f64, 2.0], &dev())?], 0)?;
        Ok(Tensor::eye(4, DType::F64, &dev())?.broadcast_mul(&diag.unsqueeze(0)?)?)
    };
    let expected = explicit_fvp(&ps, out_i, metric_i, b, &v, lambda)?;
    let e = rel_err(&got, &expected)?;
    assert!(e < 1e-10, "relative error {e:e}");
    Ok(())
}

#[test]
fn exact_fvp_of_a_categorical_cnn_matches_the_explicit_fisher() -> Res<()> {
    let mut r = rng(6);
    let net = small_cnn(&mut r, 1, 7, 3, DType::F64)?;
    let b = 4;
    let x = randn(&mut r, &[b, 1, 7, 7], DType::F64)?;
    let ps = net.params();
    let v = randn_like(
        &mut r,
        &ps.iter().map(|p| p.shape().clone()).collect::<Vec<_>>(),
        DType::F64,
    )?;

    let (_, t_logits) = net.forward_tangent(&x, None, &Tangents::new(&ps, &v)?)?;
    let logits = net.forward(&x, None)?;
    let mt = Categorical::new(&logits)?.fisher_metric(&t_logits.unwrap())?;
    let got = params::flatten(&fisher::exact_fvp(&ps, &logits, &mt, &v, 0.0)?)?;

    let out_i =
        |i: usize| -> Res<Tensor> { Ok(net.forward(&x.narrow(0, i, 1)?, None)?.squeeze(0)?) };
    let metric_i = |i: usize| -> Res<Tensor> {
        let p = Categorical::new(&logits.narrow(0, i, 1)?)?
            .probs()?
            .squeeze(0)?
            .detach();
        let diag = Tensor::eye(3, DType::F64, &dev())?.broadcast_mul(&p.unsqueeze(0)?)?;
        Ok(diag.sub(&p.unsqueeze(1)?.matmul(&p.unsqueeze(0)?)?)?)
    };
    let expected = explicit_fvp(&ps, out_i, metric_i, b, &v, 0.0)?;
    let e = rel_err(&got, &expected)?;
    assert!(e < 1e-10, "relative error {e:e}");
    Ok(())
}

#[test]
fn empirical_fvp_matches_the_explicit_empirical_fisher() -> Res<()> {
    let mut r = rng(7);
    let net = GaussianMlp::new(&mut r, &[4, 8, 2], DType::F64)?;
    let b = 6;
    let x = randn(&mut r, &[b, 4], DType::F64)?;
    let a = randn(&mut r, &[b, 2], DType::F64)?;
    let mut rec = Recorder::new();
    let logp = net.log_prob(&x, &a, Some(&mut rec))?;
    let fact = FactoredJacobian::from_objective(&rec, &logp)?;
    let mat = MaterialisedJacobian::from_per_sample_backward(&net.params(), b, |i| {
        net.log_prob(&x.narrow(0, i, 1)?, &a.narrow(0, i, 1)?, None)
            .map_err(|e| Error::InvalidArgument {
                op: "test",
                msg: e.to_string(),
            })
    })?;
    let v = randn_like(&mut r, &fact.param_shapes(), DType::F64)?;
    let got = params::flatten(&fisher::empirical_fvp(&fact, &v, 0.1)?)?;
    let j = mat.matrix();
    let vf = params::flatten(&v)?;
    let expected = j
        .t()?
        .matmul(&j.matmul(&vf.unsqueeze(1)?)?)?
        .squeeze(1)?
        .affine(1.0 / b as f64, 0.0)?
        .add(&vf.affine(0.1, 0.0)?)?;
    assert!(rel_err(&got, &expected)? < 1e-10);
    Ok(())
}

#[test]
fn diagonal_gaussian_formulas() -> Res<()> {
    let dev = dev();
    let mu = Tensor::new(&[[0.5f64, -1.0]], &dev)?;
    let ls = Tensor::new(&[[0.2f64, -0.3]], &dev)?;
    let d = DiagGaussian::new(mu.clone(), ls.clone())?;
    let a = Tensor::new(&[[1.0f64, 0.0]], &dev)?;
    let lp = d.log_prob(&a)?.to_vec1::<f64>()?[0];
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let by_hand = [(1.0 - 0.5, 0.2f64), (0.0 + 1.0, -0.3f64)]
        .iter()
        .map(|&(diff, s): &(f64, f64)| -diff * diff / (2.0 * (2.0 * s).exp()) - s - 0.5 * ln2pi)
        .sum::<f64>();
    assert!((lp - by_hand).abs() < 1e-14);
    let h = d.entropy()?.to_vec1::<f64>()?[0];
    assert!((h - (1.0 + ln2pi + 0.2 - 0.3)).abs() < 1e-14);
    assert!(d.kl(&d)?.to_vec1::<f64>()?[0].abs() < 1e-15);
    let other = DiagGaussian::new(
        Tensor::new(&[[0.0f64, 0.0]], &dev)?,
        Tensor::new(&[[0.0f64, 0.0]], &dev)?,
    )?;
    let kl = d.kl(&other)?.to_vec1::<f64>()?[0];
    let kl_hand: f64 = [(0.5f64, 0.2f64), (-1.0, -0.3)]
        .iter()
        .map(|&(m, s): &(f64, f64)| -s + ((2.0 * s).exp() + m * m) / 2.0 - 0.5)
        .sum();
    assert!((kl - kl_hand).abs() < 1e-14);
    assert!(DiagGaussian::new(mu, Tensor::new(&[[0.1f64, 0.2, 0.3]], &dev)?).is_err());
    Ok(())
}

#[test]
fn categorical_formulas() -> Res<()> {
    let dev = dev();
    let logits = Tensor::new(&[[0.0f64, (2.0f64).ln()]], &dev)?; // p = [1/3, 2/3]
    let c = Categorical::new(&logits)?;
    let lp = c.log_prob(&Tensor::new(&[1u32], &dev)?)?.to_vec1::<f64>()?[0];
    assert!((lp - (2.0f64 / 3.0).ln()).abs() < 1e-14);
    let h = c.entropy()?.to_vec1::<f64>()?[0];
    let h_hand = -(1.0 / 3.0) * (1.0f64 / 3.0).ln() - (2.0 / 3.0) * (2.0f64 / 3.0).ln();
    assert!((h - h_hand).abs() < 1e-14);
    let u = Categorical::new(&Tensor::new(&[[0.0f64, 0.0]], &dev)?)?;
    let kl = c.kl(&u)?.to_vec1::<f64>()?[0];
    let kl_hand =
        (1.0 / 3.0) * ((1.0f64 / 3.0) / 0.5).ln() + (2.0 / 3.0) * ((2.0f64 / 3.0) / 0.5).ln();
    assert!((kl - kl_hand).abs() < 1e-14);
    assert!(c.log_prob(&Tensor::new(&[1u32, 0], &dev)?).is_err());
    Ok(())
}
