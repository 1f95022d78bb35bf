#!/usr/bin/env python3
"""Summarises runs laid out as <out>/logs/<game>/<algo>/<group>/<env>.<time>_<seed>/progress.csv
(what scripts/minatar-ablation.sh writes) into <out>/summary.csv (one row per run, its last
logged values: game,algo,seed,frames,eprewmean,entropy,kl_step_mean,seconds) and <out>/curves.csv
(game,algo,seed,frames,eprewmean,seconds, every logged row).

    python3 scripts/summarise-runs.py docs/results/minatar_ablation
"""
import csv
import pathlib
import sys


def runs(out):
    for progress in sorted(pathlib.Path(out, "logs").glob("*/*/*/*/progress.csv")):
        run = progress.parent
        algo_dir = run.parent.parent
        game, algo = algo_dir.parent.name, algo_dir.name
        seed = run.name.rsplit("_", 1)[-1]
        with open(progress) as f:
            rows = list(csv.DictReader(f))
        if rows:
            yield game, algo, seed, rows


def main(out):
    summary, curves = [], []
    for game, algo, seed, rows in runs(out):
        for r in rows:
            curves.append([game, algo, seed, r["misc/total_timesteps"], r["eprewmean"],
                           r["misc/time_elapsed"]])
        last = rows[-1]
        summary.append([game, algo, seed, last["misc/total_timesteps"], last["eprewmean"],
                        last["entropy"], last.get("kl_step_mean", "nan"),
                        last["misc/time_elapsed"]])
    if not summary:
        sys.exit(f"summarise-runs: no progress.csv under {out}/logs/<game>/<algo>/<group>/<run>/")
    with open(pathlib.Path(out, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["game", "algo", "seed", "frames", "eprewmean", "entropy", "kl_step_mean",
                    "seconds"])
        w.writerows(summary)
    with open(pathlib.Path(out, "curves.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["game", "algo", "seed", "frames", "eprewmean", "seconds"])
        w.writerows(curves)
    print(f"{len(summary)} runs summarised in {out}/summary.csv")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
