//! The runner against a hand computation: a deterministic environment with a time limit, so the
//! truncation bootstrap r + γ·V(final obs), the done-flag convention of GAE and the env-major
//! flattening are all exercised, with values from the agent's own critic.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rat_envs::{Env, Space, Step, TimeLimit, VecEnv};
use rat_train::config::Config;
use rat_train::loops::rollout::{Runner, Squash, advantages};
use rat_train::nets::Actor;
use rat_train::nets::agent::Agent;
use rat_train::nets::{ActionMode, select_actions};

/// Observation [t / 10, offset], reward 1 + t / 100; never terminates by itself.
struct Clock {
    t: usize,
    offset: f64,
}

impl Env for Clock {
    fn id(&self) -> &str {
        "Clock"
    }
    fn observation_space(&self) -> Space {
        Space::unbounded(2)
    }
    fn action_space(&self) -> Space {
        Space::Discrete { n: 2 }
    }
    fn reset(&mut self, _seed: Option<u64>, obs: &mut [f64]) -> rat_envs::Result<()> {
        self.t = 0;
        obs.copy_from_slice(&[0.0, self.offset]);
        Ok(())
    }
    fn step(&mut self, _action: &[f32], obs: &mut [f64]) -> rat_envs::Result<Step> {
        let reward = 1.0 + self.t as f64 / 100.0;
        self.t += 1;
        obs.copy_from_slice(&[self.t as f64 / 10.0, self.offset]);
        Ok(Step {
            reward,
            terminated: false,
            truncated: false,
        })
    }
}

#[test]
fn rollout_matches_a_hand_computed_gae_with_the_truncation_bootstrap() -> anyhow::Result<()> {
    // Not the reference's 0.999 / 0.95: the `gamma` and `gae_lambda` keys must reach both the
    // bootstrap and GAE.
    const GAMMA: f64 = 0.97;
    const LAMBDA: f64 = 0.9;
    const LIMIT: usize = 3;
    const T: usize = 5;
    let offsets = [0.5, -1.0];
    let envs: Vec<Box<dyn Env>> = offsets
        .iter()
        .map(|&offset| Box::new(TimeLimit::new(Clock { t: 0, offset }, LIMIT)) as Box<dyn Env>)
        .collect();
    let vec_env = VecEnv::new(envs, 1, 0)?;
    let mut config = Config::default_rat();
    config.nets_config.a_hidden_size = 8;
    config.nets_config.c_hidden_size = 8;
    config.algo_config.gamma = GAMMA;
    config.algo_config.gae_lambda = LAMBDA;
    let dev = rat_train::cli::test_device()?;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let agent = Agent::new(
        &config,
        vec_env.observation_space(),
        vec_env.image_shape(),
        vec_env.action_space(),
        &dev,
        &mut rng,
    )?;
    let mut runner = Runner::new(vec_env, config.algo_config.gamma)?;
    let ro = runner.run(&agent, T, &dev, &mut rng)?;
    let est = advantages(&ro.trajectory, &config.algo_config)?;

    let v = |t: usize, offset: f64| -> anyhow::Result<f64> {
        Ok(agent.values(&agent.normalise(&[t as f64 / 10.0, offset], &dev)?)?[0])
    };
    for (e, &offset) in offsets.iter().enumerate() {
        // Episode clock at each rollout step: 0, 1, 2, then reset (after a truncation at 3), 0, 1.
        let clock: Vec<usize> = (0..T).map(|t| t % LIMIT).collect();
        let mut rewards = Vec::new();
        let mut values = Vec::new();
        let mut cut = Vec::new();
        for &c in &clock {
            let mut r = 1.0 + c as f64 / 100.0;
            let truncated = c + 1 == LIMIT;
            if truncated {
                r += GAMMA * v(LIMIT, offset)?;
            }
            rewards.push(r);
            values.push(v(c, offset)?);
            cut.push(truncated);
        }
        let last_value = v(clock[T - 1] + 1, offset)?;
        let mut adv = [0.0; T];
        let mut next = 0.0;
        for t in (0..T).rev() {
            let nonterminal = if cut[t] { 0.0 } else { 1.0 };
            let v_next = if t == T - 1 {
                last_value
            } else {
                values[t + 1]
            };
            let delta = rewards[t] + GAMMA * v_next * nonterminal - values[t];
            next = delta + GAMMA * LAMBDA * nonterminal * next;
            adv[t] = next;
        }
        for t in 0..T {
            let i = e * T + t;
            assert!(
                (est.advantages[i] - adv[t]).abs() < 1e-5,
                "env {e} t {t}: {} vs {}",
                est.advantages[i],
                adv[t]
            );
            assert!((est.returns[i] - (adv[t] + values[t])).abs() < 1e-5);
            assert_eq!(ro.obs[2 * i..2 * i + 2], [clock[t] as f64 / 10.0, offset]);
        }
    }
    // Two episodes ended (one per environment), each of length 3 and raw return 1 + 1.01 + 1.02:
    // the bootstrap goes into the training reward, never into the reported return.
    assert_eq!(ro.episodes.len(), 2);
    for (ret, len) in &ro.episodes {
        assert_eq!(*len, LIMIT);
        assert!((ret - 3.03).abs() < 1e-12);
    }
    Ok(())
}

#[test]
fn squash_and_action_modes() -> anyhow::Result<()> {
    let squash = Squash::for_space(&Space::Box {
        low: vec![-0.4, -1.0],
        high: vec![0.4, 1.0],
    })?;
    let mut out = [0f32; 2];
    squash.apply(&[0.5, -2.0], &mut out);
    // Only high[0] scales, as in the reference.
    assert!((out[0] - 0.5f32.tanh() * 0.4).abs() < 1e-7);
    assert!((out[1] - (-2.0f32).tanh() * 0.4).abs() < 1e-7);
    assert!(Squash::for_space(&Space::unbounded(2)).is_err());

    let mut config = Config::default_rat();
    config.nets_config.a_hidden_size = 4;
    let dev = rat_train::cli::test_device()?;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let obs = Tensor::new(&[[0.1f32, 0.2], [0.3, -0.4]], &dev)?;
    let agent = Agent::new(
        &config,
        &Space::unbounded(2),
        None,
        &Space::uniform_box(3, -1.0, 1.0),
        &dev,
        &mut rng,
    )?;
    let policy = agent.actor.policy(&obs, None)?;
    let mode = select_actions(&policy, ActionMode::Mode, &mut rng)?;
    let rat_train::nets::Policy::Gaussian(d) = &policy else {
        panic!("a box action space gives a Gaussian policy")
    };
    assert_eq!(mode, d.mean().flatten_all()?.to_vec1::<f32>()?);
    // σ = 1 at initialisation: samples spread around the mean.
    let draws: Vec<Vec<f32>> = (0..2000)
        .map(|_| select_actions(&policy, ActionMode::Sample, &mut rng))
        .collect::<Result<_, _>>()?;
    let m0 = draws.iter().map(|a| a[0] as f64).sum::<f64>() / 2000.0;
    let s0 = (draws
        .iter()
        .map(|a| (a[0] as f64 - m0).powi(2))
        .sum::<f64>()
        / 2000.0)
        .sqrt();
    assert!(
        (m0 - mode[0] as f64).abs() < 0.1,
        "mean {m0} vs {}",
        mode[0]
    );
    assert!((s0 - 1.0).abs() < 0.1, "std {s0}");
    Ok(())
}

use candle_core::Tensor;
