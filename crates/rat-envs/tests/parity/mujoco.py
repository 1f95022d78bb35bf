#!/usr/bin/env python3
"""Reference trajectories from Gymnasium 1.4.0's MuJoCo tasks (with mujoco 3.17.0).

    mujoco.py ENV_ID [ENV_ID ...] [--seed S] [--action-seed A] [--steps N] [--episode-cap C]

For each id it runs ``gymnasium.make(id)`` (Gymnasium's own TimeLimit applies) for ``N`` steps
in total: reset with ``seed, seed + 1, ...``, then random float32 actions drawn uniformly from
1.5x the action box (so MuJoCo's control clamping and Humanoid's unclipped control cost are
exercised) by ``numpy.random.default_rng(action_seed)``, one generator per id. An episode
ends when it is terminated or truncated, or after ``C`` steps (then the next one starts with a
new reset, so tasks that never terminate cover a reset too).

Prints one JSON object per line and episode:
``{"env", "seed", "qpos", "qvel", "obs0", "steps": [{"action", "obs", "reward", "terminated",
"truncated"}]}`` where qpos/qvel is the state right after Gymnasium's reset (to be injected
with ``set_state``) and obs0 the reset observation. Floats are printed with ``repr`` precision
(JSON round-trips float64 exactly).
"""

import argparse
import json
import os
import sys
import warnings

# This file is itself named mujoco.py: keep its directory off the path so that `import mujoco`
# (here and inside Gymnasium) finds the real package.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

import gymnasium  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402


def floats(values):
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def run(env_id, seed, action_seed, total, cap, out):
    env = gymnasium.make(env_id)
    rng = np.random.default_rng(action_seed)
    low, high = env.action_space.low, env.action_space.high
    done_steps, episode = 0, 0
    while done_steps < total:
        obs, _ = env.reset(seed=seed + episode)
        data = env.unwrapped.data
        record = {
            "env": env_id,
            "seed": seed + episode,
            "qpos": floats(data.qpos),
            "qvel": floats(data.qvel),
            "obs0": floats(obs),
            "steps": [],
        }
        for _ in range(cap):
            if done_steps >= total:
                break
            action = rng.uniform(1.5 * low, 1.5 * high).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            done_steps += 1
            record["steps"].append({
                "action": floats(action),
                "obs": floats(obs),
                "reward": float(reward),
                "terminated": bool(terminated),
                "truncated": bool(truncated),
            })
            if terminated or truncated:
                break
        out.write(json.dumps(record) + "\n")
        episode += 1
    env.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("env", nargs="+")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--action-seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--episode-cap", type=int, default=150)
    a = p.parse_args()
    if mujoco.__version__ != "3.17.0" or gymnasium.__version__ != "1.4.0":
        sys.exit(f"need mujoco 3.17.0 and gymnasium 1.4.0, have {mujoco.__version__} and {gymnasium.__version__}")
    warnings.simplefilter("ignore")  # v4 deprecation notices
    for env_id in a.env:
        run(env_id, a.seed, a.action_seed, a.steps, a.episode_cap, sys.stdout)


if __name__ == "__main__":
    main()
