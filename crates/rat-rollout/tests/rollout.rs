//! GAE, running statistics and PopArt against hand computations and independent formulas.

use candle_core::{Device, Tensor};
use rat_rollout::{
    ObsNormaliser, PopArt, RunningMeanStd, Trajectory, env_major, gae, td_errors, time_major,
};

/// Â_t = Σ_l (γλ)^l δ_{t+l}, stopping after the first step whose successor is terminal.
fn gae_by_sum(deltas: &[f64], nonterminal: &[f64], gl: f64) -> Vec<f64> {
    (0..deltas.len())
        .map(|t| {
            let (mut acc, mut w) = (0.0, 1.0);
            for s in t..deltas.len() {
                acc += w * deltas[s];
                if nonterminal[s] == 0.0 {
                    break;
                }
                w *= gl;
            }
            acc
        })
        .collect()
}

#[test]
fn gae_matches_the_discounted_sum_of_td_errors() -> anyhow::Result<()> {
    // T = 4 steps, E = 2 environments, time-major. Env 1 finishes at step 1 (done before step 2).
    let rewards = [1.0, 0.5, 0.0, 2.0, -1.0, 1.0, 0.3, 0.2];
    let values = [0.2, 0.1, 0.4, 0.3, -0.2, 0.5, 0.0, 0.9];
    let dones_before = [false, false, false, false, false, true, false, false];
    let (last_values, last_dones) = ([0.7, 0.6], [false, true]);
    let (gamma, lambda) = (0.999, 0.95);
    let traj = Trajectory {
        rewards: rewards.to_vec(),
        values: values.to_vec(),
        dones_before: dones_before.to_vec(),
        last_values: last_values.to_vec(),
        last_dones: last_dones.to_vec(),
        num_envs: 2,
    };
    let out = gae(&traj, gamma, lambda)?;
    let deltas = td_errors(&traj, gamma)?;
    for e in 0..2 {
        let col = |x: &[f64]| (0..4).map(|t| x[t * 2 + e]).collect::<Vec<_>>();
        let next_done: Vec<bool> = (0..4)
            .map(|t| {
                if t == 3 {
                    last_dones[e]
                } else {
                    dones_before[(t + 1) * 2 + e]
                }
            })
            .collect();
        let next_v: Vec<f64> = (0..4)
            .map(|t| {
                if t == 3 {
                    last_values[e]
                } else {
                    values[(t + 1) * 2 + e]
                }
            })
            .collect();
        let nonterminal: Vec<f64> = next_done
            .iter()
            .map(|&d| if d { 0.0 } else { 1.0 })
            .collect();
        let (r, v) = (col(&rewards), col(&values));
        let d: Vec<f64> = (0..4)
            .map(|t| r[t] + gamma * next_v[t] * nonterminal[t] - v[t])
            .collect();
        assert_eq!(col(&deltas), d);
        let expected = gae_by_sum(&d, &nonterminal, gamma * lambda);
        for (a, b) in col(&out.advantages).iter().zip(&expected) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }
    for ((r, a), v) in out.returns.iter().zip(&out.advantages).zip(&values) {
        assert!((r - a - v).abs() < 1e-15);
    }
    // By hand: env 1 at t = 1 (index 3) has a terminal successor, so Â = δ = 2.0 − 0.3.
    assert!((out.advantages[3] - 1.7).abs() < 1e-12);
    Ok(())
}

fn trajectory(t: usize, values: usize, last_values: usize) -> Trajectory {
    Trajectory {
        rewards: vec![1.0; t],
        values: vec![0.0; values],
        dones_before: vec![false; t],
        last_values: vec![0.0; last_values],
        last_dones: vec![false; 2],
        num_envs: 2,
    }
}

#[test]
fn gae_rejects_mismatched_buffers() {
    assert!(gae(&trajectory(6, 6, 2), 0.99, 0.95).is_ok());
    // Too few values, too many last values, rewards that do not split into two environments.
    for bad in [
        trajectory(6, 5, 2),
        trajectory(6, 6, 3),
        trajectory(5, 5, 2),
    ] {
        assert!(gae(&bad, 0.99, 0.95).is_err());
        assert!(td_errors(&bad, 0.99).is_err());
    }
}

#[test]
fn env_major_reorders_rows() -> anyhow::Result<()> {
    // T = 2, E = 3, rows of width 2: element (t, e) holds [10t + e, -(10t + e)].
    let x: Vec<i32> = (0..2)
        .flat_map(|t| (0..3).flat_map(move |e| [10 * t + e, -(10 * t + e)]))
        .collect();
    let y = env_major(&x, 3, 2)?;
    assert_eq!(y, vec![0, 0, 10, -10, 1, -1, 11, -11, 2, -2, 12, -12]);
    assert!(env_major(&x, 5, 2).is_err());
    // time_major undoes it.
    assert_eq!(time_major(&y, 3, 2)?, x);
    assert!(time_major(&y, 5, 2).is_err());
    Ok(())
}

#[test]
fn running_mean_std_follows_the_reference_merge_rule() -> anyhow::Result<()> {
    let mut rms = RunningMeanStd::new(1, 1.0);
    rms.update(&[1.0, 3.0])?;
    // μ_b = 2, unbiased σ_b² = 2, n = 2: μ' = 4/3, var' = (1 + 4 + 8/3)/3 = 23/9, count 3.
    assert!((rms.mean[0] - 4.0 / 3.0).abs() < 1e-15);
    assert!((rms.var[0] - 23.0 / 9.0).abs() < 1e-15);
    assert_eq!(rms.count, 3.0);
    assert!(rms.update(&[1.0, f64::NAN]).is_err());
    assert!(RunningMeanStd::new(3, 1.0).update(&[1.0, 2.0]).is_err());
    Ok(())
}

#[test]
fn running_statistics_approach_two_pass_statistics() -> anyhow::Result<()> {
    let mut rms = RunningMeanStd::new(2, 1e-4);
    let rows: Vec<f64> = (0..20_000)
        .flat_map(|i| {
            let x = (i as f64 * 0.37).sin() * 3.0 + 1.0;
            [x, 0.5 * x * x]
        })
        .collect();
    for batch in rows.chunks(2 * 1000) {
        rms.update(batch)?;
    }
    for k in 0..2 {
        let col: Vec<f64> = rows.iter().skip(k).step_by(2).copied().collect();
        let n = col.len() as f64;
        let mean = col.iter().sum::<f64>() / n;
        let var = col.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        assert!((rms.mean[k] - mean).abs() < 1e-6 * (1.0 + mean.abs()));
        assert!(
            (rms.var[k] - var).abs() < 2e-3 * var,
            "{} vs {var}",
            rms.var[k]
        );
    }
    Ok(())
}

#[test]
fn observation_normaliser_centres_scales_and_clips() -> anyhow::Result<()> {
    let mut norm = ObsNormaliser::new(2);
    norm.stats.mean = vec![1.0, -2.0];
    norm.stats.var = vec![4.0, 0.01];
    let mut out = [0.0f32; 4];
    norm.normalise(&[3.0, -2.0, 1.0, 10.0], &mut out)?;
    let s0 = (4.0f32 + 1e-5).sqrt();
    assert!((out[0] - 2.0 / s0).abs() < 1e-6);
    assert_eq!(out[1], 0.0);
    assert_eq!(out[2], 0.0);
    assert_eq!(out[3], 5.0, "clipped at +5");
    assert!(norm.normalise(&[1.0], &mut out[..1]).is_err());
    Ok(())
}

#[test]
fn popart_statistics_and_output_preserving_rescale() -> anyhow::Result<()> {
    let mut pa = PopArt::default();
    let s0 = pa.stats();
    assert_eq!(s0.mean, 0.0);
    assert!((s0.std - 1e-3).abs() < 1e-15, "initial σ = √ε");
    let returns = [10.0, 20.0, 30.0];
    let (old, new) = pa.update(&returns)?;
    assert_eq!(old, s0);
    // After one update the debiased statistics are the batch's own (c = 1 − β).
    assert!((new.mean - 20.0).abs() < 1e-6);
    assert!((new.std - (200.0f64 / 3.0).sqrt()).abs() < 1e-5);

    let dev = Device::Cpu;
    let w = Tensor::new(&[[0.3f64, -0.7, 1.1]], &dev)?;
    let b = Tensor::new(&[0.25f64], &dev)?;
    let h = Tensor::new(&[[1.0f64, 2.0, 3.0], [-1.0, 0.5, 0.0]], &dev)?;
    let (old, new) = pa.update(&[5.0, 100.0])?;
    let (w2, b2) = PopArt::rescale_head(&w, &b, old, new)?;
    let y_old = h
        .matmul(&w.t()?)?
        .broadcast_add(&b)?
        .affine(old.std, old.mean)?;
    let y_new = h
        .matmul(&w2.t()?)?
        .broadcast_add(&b2)?
        .affine(new.std, new.mean)?;
    let diff = y_old.sub(&y_new)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert!(diff < 1e-9, "unnormalised outputs changed by {diff}");
    assert!(pa.update(&[]).is_err());
    Ok(())
}
