#!/usr/bin/env python3
"""Reference trajectories from Gymnasium 1.4.0's classic-control environments.

Reads a JSON spec (the first argument, or stdin when there is none):

    {"env": "CartPole-v1",
     "episodes": [
        {"seed": 3, "policy": "random", "action_seed": 7},
        {"seed": 4, "actions": [[0], [1], [1]]},
        {"seed": 5, "policy": "balance", "max_steps": 600, "steps_after_done": 2},
        {"seed": 6, "state": [2.35, 1.0, 0.0, 0.0], "actions": [[1], [1], [1], [1]]}
     ]}

For each episode it runs ``gymnasium.make(env)`` (so Gymnasium's own TimeLimit applies),
resets with ``seed``, replaces the state by ``state`` if one is given (a float64 array, to
reach edge cases such as the speed limits quickly), records the unwrapped initial state and
observation, and steps until the episode is terminated or truncated, the explicit action list
is used up, or ``max_steps`` steps were taken. ``steps_after_done`` extra steps are taken after the end (to check what the
environment does when stepped past a terminal state). Policies:

* ``random``  — uniform actions from ``numpy.random.default_rng(action_seed)``; continuous
  actions are drawn from 1.5x the action box so that clipping is exercised;
* ``balance`` — CartPole: push towards the side the pole falls to (keeps it up for 500 steps);
* ``pump``    — Acrobot: torque along the second joint's velocity (swings up, terminates);
* ``momentum``— MountainCar(Continuous): push along the velocity (reaches the goal).

Prints one JSON object per line and episode:
``{"seed", "state0", "obs0", "steps": [{"action", "obs", "reward", "terminated", "truncated"}]}``.
Actions and observations are lists of floats (a discrete action is one integral float).
"""

import json
import sys

import gymnasium
import numpy as np


def policy_action(policy, env, obs, rng):
    space = env.action_space
    discrete = isinstance(space, gymnasium.spaces.Discrete)
    if policy == "random":
        if discrete:
            return int(rng.integers(space.n))
        return rng.uniform(1.5 * space.low, 1.5 * space.high).astype(np.float32)
    if policy == "balance":
        x, x_dot, theta, theta_dot = (float(v) for v in obs)
        return int(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0)
    if policy == "pump":
        return 2 if obs[5] > 0 else 0
    if policy == "momentum":
        if discrete:
            return 2 if obs[1] >= 0 else 0
        return np.array([1.0 if obs[1] >= 0 else -1.0], dtype=np.float32)
    raise ValueError(f"unknown policy {policy!r}")


def as_env_action(env, action):
    if isinstance(env.action_space, gymnasium.spaces.Discrete):
        return int(action[0]) if isinstance(action, (list, tuple)) else int(action)
    return np.asarray(action, dtype=np.float32).reshape(env.action_space.shape)


def observation(env):
    """The observation of an unwrapped environment's current state."""
    if hasattr(env, "_get_ob"):  # Acrobot
        return env._get_ob()
    if hasattr(env, "_get_obs"):  # Pendulum
        return env._get_obs()
    return np.array(env.state, dtype=np.float32)  # CartPole, MountainCar(Continuous)


def floats(values):
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def run_episode(env_id, ep):
    env = gymnasium.make(env_id)
    obs, _ = env.reset(seed=int(ep["seed"]))
    if "state" in ep:
        env.unwrapped.state = np.array(ep["state"], dtype=np.float64)
        obs = observation(env.unwrapped)
    state0 = floats(env.unwrapped.state)
    rng = np.random.default_rng(int(ep.get("action_seed", 0)))
    explicit = ep.get("actions")
    max_steps = int(ep.get("max_steps", 10**9))
    after = int(ep.get("steps_after_done", 0))
    out = {"seed": ep["seed"], "state0": state0, "obs0": floats(obs), "steps": []}
    done_at = None
    t = 0
    while t < max_steps:
        if explicit is not None:
            if t >= len(explicit):
                break
            action = as_env_action(env, explicit[t])
        else:
            action = as_env_action(env, policy_action(ep["policy"], env, obs, rng))
        obs, reward, terminated, truncated, _ = env.step(action)
        out["steps"].append(
            {
                "action": floats([action]) if isinstance(action, int) else floats(action),
                "obs": floats(obs),
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
            }
        )
        t += 1
        if done_at is None and (terminated or truncated):
            done_at = t
        if done_at is not None and t >= done_at + after:
            break
    env.close()
    return out


def main():
    import warnings

    warnings.simplefilter("ignore")  # stepping past the end warns; that is on purpose here
    text = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    spec = json.loads(text)
    assert gymnasium.__version__ == "1.4.0", f"need gymnasium 1.4.0, have {gymnasium.__version__}"
    for ep in spec["episodes"]:
        print(json.dumps(run_episode(spec["env"], ep)))


if __name__ == "__main__":
    main()
