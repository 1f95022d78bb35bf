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
``states`` (Asterix, Freeway, Seaquest): as ``frames`` with uniform random actions, plus the
game's state read from the package's public attributes: ``"state0"`` per episode and per step
``"state"`` (after the step) and ``"drew"`` (whether the game consumed random numbers in that
step, i.e. the RNG advanced beyond the wrapper's one sticky-action draw). ``"setup"`` (optional)
sets attributes of the game after each reset, to start from a chosen state. ``"policy"``:
``"random"`` (default), ``"dodge"`` (Asterix: 90 % of the time a random move among those not
onto or next to an enemy in the target row, so episodes last into the ramping), ``"up"``
(Freeway: up 70 % of the time: crossings, collisions, new speeds) or ``"dive"`` (Seaquest:
never surface without divers, surface when holding 6 or low on oxygen: surfacing rewards and
ramping).
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


def lanes(entities):
    return [None if e is None else {"x": int(e[0]), "right": bool(e[2]), "gold": bool(e[3])}
            for e in entities]


def swimmers(items, shots=False):
    return [{"x": int(e[0]), "y": int(e[1]), "right": bool(e[2]), "move_timer": int(e[3]),
             "shot_timer": int(e[4]) if shots else 0} for e in items]


def bullets(items):
    return [{"x": int(b[0]), "y": int(b[1]), "right": bool(b[2])} for b in items]


def game_state(game, g):
    """The game's state in the Rust structs' field names."""
    if game == "asterix":
        return {"player": [g.player_y, g.player_x], "lanes": lanes(g.entities),
                "spawn_speed": g.spawn_speed, "spawn_timer": g.spawn_timer,
                "move_speed": g.move_speed, "move_timer": g.move_timer,
                "ramp_timer": g.ramp_timer, "ramp_index": g.ramp_index}
    if game == "freeway":
        return {"pos": g.pos, "move_timer": g.move_timer, "terminate_timer": g.terminate_timer,
                "cars": [{"x": int(c[0]), "timer": int(c[2]), "speed": int(c[3])}
                         for c in g.cars]}
    return {"sub_x": g.sub_x, "sub_y": g.sub_y, "sub_right": bool(g.sub_or),
            "oxygen": g.oxygen, "divers_held": g.diver_count,
            "f_bullets": bullets(g.f_bullets), "e_bullets": bullets(g.e_bullets),
            "fish": swimmers(g.e_fish), "subs": swimmers(g.e_subs, True),
            "divers": swimmers(g.divers), "e_spawn_speed": g.e_spawn_speed,
            "e_spawn_timer": g.e_spawn_timer, "d_spawn_timer": g.d_spawn_timer,
            "move_speed": g.move_speed, "ramp_index": g.ramp_index,
            "shot_timer": g.shot_timer, "surface": bool(g.surface)}


MOVES = {0: (0, 0), 1: (0, -1), 2: (-1, 0), 3: (0, 1), 4: (1, 0), 5: (0, 0)}


def policy_action(spec, g, rng):
    a = int(rng.integers(6))
    policy = spec.get("policy", "random")
    if policy == "dodge" and rng.random() < 0.9:
        def safe(b):
            dy, dx = MOVES[b]
            y, x = min(max(g.player_y + dy, 1), 8), min(max(g.player_x + dx, 0), 9)
            e = g.entities[y - 1]
            return e is None or e[3] or abs(e[0] - x) > 1
        ok = [b for b in range(5) if safe(b)]
        if ok:
            a = ok[int(rng.integers(len(ok)))]
    elif policy == "up" and rng.random() < 0.7:
        a = 2
    elif policy == "dive":
        if g.diver_count != 0 and (g.diver_count >= 6 or g.oxygen < 30) and rng.random() < 0.9:
            a = 2
        elif a == 2 and g.sub_y == 1 and g.diver_count == 0:
            a = 4
    return a


def play_states(spec, rng):
    game = spec["game"]
    env = Environment(game, sticky_action_prob=0.0, difficulty_ramping=True)
    env.seed(spec["seed"])
    one_draw = np.random.RandomState()
    for _ in range(spec["episodes"]):
        env.reset()
        for k, v in spec.get("setup", {}).items():
            setattr(env.env, k, v)
        ep = {"frame0": cells(env.state()), "state0": game_state(game, env.env), "steps": []}
        for _ in range(spec.get("max_steps", 1000)):
            a = policy_action(spec, env.env, rng)
            before = env.random.get_state()
            r, t = env.act(a)
            one_draw.set_state(before)
            one_draw.rand()
            after, expected = env.random.get_state(), one_draw.get_state()
            drew = not (after[2] == expected[2] and np.array_equal(after[1], expected[1]))
            ep["steps"].append({"action": a, "reward": float(r), "terminal": bool(t),
                                "frame": cells(env.state()), "drew": drew,
                                "state": game_state(game, env.env)})
            if t:
                break
        print(json.dumps(ep))


def main():
    spec = json.load(sys.stdin)
    rng = np.random.default_rng(spec["seed"])
    if spec["mode"] == "states":
        play_states(spec, rng)
    elif spec["mode"] == "frames":
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
