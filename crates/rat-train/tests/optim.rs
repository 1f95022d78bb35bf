//! The optimisers own their checkpoint state: saving and restoring it mid-run continues exactly
//! as the uninterrupted optimiser does, and a missing entry is an error naming it.

use std::collections::HashMap;

use candle_core::{Device, Tensor, Var};
use rat_train::optim::{Adam, Sgd};

fn params() -> candle_core::Result<Vec<Var>> {
    let dev = Device::Cpu;
    Ok(vec![
        Var::from_tensor(&Tensor::new(&[[1.0f32, -2.0], [0.5, 3.0]], &dev)?)?,
        Var::from_tensor(&Tensor::new(&[0.25f32, -0.75], &dev)?)?,
    ])
}

fn grads(k: usize) -> candle_core::Result<Vec<Tensor>> {
    let dev = Device::Cpu;
    let s = k as f32 + 1.0;
    Ok(vec![
        Tensor::new(&[[0.1 * s, -0.3], [0.2, 0.05 * s]], &dev)?,
        Tensor::new(&[-0.4 * s, 0.6], &dev)?,
    ])
}

fn values(ps: &[Var]) -> candle_core::Result<Vec<Vec<f32>>> {
    ps.iter()
        .map(|p| p.as_tensor().flatten_all()?.to_vec1())
        .collect()
}

fn copy(ps: &[Var]) -> candle_core::Result<Vec<Var>> {
    ps.iter()
        .map(|p| Var::from_tensor(&p.as_tensor().copy()?))
        .collect()
}

#[test]
fn adam_resumes_exactly() -> anyhow::Result<()> {
    let ps = params()?;
    let mut adam = Adam::new(&ps)?;
    for k in 0..3 {
        adam.step(&ps, &grads(k)?, 0.01)?;
    }
    let saved: HashMap<String, Tensor> = adam.state()?.into_iter().collect();
    assert_eq!(saved.len(), 5, "m.0, m.1, v.0, v.1, t");
    let resumed_ps = copy(&ps)?;
    let mut resumed = Adam::new(&resumed_ps)?;
    resumed.load_state(&saved)?;
    assert_eq!(resumed.t, 3);
    for k in 3..6 {
        adam.step(&ps, &grads(k)?, 0.01)?;
        resumed.step(&resumed_ps, &grads(k)?, 0.01)?;
    }
    assert_eq!(values(&ps)?, values(&resumed_ps)?);

    let mut partial = saved.clone();
    partial.remove("v.1");
    let err = Adam::new(&ps)?
        .load_state(&partial)
        .unwrap_err()
        .to_string();
    assert!(err.contains("v.1"), "{err}");
    Ok(())
}

#[test]
fn sgd_resumes_exactly_and_starts_without_a_buffer() -> anyhow::Result<()> {
    let ps = params()?;
    let mut sgd = Sgd::new();
    assert!(sgd.state().is_empty() && sgd.buffer().is_none());
    let before = values(&ps)?;
    sgd.step(&ps, &grads(0)?, 0.5)?;
    // The first step's buffer is the gradient itself: θ − lr·g.
    let g0 = grads(0)?;
    let want: Vec<Vec<f32>> = before
        .iter()
        .zip(&g0)
        .map(|(p, g)| {
            let g: Vec<f32> = g.flatten_all()?.to_vec1()?;
            Ok(p.iter().zip(g).map(|(p, g)| p - 0.5 * g).collect())
        })
        .collect::<candle_core::Result<_>>()?;
    assert_eq!(values(&ps)?, want);

    let saved: HashMap<String, Tensor> = sgd.state().into_iter().collect();
    let resumed_ps = copy(&ps)?;
    let mut resumed = Sgd::new();
    resumed.load_state(&saved)?;
    for k in 1..4 {
        sgd.step(&ps, &grads(k)?, 0.5)?;
        resumed.step(&resumed_ps, &grads(k)?, 0.5)?;
    }
    assert_eq!(values(&ps)?, values(&resumed_ps)?);
    Ok(())
}
