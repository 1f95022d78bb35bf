//! Unit tests of the classic-control environments that need no Python (the Gymnasium parity
//! tests are in `classic_parity.rs`).

use rat_envs::classic::{self, Acrobot, CartPole, MountainCar, MountainCarContinuous, Pendulum};
use rat_envs::{Env, Error, Space, TimeLimit};

type Result<T = ()> = std::result::Result<T, Error>;

fn obs_for(env: &dyn Env) -> Vec<f64> {
    vec![0.0; env.observation_space().flat_dim()]
}

/// A random valid action for `env` (continuous ones drawn from 1.5x the box, to hit clipping).
fn random_action(env: &dyn Env, k: u64) -> Vec<f32> {
    // A small deterministic hash, so the tests need no RNG of their own.
    let u = ((k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64) / (1u64 << 53) as f64;
    match env.action_space() {
        Space::Discrete { n } => vec![((u * n as f64) as usize).min(n - 1) as f32],
        Space::Box { low, high } => low
            .iter()
            .zip(&high)
            .map(|(l, h)| (1.5 * (l + u * (h - l))) as f32)
            .collect(),
    }
}

#[test]
fn make_knows_exactly_the_five_ids() {
    let limits = [
        ("CartPole-v1", 500),
        ("Pendulum-v1", 200),
        ("Acrobot-v1", 500),
        ("MountainCar-v0", 200),
        ("MountainCarContinuous-v0", 999),
    ];
    assert_eq!(classic::IDS.len(), limits.len());
    for (id, limit) in limits {
        assert!(classic::IDS.contains(&id));
        let mut env = classic::make(id).expect(id);
        assert_eq!(env.id(), id);
        // The wrapper truncates exactly at the limit (the continuous car and the acrobot need
        // no luck: neither terminates under a zero/no-torque action from the reset state).
        let mut obs = obs_for(env.as_ref());
        env.reset(Some(0), &mut obs).unwrap();
        let idle = match env.action_space() {
            Space::Discrete { n } => vec![(n / 2) as f32],
            Space::Box { low, .. } => vec![0.0; low.len()],
        };
        if id == "CartPole-v1" {
            continue; // CartPole falls under any constant action; see `cartpole_truncates_at_500`.
        }
        for t in 1..=limit {
            let s = env.step(&idle, &mut obs).unwrap();
            assert!(!s.terminated, "{id} terminated at {t}");
            assert_eq!(s.truncated, t == limit, "{id} step {t}");
        }
    }
    assert!(classic::make("CartPole-v0").is_none());
    assert!(classic::make("Hopper-v4").is_none());
}

#[test]
fn spaces_are_gymnasiums() {
    let f = |x: f64| f64::from(x as f32);
    let cp = CartPole::new();
    assert_eq!(cp.action_space(), Space::Discrete { n: 2 });
    let theta = f(12.0 * 2.0 * std::f64::consts::PI / 360.0 * 2.0);
    assert_eq!(
        cp.observation_space().high().unwrap(),
        &[f(4.8), f64::INFINITY, theta, f64::INFINITY]
    );
    assert_eq!(
        Pendulum::new().action_space(),
        Space::Box {
            low: vec![-2.0],
            high: vec![2.0]
        }
    );
    assert_eq!(
        Pendulum::new().observation_space().high().unwrap(),
        &[1.0, 1.0, 8.0]
    );
    let pi = std::f64::consts::PI;
    assert_eq!(
        Acrobot::new().observation_space().high().unwrap(),
        &[1.0, 1.0, 1.0, 1.0, f(4.0 * pi), f(9.0 * pi)]
    );
    assert_eq!(Acrobot::new().action_space(), Space::Discrete { n: 3 });
    let mc = Space::Box {
        low: vec![f(-1.2), f(-0.07)],
        high: vec![f(0.6), f(0.07)],
    };
    assert_eq!(MountainCar::new().observation_space(), mc);
    assert_eq!(MountainCarContinuous::new().observation_space(), mc);
    assert_eq!(
        MountainCarContinuous::new().action_space(),
        Space::Box {
            low: vec![-1.0],
            high: vec![1.0]
        }
    );
}

#[test]
fn cartpole_terminates_outside_the_track_and_rewards_the_terminal_step_once() -> Result {
    let mut env = CartPole::new();
    let mut obs = [0.0; 4];
    env.set_state(&[2.39, 1.0, 0.0, 0.0])?;
    let s = env.step(&[1.0], &mut obs)?;
    assert!(s.terminated && !s.truncated, "{s:?}");
    assert_eq!(s.reward, 1.0);
    assert!(obs[0] > 2.4);
    // Gymnasium gives 0 for steps taken past the end without a reset.
    let s = env.step(&[1.0], &mut obs)?;
    assert!(s.terminated);
    assert_eq!(s.reward, 0.0);
    // Inside the track and upright: not terminal.
    env.set_state(&[2.3, 0.0, 0.0, 0.0])?;
    assert!(!env.step(&[0.0], &mut obs)?.terminated);
    // Pole past 12 degrees.
    env.set_state(&[0.0, 0.0, 0.21, 0.0])?;
    assert!(env.step(&[0.0], &mut obs)?.terminated);
    Ok(())
}

#[test]
fn cartpole_truncates_at_500() -> Result {
    let mut env = TimeLimit::new(CartPole::new(), CartPole::MAX_EPISODE_STEPS);
    let mut obs = [0.0; 4];
    env.reset(Some(1), &mut obs)?;
    for t in 1..=500 {
        // Push towards the side the pole falls to.
        let a = f32::from(obs[2] + 0.5 * obs[3] + 0.01 * obs[0] + 0.1 * obs[1] > 0.0);
        let s = env.step(&[a], &mut obs)?;
        assert!(!s.terminated, "fell at step {t}");
        assert_eq!(s.truncated, t == 500, "step {t}");
        assert_eq!(s.reward, 1.0);
    }
    // A new episode starts the count again.
    env.reset(None, &mut obs)?;
    assert_eq!(env.elapsed(), 0);
    Ok(())
}

#[test]
fn reset_is_deterministic_per_seed_and_continues_without_one() -> Result {
    for id in classic::IDS {
        let mut a = classic::make(id).unwrap();
        let mut b = classic::make(id).unwrap();
        let (mut oa, mut ob) = (obs_for(a.as_ref()), obs_for(b.as_ref()));
        a.reset(Some(42), &mut oa)?;
        b.reset(Some(42), &mut ob)?;
        assert_eq!(oa, ob, "{id}");
        let first = oa.clone();
        a.reset(None, &mut oa)?;
        b.reset(None, &mut ob)?;
        assert_eq!(oa, ob, "{id}: the stream continues the same way");
        assert_ne!(oa[0], first[0], "{id}: reset(None) must draw new noise");
        a.reset(Some(43), &mut oa)?;
        assert_ne!(oa[0], first[0], "{id}: another seed, another state");
        a.reset(Some(42), &mut oa)?;
        assert_eq!(oa, first, "{id}: re-seeding restarts the stream");
        // Never seeded: entropy, still valid.
        let mut c = classic::make(id).unwrap();
        c.reset(None, &mut oa)?;
        assert!(oa.iter().all(|x| x.is_finite()));
    }
    Ok(())
}

#[test]
fn reset_noise_has_gymnasiums_ranges() -> Result {
    let pi = std::f64::consts::PI;
    let (mut cp, mut pe, mut ac, mut mc, mut mcc) = (
        CartPole::new(),
        Pendulum::new(),
        Acrobot::new(),
        MountainCar::new(),
        MountainCarContinuous::new(),
    );
    let (mut o2, mut o3, mut o4, mut o6) = ([0.0; 2], [0.0; 3], [0.0; 4], [0.0; 6]);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for seed in 0..2000 {
        cp.reset(Some(seed), &mut o4)?;
        for x in cp.state() {
            assert!((-0.05..0.05).contains(&x));
            lo = lo.min(x);
            hi = hi.max(x);
        }
        pe.reset(Some(seed), &mut o3)?;
        let s = pe.state();
        assert!(
            (-pi..pi).contains(&s[0]) && (-1.0..1.0).contains(&s[1]),
            "{s:?}"
        );
        ac.reset(Some(seed), &mut o6)?;
        for x in ac.state() {
            assert!((-0.1..=0.1).contains(&x));
            assert_eq!(
                x,
                f64::from(x as f32),
                "Gymnasium stores the initial acrobot state as float32"
            );
        }
        mc.reset(Some(seed), &mut o2)?;
        let s = mc.state();
        assert!((-0.6..-0.4).contains(&s[0]) && s[1] == 0.0, "{s:?}");
        mcc.reset(Some(seed), &mut o2)?;
        let s = mcc.state();
        assert!((-0.6..-0.4).contains(&s[0]) && s[1] == 0.0, "{s:?}");
    }
    // Uniform over the whole interval, not a corner of it.
    assert!(lo < -0.049 && hi > 0.049, "{lo} {hi}");
    Ok(())
}

#[test]
fn observations_stay_in_their_spaces() -> Result {
    for id in classic::IDS {
        let mut env = classic::make(id).unwrap();
        let mut obs = obs_for(env.as_ref());
        let Space::Box { low, high } = env.observation_space() else {
            panic!("{id}: box expected")
        };
        env.reset(Some(3), &mut obs)?;
        for k in 0..3000 {
            let s = env.step(&random_action(env.as_ref(), k), &mut obs)?;
            for (i, x) in obs.iter().enumerate() {
                assert!(
                    low[i] <= *x && *x <= high[i],
                    "{id}: obs[{i}] = {x} outside [{}, {}]",
                    low[i],
                    high[i]
                );
                assert_eq!(*x, f64::from(*x as f32), "{id}: observations are float32");
            }
            assert!(s.reward.is_finite());
            if s.done() {
                env.reset(None, &mut obs)?;
            }
        }
    }
    Ok(())
}

#[test]
fn bad_actions_and_buffers_are_errors() -> Result {
    for id in classic::IDS {
        let mut env = classic::make(id).unwrap();
        let mut obs = obs_for(env.as_ref());
        // Stepping before any reset is an error, not a panic.
        assert!(env.step(&[0.0], &mut obs).is_err(), "{id}");
        env.reset(Some(0), &mut obs)?;
        let bad: &[&[f32]] = if env.action_space().is_discrete() {
            &[
                &[],
                &[0.0, 1.0],
                &[-1.0],
                &[0.5],
                &[3.0],
                &[f32::NAN],
                &[f32::INFINITY],
            ]
        } else {
            &[
                &[],
                &[0.0, 1.0],
                &[f32::NAN],
                &[f32::INFINITY],
                &[f32::NEG_INFINITY],
            ]
        };
        for a in bad {
            assert!(
                matches!(env.step(a, &mut obs), Err(Error::InvalidAction { .. })),
                "{id}: {a:?}"
            );
        }
        let mut short = vec![0.0; obs.len() - 1];
        assert!(
            matches!(env.reset(Some(0), &mut short), Err(Error::Shape { .. })),
            "{id}"
        );
        assert!(
            matches!(env.step(&[0.0], &mut short), Err(Error::Shape { .. })),
            "{id}"
        );
        assert!(
            env.step(&[0.0], &mut obs).is_ok(),
            "{id}: still usable after errors"
        );
    }
    let mut cp = CartPole::new();
    assert!(matches!(cp.set_state(&[0.0; 3]), Err(Error::Shape { .. })));
    assert!(cp.set_state(&[0.0, f64::NAN, 0.0, 0.0]).is_err());
    assert!(cp.observe(&mut [0.0; 4]).is_err(), "no state yet");
    assert!(Pendulum::new().set_state(&[0.0; 3]).is_err());
    assert!(Acrobot::new().set_state(&[0.0; 2]).is_err());
    assert!(MountainCar::new().set_state(&[0.0]).is_err());
    assert!(MountainCarContinuous::new().set_state(&[0.0; 4]).is_err());
    Ok(())
}

#[test]
fn pendulum_clips_the_torque() -> Result {
    let (mut a, mut b) = (Pendulum::new(), Pendulum::new());
    let (mut oa, mut ob) = ([0.0; 3], [0.0; 3]);
    for state in [[0.5, 1.0], [3.0, -7.9], [-12.0, 0.0]] {
        a.set_state(&state)?;
        b.set_state(&state)?;
        assert_eq!(a.step(&[7.0], &mut oa)?, b.step(&[2.0], &mut ob)?);
        assert_eq!(oa, ob);
        assert!(oa[2].abs() <= 8.0);
    }
    // The cost at rest upright with no torque is zero, and it grows with the angle.
    a.set_state(&[0.0, 0.0])?;
    assert_eq!(a.step(&[0.0], &mut oa)?.reward, 0.0);
    a.set_state(&[std::f64::consts::PI, 0.0])?;
    assert!((a.step(&[0.0], &mut oa)?.reward + std::f64::consts::PI.powi(2)).abs() < 1e-12);
    Ok(())
}

#[test]
fn mountain_car_continuous_clips_the_force_but_charges_the_action() -> Result {
    let (mut a, mut b) = (MountainCarContinuous::new(), MountainCarContinuous::new());
    let (mut oa, mut ob) = ([0.0; 2], [0.0; 2]);
    a.set_state(&[-0.5, 0.01])?;
    b.set_state(&[-0.5, 0.01])?;
    let (sa, sb) = (a.step(&[5.0], &mut oa)?, b.step(&[1.0], &mut ob)?);
    assert_eq!(oa, ob, "the force is clipped to 1");
    assert!(
        (sa.reward + 2.5).abs() < 1e-12 && (sb.reward + 0.1).abs() < 1e-12,
        "{sa:?} {sb:?}"
    );
    // Reaching the flag pays 100 minus the action cost.
    a.set_state(&[0.449, 0.02])?;
    let s = a.step(&[0.0], &mut oa)?;
    assert!(s.terminated && s.reward == 100.0, "{s:?}");
    Ok(())
}

#[test]
fn mountain_car_goal_and_left_wall() -> Result {
    let mut env = MountainCar::new();
    let mut obs = [0.0; 2];
    env.set_state(&[0.49, 0.02])?;
    let s = env.step(&[2.0], &mut obs)?;
    assert!(s.terminated && s.reward == -1.0);
    // Hitting the left wall stops the car.
    env.set_state(&[-1.19, -0.05])?;
    assert!(!env.step(&[0.0], &mut obs)?.terminated);
    assert_eq!(obs, [f64::from(-1.2_f32), 0.0]);
    Ok(())
}

#[test]
fn acrobot_rewards_and_terminates_at_the_top() -> Result {
    let mut env = Acrobot::new();
    let mut obs = [0.0; 6];
    env.set_state(&[0.0, 0.0, 0.0, 0.0])?;
    let s = env.step(&[1.0], &mut obs)?;
    assert!(!s.terminated && s.reward == -1.0);
    // Hanging still stays (almost: cos(−π/2) is not exactly 0 in floating point) still.
    let rest = [1.0, 0.0, 1.0, 0.0, 0.0, 0.0];
    assert!(
        obs.iter().zip(rest).all(|(o, r)| (o - r).abs() < 1e-15),
        "{obs:?}"
    );
    env.set_state(&[std::f64::consts::PI, 0.0, 0.0, 0.0])?;
    let s = env.step(&[1.0], &mut obs)?;
    assert!(s.terminated && s.reward == 0.0, "{s:?}");
    // Velocities are bounded and angles wrapped, even from a state far outside.
    env.set_state(&[1e300, -1e12, 100.0, -100.0])?;
    env.step(&[2.0], &mut obs)?;
    let s = env.state();
    assert!(
        s[0].abs() <= std::f64::consts::PI && s[1].abs() <= std::f64::consts::PI,
        "{s:?}"
    );
    assert!(
        s[2].abs() <= 4.0 * std::f64::consts::PI && s[3].abs() <= 9.0 * std::f64::consts::PI,
        "{s:?}"
    );
    Ok(())
}
