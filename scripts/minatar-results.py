#!/usr/bin/env python3
"""Issue 16's MinAtar table from the MinAtar suite's finished runs.

Reads docs/results/suite/minatar/runs/<env>/<algo>/seed_<s>/progress.csv (written by
`suite suites/minatar.yaml --out docs/results/suite/minatar`) and writes
docs/results/minatar/summary.csv: one row per finished run (the last logged values), columns
game,algo,seed,frames,eprewmean,entropy,fps,wall_s. Unfinished runs (fewer frames than the
budget) are left out. Standard library only.
"""

import csv
import pathlib
import sys

BUDGET = 2_000_000
ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNS = ROOT / "docs/results/suite/minatar/runs"
OUT = ROOT / "docs/results/minatar/summary.csv"


def main() -> int:
    rows = []
    for progress in sorted(RUNS.glob("*/*/seed_*/progress.csv")):
        seed_dir = progress.parent
        algo, env = seed_dir.parent.name, seed_dir.parent.parent.name
        with progress.open() as f:
            records = list(csv.DictReader(f))
        if not records:
            continue
        last = records[-1]
        frames = int(float(last["misc/total_timesteps"]))
        if frames < BUDGET:
            continue
        wall = float(last["misc/time_elapsed"])
        rows.append(
            {
                "game": env.removeprefix("minatar_"),
                "algo": algo,
                "seed": seed_dir.name.removeprefix("seed_"),
                "frames": frames,
                "eprewmean": last["eprewmean"],
                "entropy": last["entropy"],
                "fps": round(frames / wall),
                "wall_s": round(wall),
            }
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="") as f:
        fields = ["game", "algo", "seed", "frames", "eprewmean", "entropy", "fps", "wall_s"]
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    print(f"{OUT.relative_to(ROOT)}: {len(rows)} finished runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
