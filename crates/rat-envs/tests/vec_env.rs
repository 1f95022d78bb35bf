//! The vectoriser: threaded stepping equals sequential stepping, auto-reset keeps the final
//! observation and the episode statistics, bad input is an error; the registry's names.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rat_envs::{Env, EpisodeStats, Error, Space, Step, TimeLimit, VecEnv};

/// A random walk x ← x + a + noise with reward −|x|, terminal when |x| > 3.
struct Walk {
    x: f64,
    rng: ChaCha8Rng,
}

impl Walk {
    fn new() -> Self {
        Self {
            x: 0.0,
            rng: ChaCha8Rng::seed_from_u64(99),
        }
    }
}

impl Env for Walk {
    fn id(&self) -> &str {
        "Walk"
    }
    fn observation_space(&self) -> Space {
        Space::unbounded(2)
    }
    fn action_space(&self) -> Space {
        Space::uniform_box(1, -1.0, 1.0)
    }
    fn reset(&mut self, seed: Option<u64>, obs: &mut [f64]) -> rat_envs::Result<()> {
        if let Some(s) = seed {
            self.rng = ChaCha8Rng::seed_from_u64(s);
        }
        self.x = self.rng.random_range(-0.5..0.5);
        obs.copy_from_slice(&[self.x, 0.0]);
        Ok(())
    }
    fn step(&mut self, action: &[f32], obs: &mut [f64]) -> rat_envs::Result<Step> {
        let [a] = action else {
            return Err(Error::InvalidAction {
                env: "Walk".into(),
                msg: format!("{action:?}"),
            });
        };
        self.x += *a as f64 + self.rng.random_range(-1.0..1.0);
        obs.copy_from_slice(&[self.x, *a as f64]);
        Ok(Step {
            reward: -self.x.abs(),
            terminated: self.x.abs() > 3.0,
            truncated: false,
        })
    }
}

fn walks(n: usize, workers: usize) -> VecEnv {
    let envs: Vec<Box<dyn Env>> = (0..n)
        .map(|_| Box::new(TimeLimit::new(Walk::new(), 7)) as Box<dyn Env>)
        .collect();
    VecEnv::new(envs, workers, 1000).unwrap()
}

fn actions(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

#[test]
fn threaded_stepping_equals_sequential_stepping() {
    for workers in [2, 3, 9] {
        threaded_equals_sequential(workers);
    }
}

fn threaded_equals_sequential(workers: usize) {
    let n = 9;
    let (mut seq, mut par) = (walks(n, 1), walks(n, workers));
    assert_eq!((seq.workers(), par.workers()), (1, workers));
    let (mut bs, mut bp) = (seq.buffers(), par.buffers());
    seq.reset(&mut bs.obs).unwrap();
    par.reset(&mut bp.obs).unwrap();
    assert_eq!(bs.obs, bp.obs);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut episodes = 0;
    for _ in 0..200 {
        let a = actions(&mut rng, n);
        seq.step(&a, &mut bs).unwrap();
        par.step(&a, &mut bp).unwrap();
        assert_eq!(bs.obs, bp.obs);
        assert_eq!(bs.rewards, bp.rewards);
        assert_eq!(bs.terminated, bp.terminated);
        assert_eq!(bs.truncated, bp.truncated);
        assert_eq!(bs.finished, bp.finished);
        for i in 0..n {
            if bs.done(i) {
                assert_eq!(
                    bs.final_obs[2 * i..2 * i + 2],
                    bp.final_obs[2 * i..2 * i + 2]
                );
            }
        }
        episodes += bs.episodes().count();
    }
    assert!(
        episodes > 100,
        "episodes should end by termination and by the time limit"
    );
}

#[test]
fn auto_reset_keeps_the_final_observation_and_episode_statistics() {
    let mut envs = walks(3, 2);
    let mut buf = envs.buffers();
    envs.reset(&mut buf.obs).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let (mut ret, mut len) = (vec![0.0; 3], vec![0usize; 3]);
    let (mut saw_terminal, mut saw_truncation) = (false, false);
    for _ in 0..300 {
        envs.step(&actions(&mut rng, 3), &mut buf).unwrap();
        for i in 0..3 {
            ret[i] += buf.rewards[i];
            len[i] += 1;
            if buf.done(i) {
                let (r, l) = buf.finished[i].expect("statistics of a finished episode");
                assert!((r - ret[i]).abs() < 1e-12 && l == len[i]);
                assert!(l <= 7, "the time limit truncates at 7 steps");
                // The terminal observation's x is the one that ended the episode.
                let x = buf.final_obs[2 * i];
                if buf.terminated[i] {
                    assert!(x.abs() > 3.0);
                    saw_terminal = true;
                } else {
                    assert_eq!(l, 7);
                    saw_truncation = true;
                }
                // obs already holds the next episode's first observation (second entry 0).
                assert_eq!(buf.obs[2 * i + 1], 0.0);
                (ret[i], len[i]) = (0.0, 0);
            } else {
                assert!(buf.finished[i].is_none());
            }
        }
    }
    assert!(saw_terminal && saw_truncation);
}

/// Panics at its third step.
struct Fragile(usize);

impl Env for Fragile {
    fn id(&self) -> &str {
        "Fragile"
    }
    fn observation_space(&self) -> Space {
        Space::unbounded(1)
    }
    fn action_space(&self) -> Space {
        Space::Discrete { n: 2 }
    }
    fn reset(&mut self, _seed: Option<u64>, obs: &mut [f64]) -> rat_envs::Result<()> {
        obs[0] = 0.0;
        Ok(())
    }
    fn step(&mut self, _action: &[f32], obs: &mut [f64]) -> rat_envs::Result<Step> {
        self.0 += 1;
        assert!(self.0 < 3, "fragile environment breaks");
        obs[0] = self.0 as f64;
        Ok(Step {
            reward: 0.0,
            terminated: false,
            truncated: false,
        })
    }
}

#[test]
fn a_panicking_environment_is_an_error_not_a_hang() {
    let envs: Vec<Box<dyn Env>> = (0..4)
        .map(|_| Box::new(Fragile(0)) as Box<dyn Env>)
        .collect();
    let mut envs = VecEnv::new(envs, 2, 0).unwrap();
    let mut buf = envs.buffers();
    envs.reset(&mut buf.obs).unwrap();
    envs.step(&[0.0; 4], &mut buf).unwrap();
    envs.step(&[1.0; 4], &mut buf).unwrap();
    let err = envs.step(&[0.0; 4], &mut buf).unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
}

#[test]
fn seeds_make_runs_reproducible() {
    let run = || {
        let mut envs = walks(4, 2);
        let mut buf = envs.buffers();
        envs.reset(&mut buf.obs).unwrap();
        envs.step(&[0.1, 0.2, 0.3, 0.4], &mut buf).unwrap();
        buf.obs
    };
    assert_eq!(run(), run());
}

#[test]
fn bad_input_is_an_error() {
    let mut envs = walks(2, 1);
    let mut buf = envs.buffers();
    assert!(envs.reset(&mut buf.obs[..3]).is_err());
    envs.reset(&mut buf.obs).unwrap();
    assert!(
        envs.step(&[0.0], &mut buf).is_err(),
        "one action for two envs"
    );
    let mut short = envs.buffers();
    short.rewards.pop();
    assert!(envs.step(&[0.0, 0.0], &mut short).is_err());
    assert!(VecEnv::new(Vec::new(), 1, 0).is_err());
    assert!(VecEnv::new(vec![Box::new(Walk::new())], 0, 0).is_err());
}

#[test]
fn registry_names() {
    let err = rat_envs::make("NoSuchEnv-v0", 1, 0)
        .err()
        .expect("unknown name");
    let msg = err.to_string();
    assert!(
        msg.contains("NoSuchEnv-v0") && msg.contains("CartPole-v1") && msg.contains("hopper"),
        "{msg}"
    );
    assert_eq!(rat_envs::resolve_id("humanoid").unwrap(), "Humanoid-v4");
    assert_eq!(rat_envs::resolve_id("Hopper-v5").unwrap(), "Hopper-v5");
    assert_eq!(rat_envs::resolve_id("cartpole").unwrap(), "CartPole-v1");
    #[cfg(not(feature = "mujoco"))]
    {
        let err = rat_envs::make_env("hopper")
            .err()
            .expect("MuJoCo is not built in");
        assert!(matches!(err, Error::MujocoUnavailable(_)));
        assert!(err.to_string().contains("scripts/fetch-mujoco.sh"), "{err}");
    }
}

#[test]
fn episode_statistics_wrapper_matches_the_vectoriser() {
    let mut single = EpisodeStats::new(TimeLimit::new(Walk::new(), 7));
    let mut venv = walks(1, 1);
    let mut buf = venv.buffers();
    let mut obs = [0.0; 2];
    single.reset(Some(1000), &mut obs).unwrap();
    venv.reset(&mut buf.obs).unwrap();
    assert_eq!(obs.as_slice(), buf.obs.as_slice());
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let mut ended = 0;
    for _ in 0..100 {
        let a = actions(&mut rng, 1);
        let s = single.step(&a, &mut obs).unwrap();
        venv.step(&a, &mut buf).unwrap();
        assert_eq!(single.last_episode(), buf.finished[0]);
        if s.done() {
            ended += 1;
            single.reset(None, &mut obs).unwrap();
        }
    }
    assert!(ended > 5);
}
