#!/usr/bin/env bash
# What `--video_every K` costs a training run (docs/benchmarks.md, "Rendering and videos").
#
#   scripts/video-overhead.sh logs/<run>/   [K (50)] [ITERATIONS (60)]
#
# Resumes the finished run in <run> (e.g. Hopper-v4 after 1 M steps, whose episodes last the full
# 1,000 steps) for ITERATIONS more iterations twice, from two copies of its directory under
# $TMPDIR (never in the run itself): once without videos and once with --video_every K. Prints
# both wall times; the recorder's own seconds are the TensorBoard scalar time/video of the second
# copy. Needs a release build with the MuJoCo feature for MuJoCo runs.
set -euo pipefail
RUN="${1:?usage: scripts/video-overhead.sh logs/<run>/ [K] [ITERATIONS]}"
K="${2:-50}"
MORE="${3:-60}"
BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target/release/examples/train_detach"
[ -x "$BIN" ] || { echo "video-overhead: build first: cargo build --release --features mujoco --examples"; exit 1; }
[ -f "$RUN/model.safetensors" ] || { echo "video-overhead: no $RUN/model.safetensors"; exit 1; }
# The run's size: iterations done and steps per iteration, from its config and last row.
DONE=$(tail -1 "$RUN/progress.csv" | python3 -c "
import csv, sys
head = next(csv.reader(open('$RUN/progress.csv')))
row = next(csv.reader(sys.stdin))
print(int(float(row[head.index('misc/nupdates')])))")
STEPS=$(python3 -c "
import re
t = open('$RUN/config.yaml').read()
g = lambda k: int(re.search(r'^\s*' + k + r':\s*(\d+)', t, re.M).group(1))
print(g('num_envs') * g('nsteps'))")
# floor(B / steps) + 2 iterations in all.
BUDGET=$(( (DONE + MORE - 2) * STEPS ))
TMP="$(mktemp -d)"
for v in 0 "$K"; do
    cp -r "$RUN" "$TMP/copy_$v"
    start=$(date +%s.%N)
    "$BIN" --resume "$TMP/copy_$v/model.safetensors" --timesteps_per_proc "$BUDGET" \
        --log_interval 1 --video_every "$v" --checkpoint_every 0 --quiet
    echo "video_every=$v: $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s wall for $MORE iterations"
done
echo "copies (with the TensorBoard files) in $TMP"
