#!/bin/bash
# One run on R ranks against one process (issue 18): Humanoid-v4 with configs/rat_mlp.yaml for 12
# iterations (N = 8192), seed 1, as one process with candle on 2 threads, one process on 1 thread,
# 2 MPI ranks x 1 thread (replicated update), 2 ranks x 1 thread with dist_mode exact (the rows
# sharded, the layer factors gathered, the global solve on every rank) and with dist_mode block. Needs
#   cargo build --release --features "mujoco mpi" --example train_detach
# and OpenMPI (apt install openmpi-bin). Prints each run's per-iteration phases and steps/s.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/examples/train_detach
out=$(mktemp -d)
args=(--config rat_mlp.yaml --env_name humanoid --seed 1 --timesteps_per_proc 81920 --quiet --log_dir "$out")
root=()
[ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
echo "== 1 process x 2 threads"; "$bin" "${args[@]}" | tail -n 2
echo "== 1 process x 1 thread"; RAYON_NUM_THREADS=1 "$bin" "${args[@]}" | tail -n 2
echo "== 2 ranks x 1 thread (replicated)"
mpirun "${root[@]}" -np 2 -x RAYON_NUM_THREADS=1 "$bin" "${args[@]}" --dist mpi | tail -n 2
echo "== 2 ranks x 1 thread (dist_mode exact)"
mpirun "${root[@]}" -np 2 -x RAYON_NUM_THREADS=1 "$bin" "${args[@]}" --dist mpi --dist_mode exact |
    tail -n 3
echo "== 2 ranks x 1 thread (dist_mode block)"
mpirun "${root[@]}" -np 2 -x RAYON_NUM_THREADS=1 "$bin" "${args[@]}" --dist mpi --dist_mode block |
    tail -n 2
rm -rf "$out"
