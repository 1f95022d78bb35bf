#!/usr/bin/env bash
# The GPU checks of the `cuda` feature, as one script for a GPU machine (through the device
# tool: carry target/cuda-dist/rat-cuda.tar.xz, about 19 MB, made by scripts/build-cuda.sh here).
#
#   scripts/gpu-checks.sh [ARCHIVE] [PART[,PART...]]   # default target/cuda-dist/rat-cuda.tar.xz, all
#
# PART is tests (1-2), bench (3-4), train (5), nccl (6) or all: a device call is limited to 10
# minutes, so a session can run the parts in separate calls.
# Unpacks the archive into a temporary directory, then runs, each with its own time limit:
#   1. rat-core's cuSOLVER tests (CUDA against the CPU; errors, not NaN);
#   2. every rat-core and rat-train test binary with RAT_TEST_DEVICE=cuda;
#   3. the actor-update table (rat, fvp, diag, kfac, pg, ... at b = 1024) on GPU 0;
#   4. kernel construction, factored vs materialised, b = 1024, 4096, 8192;
#   5. train_detach on Humanoid-v4 (32 environments on the CPU cores, networks on GPU 0) for
#      24 iterations;
#   6. train_detach with `--dist nccl` (one NCCL rank on GPU 0) against `--dist single` (run
#      twice), rat and ppo on CartPole-v1, seed 1, networks on GPU 0, 5 iterations: the curves
#      must agree bit for bit (every column but the timings).
# The parts run in the order 6, 1-2, 3-4, 5. GPU_CHECKS_DEADLINE=S skips the steps that would
# start after S seconds; GPU_CHECKS_BENCH_SECS and GPU_CHECKS_TRAIN_SECS cap each bench and the
# training run (default 240 and 400 s), GPU_CHECKS_TRAIN_STEPS shortens part 5. summary.txt, tables.md and
# logs.tar.gz (every step's log) go to $OUT (the device tool's output folder) or ./gpu-checks;
# the summary is printed.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARCHIVE="${1:-$ROOT/target/cuda-dist/rat-cuda.tar.xz}"
PART="${2:-all}"
for p in ${PART//,/ }; do
    case "$p" in tests|bench|train|nccl|all) ;; *) echo "gpu-checks: PART is tests, bench, train, nccl, all or a comma-separated list"; exit 2 ;; esac
done
want() { [[ ",$PART," == *",all,"* || ",$PART," == *",$1,"* ]]; }
# A step that would start after DEADLINE seconds (default none) is skipped, so that one device
# call ends inside its limit with the logs of what ran.
DEADLINE="${GPU_CHECKS_DEADLINE:-0}"
# The device tool returns at most 8 files: the logs are packed into one archive at the end.
RESULTS="${OUT:-$ROOT/gpu-checks}"
LOGS="$(mktemp -d)"
mkdir -p "$RESULTS"
: > "$LOGS/summary.txt"
[ -f "$ARCHIVE" ] || { echo "gpu-checks: $ARCHIVE not found (scripts/build-cuda.sh makes it)"; exit 1; }
DIR="$(mktemp -d)"
tar xJf "$ARCHIVE" -C "$DIR"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$LOGS/gpu.txt"
ldd "$DIR/bin/test-cuda" | grep -E "cuda|cublas|curand|cusolver|nvJit|nccl" | tee "$LOGS/ldd.txt"

step() { # name seconds command...
    local name="$1" secs="$2"; shift 2
    if [ "$DEADLINE" -gt 0 ] && [ "$SECONDS" -ge "$DEADLINE" ]; then
        printf '%-28s skipped (deadline %ss)\n' "$name" "$DEADLINE" | tee -a "$LOGS/summary.txt"
        return
    fi
    local t0=$SECONDS
    timeout "$secs" "$DIR/run" "$@" > "$LOGS/$name.log" 2>&1
    local rc=$?
    printf '%-28s rc=%-4s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$LOGS/summary.txt"
}
export -f step
export DIR LOGS DEADLINE
if want nccl; then
    # The seed fixed, and `single` twice: a difference between the two single runs would be
    # the GPU's own non-determinism, not NCCL's.
    for cfg in rat_mlp ppo_mlp; do
        for d in single single2 nccl; do
            (cd "$DIR" && step "dist-$d-$cfg" 120 "$DIR/bin/train_detach" --config "configs/$cfg.yaml" \
                --env_name CartPole-v1 --device 0 --seed 1 --timesteps_per_proc 40960 \
                --log_interval 1 --dist "${d%2}" --log_dir "$DIR/dist-$d-$cfg")
        done
        for d in single2 nccl; do
            python3 - "$DIR/dist-single-$cfg" "$DIR/dist-$d-$cfg" <<'PY' 2>&1 | tee -a "$LOGS/summary.txt"
import csv, glob, sys
def curve(d):
    f = glob.glob(d + "/**/progress.csv", recursive=True)
    rows = list(csv.DictReader(open(f[0]))) if f else []
    return [{k: v for k, v in r.items() if "time" not in k and k != "fps"} for r in rows]
a, b = curve(sys.argv[1]), curve(sys.argv[2])
ok = bool(a) and a == b
diff = sorted({k for r, q in zip(a, b) for k in r if r[k] != q.get(k)})
print(f"{sys.argv[2].split('dist-')[-1]} vs single: {len(a)} iterations, "
      + ("identical" if ok else "DIFFER in " + ", ".join(diff[:8])))
PY
        done
    done
fi
if want tests; then
    step test-cuda 60 "$DIR/bin/test-cuda" --nocapture
    # The other binaries side by side (GPU_CHECKS_JOBS at once, default 8): one after another
    # they outlast a device call. GPU_CHECKS_TEST_THREADS=1 runs each binary's tests on one
    # thread: on an H200 (2026-12-04) test-jacobian, test-kaczmarz and test-linalg_clip hung
    # with the harness's parallel threads (all solving on the one GPU at once; the cuSOLVER
    # handle cache is per thread since) and passed in 13-17 s on one thread.
    # GPU_CHECKS_TESTS="jacobian nets" runs only those binaries; GPU_CHECKS_TEST_SECS caps each.
    ls "$DIR"/bin/test-* | grep -v '/test-cuda$' \
        | { if [ -n "${GPU_CHECKS_TESTS:-}" ]; then grep -E "/test-(${GPU_CHECKS_TESTS// /|})\$"; else cat; fi; } \
        | RAT_TEST_DEVICE=cuda xargs -P "${GPU_CHECKS_JOBS:-8}" -I{} \
            bash -c "step \"\$(basename {})-on-cuda\" ${GPU_CHECKS_TEST_SECS:-150} {} ${GPU_CHECKS_TEST_THREADS:+--test-threads=$GPU_CHECKS_TEST_THREADS}"
fi
if want bench; then
    RAT_BENCH_DEVICE=0 RAT_BENCH_QUICK=1 RAT_BENCH_RUNS=30 step solvers "${GPU_CHECKS_BENCH_SECS:-240}" "$DIR/bin/solvers"
    RAT_BENCH_DEVICE=0 RAT_BENCH_B=1024,4096,8192 RAT_BENCH_MAX_J_GB=16 step kernel "${GPU_CHECKS_BENCH_SECS:-240}" "$DIR/bin/kernel"
fi
if want train; then
    (cd "$DIR" && step train-humanoid "${GPU_CHECKS_TRAIN_SECS:-400}" "$DIR/bin/train_detach" --config configs/rat_mlp.yaml \
        --env_name humanoid --device 0 --timesteps_per_proc "${GPU_CHECKS_TRAIN_STEPS:-180224}" --log_dir "$DIR/logs")
fi
grep -h "^|" "$LOGS/solvers.log" "$LOGS/kernel.log" > "$LOGS/tables.md" 2>/dev/null
tail -n 3 "$LOGS/train-humanoid.log" >> "$LOGS/tables.md" 2>/dev/null
cat "$LOGS/summary.txt" "$LOGS/tables.md"
cp "$LOGS/summary.txt" "$LOGS/tables.md" "$RESULTS/"
tar czf "$RESULTS/logs.tar.gz" -C "$LOGS" .
