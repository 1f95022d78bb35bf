//! Generalised advantage estimation.

use crate::error::{Result, shape};

/// Advantages and returns of a rollout, time-major (index t·E + e).
#[derive(Debug, Clone, PartialEq)]
pub struct Advantages {
    /// Â_t, (T x E).
    pub advantages: Vec<f64>,
    /// R_t = Â_t + V_t, (T x E).
    pub returns: Vec<f64>,
}

fn check(op: &'static str, t: usize, e: usize, lens: &[(&str, usize, usize)]) -> Result<()> {
    if t == 0 || e == 0 {
        return shape(op, "need at least one step and one environment");
    }
    for (name, got, want) in lens {
        if got != want {
            return shape(
                op,
                format!("{name} has {got} elements, need {want} (T = {t}, E = {e})"),
            );
        }
    }
    Ok(())
}

/// A rollout's raw trajectories, time-major (index t·E + e): what GAE needs and nothing more.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    /// r_t, (T x E); a truncated episode's bootstrap γ·V(final obs) is already folded in.
    pub rewards: Vec<f64>,
    /// V(s_t), (T x E), unnormalised.
    pub values: Vec<f64>,
    /// The done flag the environment returned *before* step t (false at t = 0), (T x E).
    pub dones_before: Vec<bool>,
    /// V(s_T) of the observations after the last step, (E).
    pub last_values: Vec<f64>,
    /// The done flags returned by the last step, (E).
    pub last_dones: Vec<bool>,
    /// E, the number of environments.
    pub num_envs: usize,
}

impl Trajectory {
    /// Checks that the buffers are T x E, E and E long (T ≥ 1, E ≥ 1); returns T.
    pub fn check(&self, op: &'static str) -> Result<usize> {
        let e = self.num_envs;
        if e == 0 || !self.rewards.len().is_multiple_of(e) {
            return shape(
                op,
                format!(
                    "{} rewards do not split into {e} environments",
                    self.rewards.len()
                ),
            );
        }
        let t_len = self.rewards.len() / e;
        let n = t_len * e;
        check(
            op,
            t_len,
            e,
            &[
                ("values", self.values.len(), n),
                ("dones_before", self.dones_before.len(), n),
                ("last_values", self.last_values.len(), e),
                ("last_dones", self.last_dones.len(), e),
            ],
        )?;
        Ok(t_len)
    }
}

/// GAE(γ, λ) over a rollout of T steps of E environments, time-major (index t·E + e).
///
/// Going backwards, with nonterminal_t = 1 − (t = T−1 ? last_done : dones_before[t+1]) and
/// V_next = (t = T−1 ? last_value : V_{t+1}):
///
/// δ_t = r_t + γ·V_next·nonterminal_t − V_t,   Â_t = δ_t + γλ·nonterminal_t·Â_{t+1},   R_t = Â_t + V_t.
///
/// Termination cuts the bootstrap. Truncation is the caller's to fold into the reward
/// (r ← r + γ·V(final obs), as the reference does) before calling this.
pub fn gae(traj: &Trajectory, gamma: f64, lambda: f64) -> Result<Advantages> {
    let (deltas, nonterminal) = deltas_and_masks("gae", traj, gamma)?;
    let e = traj.num_envs;
    let t_len = traj.rewards.len() / e;
    let mut adv = vec![0.0; traj.rewards.len()];
    let mut next = vec![0.0; e];
    for t in (0..t_len).rev() {
        for (j, acc) in next.iter_mut().enumerate() {
            let k = t * e + j;
            *acc = deltas[k] + gamma * lambda * nonterminal[k] * *acc;
            adv[k] = *acc;
        }
    }
    let returns = adv.iter().zip(&traj.values).map(|(a, v)| a + v).collect();
    Ok(Advantages {
        advantages: adv,
        returns,
    })
}

/// The one-step TD errors δ_t of [`gae`] (the reference's `adv_type: td` uses them as the
/// advantages while keeping the GAE returns).
pub fn td_errors(traj: &Trajectory, gamma: f64) -> Result<Vec<f64>> {
    Ok(deltas_and_masks("td_errors", traj, gamma)?.0)
}

fn deltas_and_masks(
    op: &'static str,
    traj: &Trajectory,
    gamma: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let t_len = traj.check(op)?;
    let e = traj.num_envs;
    let Trajectory {
        rewards,
        values,
        dones_before,
        last_values,
        last_dones,
        ..
    } = traj;
    let n = t_len * e;
    let mut deltas = vec![0.0; n];
    let mut nonterminal = vec![0.0; n];
    for t in 0..t_len {
        for j in 0..e {
            let k = t * e + j;
            let (done_next, v_next) = if t + 1 == t_len {
                (last_dones[j], last_values[j])
            } else {
                (dones_before[k + e], values[k + e])
            };
            nonterminal[k] = if done_next { 0.0 } else { 1.0 };
            deltas[k] = rewards[k] + gamma * v_next * nonterminal[k] - values[k];
        }
    }
    Ok((deltas, nonterminal))
}

/// T of a (T x E) buffer of `len` values in rows of `width`, or an error naming `op`.
fn steps(len: usize, e: usize, width: usize, op: &'static str) -> Result<usize> {
    if e == 0 || width == 0 || !len.is_multiple_of(e * width) {
        return shape(
            op,
            format!("{len} values do not split into {e} environments of rows of {width}"),
        );
    }
    Ok(len / (e * width))
}

/// Reorders a time-major (T x E) buffer of rows of `width` values to env-major (index e·T + t),
/// the reference's flattening of a rollout.
pub fn env_major<T: Copy>(x: &[T], num_envs: usize, width: usize) -> Result<Vec<T>> {
    let (e, t_len) = (num_envs, steps(x.len(), num_envs, width, "env_major")?);
    let mut out = Vec::with_capacity(x.len());
    for j in 0..e {
        for t in 0..t_len {
            let k = (t * e + j) * width;
            out.extend_from_slice(&x[k..k + width]);
        }
    }
    Ok(out)
}

/// The inverse of [`env_major`]: an env-major buffer (index e·T + t, rows of `width`) back to
/// time-major (T x E).
pub fn time_major<T: Copy>(x: &[T], num_envs: usize, width: usize) -> Result<Vec<T>> {
    let (e, t_len) = (num_envs, steps(x.len(), num_envs, width, "time_major")?);
    let mut out = Vec::with_capacity(x.len());
    for t in 0..t_len {
        for j in 0..e {
            let k = (j * t_len + t) * width;
            out.extend_from_slice(&x[k..k + width]);
        }
    }
    Ok(out)
}
