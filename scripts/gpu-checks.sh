#!/usr/bin/env bash
# The GPU checks of the `cuda` feature, as one script for a GPU machine (through the device
# tool: carry target/cuda-dist/rat-cuda.tar.xz, about 19 MB, made by scripts/build-cuda.sh here).
#
#   scripts/gpu-checks.sh [ARCHIVE] [PART]   # default target/cuda-dist/rat-cuda.tar.xz, all
#
# PART is tests (1-2), bench (3-4), train (5) or all: a device call is limited to 10 minutes,
# so a session can run the parts in separate calls.
# Unpacks the archive into a temporary directory, then runs, each with its own time limit:
#   1. rat-core's cuSOLVER tests (CUDA against the CPU; errors, not NaN);
#   2. every rat-core and rat-train test binary with RAT_TEST_DEVICE=cuda;
#   3. the actor-update table (rat, fvp, diag, kfac, pg, ... at b = 1024) on GPU 0;
#   4. kernel construction, factored vs materialised, b = 1024, 4096, 8192;
#   5. train_detach on Humanoid-v4 (32 environments on the CPU cores, networks on GPU 0) for
#      24 iterations.
# Logs go to $OUT (the device tool's output folder) or ./gpu-checks; the summary is printed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARCHIVE="${1:-$ROOT/target/cuda-dist/rat-cuda.tar.xz}"
PART="${2:-all}"
case "$PART" in tests|bench|train|all) ;; *) echo "gpu-checks: PART is tests, bench, train or all"; exit 2 ;; esac
want() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
LOGS="${OUT:-$ROOT/gpu-checks}"
mkdir -p "$LOGS"
: > "$LOGS/summary.txt"
[ -f "$ARCHIVE" ] || { echo "gpu-checks: $ARCHIVE not found (scripts/build-cuda.sh makes it)"; exit 1; }
DIR="$(mktemp -d)"
tar xJf "$ARCHIVE" -C "$DIR"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$LOGS/gpu.txt"
ldd "$DIR/bin/test-cuda" | grep -E "cuda|cublas|curand|cusolver|nvJit" | tee "$LOGS/ldd.txt"

step() { # name seconds command...
    local name="$1" secs="$2"; shift 2
    local t0=$SECONDS
    timeout "$secs" "$DIR/run" "$@" > "$LOGS/$name.log" 2>&1
    local rc=$?
    printf '%-28s rc=%-4s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$LOGS/summary.txt"
}
if want tests; then
    step test-cuda 60 "$DIR/bin/test-cuda" --nocapture
    for t in "$DIR"/bin/test-*; do
        n="$(basename "$t")"
        [ "$n" = test-cuda ] && continue
        RAT_TEST_DEVICE=cuda step "$n-on-cuda" 120 "$t"
    done
fi
if want bench; then
    RAT_BENCH_DEVICE=0 RAT_BENCH_QUICK=1 RAT_BENCH_RUNS=30 step solvers 240 "$DIR/bin/solvers"
    RAT_BENCH_DEVICE=0 RAT_BENCH_B=1024,4096,8192 RAT_BENCH_MAX_J_GB=16 step kernel 240 "$DIR/bin/kernel"
fi
if want train; then
    (cd "$DIR" && step train-humanoid 400 "$DIR/bin/train_detach" --config configs/rat_mlp.yaml \
        --env_name humanoid --device 0 --timesteps_per_proc 180224 --log_dir "$DIR/logs")
fi
grep -h "^|" "$LOGS/solvers.log" "$LOGS/kernel.log" > "$LOGS/tables.md" 2>/dev/null
tail -n 3 "$LOGS/train-humanoid.log" >> "$LOGS/tables.md" 2>/dev/null
cat "$LOGS/summary.txt" "$LOGS/tables.md"
