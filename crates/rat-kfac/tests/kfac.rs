//! K-FAC's preconditioner against the Kronecker-factored inverse applied explicitly: for each
//! dense layer, (G ⊗ A + δI) vec(V) = vec(𝒢) solved as one dense system, with A and G built by
//! hand from the recorded inputs and per-sample output gradients; then the KL clip and momentum.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rat_core::layers::{Dense, Layer, Recorder, Sequential, SiteKind};
use rat_core::linalg;
use rat_kfac::{Kfac, KfacOptions};

fn kron(a: &Tensor, b: &Tensor) -> anyhow::Result<Tensor> {
    let (m, n) = a.dims2()?;
    let (p, q) = b.dims2()?;
    let a4 = a.reshape((m, 1, n, 1))?;
    let b4 = b.reshape((1, p, 1, q))?;
    Ok(a4.broadcast_mul(&b4)?.reshape((m * p, n * q))?)
}

#[test]
fn preconditioned_gradient_equals_the_explicit_kronecker_solve() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let net = Sequential::new(vec![
        Layer::Dense(Dense::pytorch_init(3, 4, DType::F64, &dev, &mut rng)?),
        Layer::Relu,
        Layer::Dense(Dense::pytorch_init(4, 2, DType::F64, &dev, &mut rng)?),
    ]);
    let b = 7;
    let x = Tensor::randn(0f64, 1.0, (b, 3), &dev)?;
    let mut rec = Recorder::new();
    let y = net.forward(&x, Some(&mut rec))?;
    // Any per-sample objective: ℓ_i = Σ_k sin(y_ik).
    let ell = y.sin()?.sum(1)?;
    let grads = ell.sum_all()?.backward()?;

    let opts = KfacOptions {
        damping: 0.05,
        ..KfacOptions::default()
    };
    let mut kfac = Kfac::new(opts)?;
    assert!(kfac.refresh_due());
    kfac.update_a(&rec)?;
    kfac.update_g(&rec, &grads)?;
    let params = rec.params();
    let g: Vec<Tensor> = params
        .iter()
        .map(|p| Tensor::randn(0f64, 1.0, p.shape(), &dev))
        .collect::<candle_core::Result<_>>()?;
    let lr = 0.3;
    let (d, nu) = kfac.precondition(&rec, &g, lr)?;

    // By hand, per layer.
    let mut quad = 0.0;
    let mut v_all = Vec::new();
    for (l, site) in rec.sites().iter().enumerate() {
        let SiteKind::Dense { input } = site.kind() else {
            unreachable!("dense layers only")
        };
        let u = Tensor::cat(&[input, &Tensor::ones((b, 1), DType::F64, &dev)?], 1)?;
        let a = Tensor::eye(u.dims()[1], DType::F64, &dev)?
            .affine(0.95, 0.0)?
            .add(&u.t()?.matmul(&u)?.affine(0.05 / b as f64, 0.0)?)?;
        let go = grads.get(site.probe().as_tensor()).expect("probe gradient");
        let gf = Tensor::eye(go.dims()[1], DType::F64, &dev)?
            .affine(0.95, 0.0)?
            .add(&go.t()?.matmul(go)?.affine(0.05 / b as f64, 0.0)?)?;
        let gm = Tensor::cat(&[&g[2 * l], &g[2 * l + 1].unsqueeze(1)?], 1)?;
        let (out, inp) = gm.dims2()?;
        let m =
            kron(&gf, &a)?.add(&Tensor::eye(out * inp, DType::F64, &dev)?.affine(0.05, 0.0)?)?;
        let v = linalg::lu_solve(&m, &gm.flatten_all()?)?.reshape((out, inp))?;
        quad += v.mul(&gm)?.sum_all()?.to_scalar::<f64>()?;
        v_all.push(v);
    }
    let nu_hand = (1e-3 / (quad * lr * lr)).sqrt().min(1.0);
    assert!((nu - nu_hand).abs() < 1e-12, "ν {nu} vs {nu_hand}");
    assert!(nu < 1.0, "the test should exercise the KL clip");
    for (l, v) in v_all.iter().enumerate() {
        let got = Tensor::cat(&[&d[2 * l], &d[2 * l + 1].unsqueeze(1)?], 1)?;
        let e = got
            .sub(&v.affine(nu, 0.0)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f64>()?;
        assert!(e < 1e-10, "layer {l}: max |V − explicit| = {e:e}");
    }

    // Momentum: buf = d, then 0.9·buf + d.
    let first: Vec<Tensor> = kfac.momentum_step(&d)?.to_vec();
    let second = kfac.momentum_step(&d)?;
    let e = second[0]
        .sub(&first[0].affine(1.9, 0.0)?)?
        .abs()?
        .max_all()?
        .to_scalar::<f64>()?;
    assert!(e < 1e-12);
    assert_eq!(kfac.steps(), 2);
    Ok(())
}

#[test]
fn bad_options_are_errors() {
    assert!(
        Kfac::new(KfacOptions {
            damping: 0.0,
            ..KfacOptions::default()
        })
        .is_err()
    );
    assert!(
        Kfac::new(KfacOptions {
            stat_decay: 1.0,
            ..KfacOptions::default()
        })
        .is_err()
    );
}

#[test]
fn ekfac_scalings_are_the_mean_squared_projected_per_sample_gradients() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let net = Sequential::new(vec![
        Layer::Dense(Dense::pytorch_init(3, 4, DType::F64, &dev, &mut rng)?),
        Layer::Tanh,
        Layer::Dense(Dense::pytorch_init(4, 2, DType::F64, &dev, &mut rng)?),
    ]);
    let b = 6;
    let x = Tensor::randn(0f64, 1.0, (b, 3), &dev)?;
    let mut rec = Recorder::new();
    let ell = net.forward(&x, Some(&mut rec))?.sin()?.sum(1)?;
    let grads = ell.sum_all()?.backward()?;
    let mut kfac = Kfac::new(KfacOptions {
        eigen_corrected: true,
        damping: 0.05,
        kl_clip: 1e6, // no clipping: compare V itself
        ..KfacOptions::default()
    })?;
    kfac.update_a(&rec)?;
    kfac.update_g(&rec, &grads)?;
    kfac.update_scales(&rec, &grads)?;
    let g: Vec<Tensor> = rec
        .params()
        .iter()
        .map(|p| Tensor::randn(0f64, 1.0, p.shape(), &dev))
        .collect::<candle_core::Result<_>>()?;
    let (d, nu) = kfac.precondition(&rec, &g, 0.1)?;
    assert_eq!(nu, 1.0);

    for (l, site) in rec.sites().iter().enumerate() {
        let SiteKind::Dense { input } = site.kind() else {
            unreachable!()
        };
        let u = Tensor::cat(&[input, &Tensor::ones((b, 1), DType::F64, &dev)?], 1)?;
        let go = grads.get(site.probe().as_tensor()).expect("probe gradient");
        let a = Tensor::eye(u.dims()[1], DType::F64, &dev)?
            .affine(0.95, 0.0)?
            .add(&u.t()?.matmul(&u)?.affine(0.05 / b as f64, 0.0)?)?;
        let gf = Tensor::eye(go.dims()[1], DType::F64, &dev)?
            .affine(0.95, 0.0)?
            .add(&go.t()?.matmul(go)?.affine(0.05 / b as f64, 0.0)?)?;
        let (_, qa) = linalg::sym_eigh(&a)?;
        let (_, qg) = linalg::sym_eigh(&gf)?;
        // S by hand: per-sample gradients g_i ũ_iᵀ projected on the basis, squared, averaged.
        let (out, inp) = (go.dims()[1], u.dims()[1]);
        let mut s = vec![0.0; out * inp];
        for i in 0..b {
            let gi = go.narrow(0, i, 1)?.t()?.matmul(&u.narrow(0, i, 1)?)?; // (out, in')
            let proj = qg
                .t()?
                .matmul(&gi)?
                .matmul(&qa)?
                .flatten_all()?
                .to_vec1::<f64>()?;
            for (acc, p) in s.iter_mut().zip(proj) {
                *acc += p * p / b as f64;
            }
        }
        let s = Tensor::from_vec(s, (out, inp), &dev)?;
        let gm = Tensor::cat(&[&g[2 * l], &g[2 * l + 1].unsqueeze(1)?], 1)?;
        let v = qg
            .matmul(
                &qg.t()?
                    .matmul(&gm)?
                    .matmul(&qa)?
                    .div(&s.affine(1.0, 0.05)?)?,
            )?
            .matmul(&qa.t()?)?;
        let got = Tensor::cat(&[&d[2 * l], &d[2 * l + 1].unsqueeze(1)?], 1)?;
        let e = got.sub(&v)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(e < 1e-9, "layer {l}: max |V − explicit| = {e:e}");
    }
    Ok(())
}
