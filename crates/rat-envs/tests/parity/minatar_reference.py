#!/usr/bin/env python3
"""Reference play of the MinAtar package (``minatar==1.0.15``, used as a black box).

Reads a JSON spec on stdin:

    {"game": "breakout", "mode": "frames", "episodes": 20, "seed": 3, "max_steps": 500}
    {"game": "breakout", "mode": "stats",  "episodes": 2000, "seed": 3}

``frames``: sticky actions off, actions from ``numpy.random.default_rng(seed)``: uniform over
the full set, or with ``"policy": "track"`` (Breakout) towards the ball's column 97 % of the
time, which keeps episodes long (brick rows cleared and respawned, every paddle bounce), or
``"policy": "aim"`` (Space Invaders) dodging and firing from under the nearest alien column 90 % of the time,
which clears waves (respawns, ramping); prints per episode one JSON line
``{"frame0": [...], "steps": [{"action", "reward", "terminal", "frame"}]}`` with each frame as
the flat indices of its set cells in (row, column, channel) order.
``stats``: the package's defaults (sticky 0.1, difficulty ramping), random full-set actions;
prints one line ``{"returns": [...], "lengths": [...]}``.
"""
import json
import logging
import sys
import warnings

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import numpy as np  # noqa: E402
from minatar import Environment  # noqa: E402


def cells(state):
    return np.flatnonzero(state.reshape(-1)).tolist()


def main():
    spec = json.load(sys.stdin)
    rng = np.random.default_rng(spec["seed"])
    if spec["mode"] == "frames":
        env = Environment(spec["game"], sticky_action_prob=0.0,
                          difficulty_ramping=spec.get("ramping", True))
        env.seed(spec["seed"])
        for _ in range(spec["episodes"]):
            env.reset()
            ep = {"frame0": cells(env.state()), "steps": []}
            for _ in range(spec.get("max_steps", 1000)):
                a = int(rng.integers(6))
                if spec.get("policy") == "track" and rng.random() < 0.97:
                    s = env.state()
                    ball = np.argwhere(s[:, :, 1])[0][1]
                    paddle = np.argwhere(s[:, :, 0])[0][1]
                    a = 1 if ball < paddle else 3 if ball > paddle else 0
                if spec.get("policy") == "aim" and rng.random() < 0.9:
                    s = env.state()
                    cannon = np.argwhere(s[:, :, 0])[0][1]
                    cols = np.flatnonzero(s[:, :, 1].any(axis=0))
                    def safe(c):
                        return 0 <= c <= 9 and not s[5:, c, 5].any()
                    if not safe(cannon):  # dodge a bullet coming down this column
                        a = 1 if safe(cannon - 1) else 3
                    elif len(cols):
                        target = cols[np.argmin(np.abs(cols - cannon))]
                        step = 0 if target == cannon else -1 if target < cannon else 1
                        a = 5 if step == 0 or not safe(cannon + step) else 1 if step < 0 else 3
                r, t = env.act(a)
                ep["steps"].append({"action": a, "reward": float(r), "terminal": bool(t),
                                    "frame": cells(env.state())})
                if t:
                    break
            print(json.dumps(ep))
    else:
        env = Environment(spec["game"])
        env.seed(spec["seed"])
        returns, lengths = [], []
        for _ in range(spec["episodes"]):
            env.reset()
            total, n, t = 0.0, 0, False
            while not t and n < spec.get("max_steps", 100000):
                r, t = env.act(int(rng.integers(6)))
                total += r
                n += 1
            returns.append(total)
            lengths.append(n)
        print(json.dumps({"returns": returns, "lengths": lengths}))


if __name__ == "__main__":
    main()
