//! K-FAC's preconditioner against the Kronecker-factored inverse applied explicitly: for each
//! dense layer, (G ⊗ A + δI) vec(V) = vec(𝒢) solved as one dense system, with A and G built by
//! hand from the recorded inputs and per-sample output gradients; then the KL clip and momentum.
//! Convolutions (KFC) against factors built from patches unfolded by explicit loops, and
//! EK-FAC against per-sample gradients from separate backward passes.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rat_core::layers::{Conv2d, ConvGeometry, Dense, Layer, Recorder, Sequential, SiteKind};
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

/// A small CNN: Conv(2→3, k3, s2, p1) on 5x5, ReLU, Conv(3→2, k2, s1, p0), Flatten, Dense(8→2).
fn small_cnn(rng: &mut ChaCha8Rng, dev: &Device) -> anyhow::Result<Sequential> {
    Ok(Sequential::new(vec![
        Layer::Conv2d(Conv2d::pytorch_init(
            2,
            3,
            ConvGeometry::square(3, 2, 1),
            DType::F64,
            dev,
            rng,
        )?),
        Layer::Relu,
        Layer::Conv2d(Conv2d::pytorch_init(
            3,
            2,
            ConvGeometry::square(2, 1, 0),
            DType::F64,
            dev,
            rng,
        )?),
        Layer::Flatten,
        Layer::Dense(Dense::pytorch_init(8, 2, DType::F64, dev, rng)?),
    ]))
}

/// The patches [x_pad[c, oi·s + ki, oj·s + kj] for c, ki, kj; 1] of one sample at every output
/// position (rows), by explicit loops.
fn patches_by_hand(x: &[f64], c: usize, hw: usize, k: usize, s: usize, p: usize) -> Vec<Vec<f64>> {
    let ho = (hw + 2 * p - k) / s + 1;
    let mut rows = Vec::new();
    for oi in 0..ho {
        for oj in 0..ho {
            let mut row = Vec::new();
            for ch in 0..c {
                for ki in 0..k {
                    for kj in 0..k {
                        let (i, j) = (
                            (oi * s + ki) as isize - p as isize,
                            (oj * s + kj) as isize - p as isize,
                        );
                        let inside = i >= 0 && j >= 0 && (i as usize) < hw && (j as usize) < hw;
                        row.push(if inside {
                            x[ch * hw * hw + i as usize * hw + j as usize]
                        } else {
                            0.0
                        });
                    }
                }
            }
            row.push(1.0);
            rows.push(row);
        }
    }
    rows
}

/// Σ_rows r rᵀ · scale as a tensor.
fn outer_sum(rows: &[Vec<f64>], scale: f64, dev: &Device) -> anyhow::Result<Tensor> {
    let n = rows[0].len();
    let mut m = vec![0.0; n * n];
    for r in rows {
        for i in 0..n {
            for j in 0..n {
                m[i * n + j] += r[i] * r[j] * scale;
            }
        }
    }
    Ok(Tensor::from_vec(m, (n, n), dev)?)
}

#[test]
fn conv_factors_and_step_equal_the_explicit_kfc_solve() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let net = small_cnn(&mut rng, &dev)?;
    let b = 4;
    let x = Tensor::randn(0f64, 1.0, (b, 2, 5, 5), &dev)?;
    let mut rec = Recorder::new();
    let ell = net.forward(&x, Some(&mut rec))?.sin()?.sum(1)?;
    let grads = ell.sum_all()?.backward()?;
    let mut kfac = Kfac::new(KfacOptions {
        damping: 0.05,
        kl_clip: 1e6,
        ..KfacOptions::default()
    })?;
    kfac.update_a(&rec)?;
    kfac.update_g(&rec, &grads)?;
    let g: Vec<Tensor> = rec
        .params()
        .iter()
        .map(|p| Tensor::randn(0f64, 1.0, p.shape(), &dev))
        .collect::<candle_core::Result<_>>()?;
    let (d, nu) = kfac.precondition(&rec, &g, 0.1)?;
    assert_eq!(nu, 1.0);

    for (l, site) in rec.sites().iter().enumerate() {
        let go = grads.get(site.probe().as_tensor()).expect("probe gradient");
        // Rows of ũ (samples x positions) and of g, by hand.
        let (u_rows, g_rows): (Vec<Vec<f64>>, Vec<Vec<f64>>) = match site.kind() {
            SiteKind::Conv2d { input, geometry } => {
                let (_, c, hw, _) = input.dims4()?;
                let (out, ho) = (go.dims()[1], go.dims()[2]);
                let mut us = Vec::new();
                let mut gs = Vec::new();
                for i in 0..b {
                    let xi = input.get(i)?.flatten_all()?.to_vec1::<f64>()?;
                    let (k, s, p) = (geometry.kernel.0, geometry.stride, geometry.padding);
                    us.extend(patches_by_hand(&xi, c, hw, k, s, p));
                    // Row (oi, oj) of sample i: g[i, :, oi, oj].
                    let gi = go.get(i)?.reshape((out, ho * ho))?.t()?.to_vec2::<f64>()?;
                    gs.extend(gi);
                }
                (us, gs)
            }
            SiteKind::Dense { input } => {
                let mut us = input.to_vec2::<f64>()?;
                us.iter_mut().for_each(|r| r.push(1.0));
                (us, go.to_vec2::<f64>()?)
            }
            SiteKind::Broadcast => unreachable!(),
        };
        let a = Tensor::eye(u_rows[0].len(), DType::F64, &dev)?
            .affine(0.95, 0.0)?
            .add(&outer_sum(&u_rows, 0.05 / u_rows.len() as f64, &dev)?)?;
        let gf = Tensor::eye(g_rows[0].len(), DType::F64, &dev)?
            .affine(0.95, 0.0)?
            .add(&outer_sum(&g_rows, 0.05 / b as f64, &dev)?)?;
        let (w, bias) = (&g[2 * l], &g[2 * l + 1]);
        let gm = Tensor::cat(&[&w.flatten_from(1)?, &bias.unsqueeze(1)?], 1)?;
        let (out, inp) = gm.dims2()?;
        let m =
            kron(&gf, &a)?.add(&Tensor::eye(out * inp, DType::F64, &dev)?.affine(0.05, 0.0)?)?;
        let v = linalg::lu_solve(&m, &gm.flatten_all()?)?.reshape((out, inp))?;
        assert_eq!(d[2 * l].shape(), w.shape());
        let got = Tensor::cat(
            &[&d[2 * l].flatten_from(1)?, &d[2 * l + 1].unsqueeze(1)?],
            1,
        )?;
        let e = got.sub(&v)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(e < 1e-10, "layer {l}: max |V − explicit| = {e:e}");
    }
    Ok(())
}

#[test]
fn conv_ekfac_scalings_use_exact_per_sample_gradients() -> anyhow::Result<()> {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let net = small_cnn(&mut rng, &dev)?;
    let b = 3;
    let x = Tensor::randn(0f64, 1.0, (b, 2, 5, 5), &dev)?;
    let objective = |x: &Tensor, rec: Option<&mut Recorder>| -> anyhow::Result<Tensor> {
        Ok(net.forward(x, rec)?.sin()?.sum(1)?)
    };
    let mut rec = Recorder::new();
    let grads = objective(&x, Some(&mut rec))?.sum_all()?.backward()?;
    let mut kfac = Kfac::new(KfacOptions {
        eigen_corrected: true,
        damping: 0.05,
        kl_clip: 1e6,
        ..KfacOptions::default()
    })?;
    kfac.update_a(&rec)?;
    kfac.update_g(&rec, &grads)?;
    kfac.update_scales(&rec, &grads)?;
    let params = rec.params();
    let g: Vec<Tensor> = params
        .iter()
        .map(|p| Tensor::randn(0f64, 1.0, p.shape(), &dev))
        .collect::<candle_core::Result<_>>()?;
    let (d, _) = kfac.precondition(&rec, &g, 0.1)?;

    // The bases from K-FAC's own A and G (checked against loops above), the scalings from
    // per-sample gradients of separate backward passes.
    let state: std::collections::HashMap<String, Tensor> = kfac.state().into_iter().collect();
    let per_sample: Vec<_> = (0..b)
        .map(|i| {
            objective(&x.narrow(0, i, 1)?, None)?
                .sum_all()?
                .backward()
                .map_err(Into::into)
        })
        .collect::<anyhow::Result<_>>()?;
    let conv = 0; // the first site is a convolution
    let (qa, qg) = (
        linalg::sym_eigh(&state[&format!("A.{conv}")])?.1,
        linalg::sym_eigh(&state[&format!("G.{conv}")])?.1,
    );
    let (w, bias) = (&params[0], &params[1]);
    let mut s: Option<Tensor> = None;
    for gs in &per_sample {
        let gi = Tensor::cat(
            &[
                &gs.get(w).expect("weight grad").flatten_from(1)?,
                &gs.get(bias).expect("bias grad").unsqueeze(1)?,
            ],
            1,
        )?;
        let p2 = qg
            .t()?
            .matmul(&gi)?
            .matmul(&qa)?
            .sqr()?
            .affine(1.0 / b as f64, 0.0)?;
        s = Some(match s {
            Some(s) => s.add(&p2)?,
            None => p2,
        });
    }
    let s = s.expect("b > 0");
    let gm = Tensor::cat(&[&g[0].flatten_from(1)?, &g[1].unsqueeze(1)?], 1)?;
    let v = qg
        .matmul(
            &qg.t()?
                .matmul(&gm)?
                .matmul(&qa)?
                .div(&s.affine(1.0, 0.05)?)?,
        )?
        .matmul(&qa.t()?)?;
    let got = Tensor::cat(&[&d[0].flatten_from(1)?, &d[1].unsqueeze(1)?], 1)?;
    let e = got.sub(&v)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert!(e < 1e-9, "conv EK-FAC: max |V − explicit| = {e:e}");
    Ok(())
}
