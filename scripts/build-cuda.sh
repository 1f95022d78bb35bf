#!/usr/bin/env bash
# Builds the CUDA variant of the examples, benches and rat-core's and rat-train's test binaries
# without a GPU, and collects what a GPU machine needs to run them into one directory that fits
# the device tool's carry limit (64 MiB).
#
#   scripts/build-cuda.sh                 # into target/cuda-dist
#   scripts/build-cuda.sh --out DIR
#
# Toolchain: a real CUDA 13 toolkit when CUDA_HOME points at one (nvcc in $CUDA_HOME/bin, the
# driver stub in $CUDA_HOME/lib64/stubs); otherwise the PyPI toolchain of
# ../shared/gpu/cuda-toolchain.sh (nvcc 13.0 and a link-only libcuda stub; about 15 min the
# first time on 2 cores, nearly all of it nvcc compiling candle's kernels). The kernels target
# sm_90 (H100/H200) unless CUDA_COMPUTE_CAP says otherwise. Build directory: target/cuda, or
# RAT_CUDA_TARGET_DIR (to share one between checkouts).
#
# What the directory holds:
#   bin/      train_detach, train_shared, evaluate (examples); solvers, kernel, conv_kernel
#             (benches); rat-core's and rat-train's test binaries as test-<name> (test-cuda:
#             the cuSOLVER checks; the others run on a GPU with RAT_TEST_DEVICE=cuda)
#   mujoco/   libmujoco.so.3.17.0 and the Gymnasium model files (scripts/fetch-mujoco.sh)
#   configs/  the YAML configs
#   run       a wrapper: sets LD_LIBRARY_PATH (mujoco/, /usr/local/cuda/lib64, and lib/ if
#             present) and RAT_MUJOCO_DIR, then runs its arguments, e.g.
#               run bin/test-cuda            run bin/solvers
#               RAT_TEST_DEVICE=cuda run bin/test-jacobian
#   rat-cuda.tar.xz   everything above in one archive, about 19 MB (the binaries, about 600 MB,
#             embed the same candle kernels); unpack with `tar xJf rat-cuda.tar.xz`.
# The CUDA runtime libraries (libcudart.so.13, libcublas(Lt).so.13, libcurand.so.10,
# libcusolver.so.12, libcusparse.so.12, libnvJitLink.so.13) are not copied: they are hundreds of
# MB. The GPU machine must have them: `run` looks in /usr/local/cuda/lib64 and in the nvidia-*
# wheels of the machine's python3 (PyTorch's), and prints any that are still missing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/target/cuda-dist"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "build-cuda: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
die() { echo "build-cuda: error: $*" >&2; exit 1; }
cd "$ROOT"

# --- toolchain ---
if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then
    echo "build-cuda: using the CUDA toolkit in $CUDA_HOME"
    CUDA_HOME_GIVEN=1
    export PATH="$CUDA_HOME/bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
    [ -d "$CUDA_HOME/lib64/stubs" ] && export RUSTFLAGS="-L native=$CUDA_HOME/lib64/stubs -L native=$CUDA_HOME/lib64 ${RUSTFLAGS:-}"
else
    TC="$ROOT/../shared/gpu/cuda-toolchain.sh"
    [ -x "$TC" ] || [ -f "$TC" ] || die "no CUDA toolkit (set CUDA_HOME) and no $TC"
    cargo fetch --quiet
    echo "build-cuda: installing the PyPI CUDA 13.0 toolchain ($TC)"
    eval "$(bash "$TC" | grep '^export')"
fi
command -v nvcc >/dev/null || die "nvcc not found after setting up the toolchain"

# --- NCCL, for the link only (the `nccl` feature; candle links cudarc's libraries at build
# time). The GPU machine loads libnccl.so.2 from PyTorch's nvidia-nccl-cu13 wheel (`run` puts
# it on the path). With a real toolkit, a system libnccl (libnccl-dev) is used if there is one.
NCCL_WHEEL="nvidia_nccl_cu13-2.28.9-py3-none-manylinux_2_18_x86_64.whl"
NCCL_SHA256="e4553a30f34195f3fa1da02a6da3d6337d28f2003943aa0a3d247bbc25fefc42"
NL="${RAT_CUDA_VENV:-$HOME/.cache/rat/cuda-venv}/link"
if [ -z "${CUDA_HOME_GIVEN:-}" ] && [ ! -e "$NL/libnccl.so" ]; then
    mkdir -p "$NL/nccl"
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_18_x86_64 -d "$NL/nccl" "nvidia-nccl-cu13==2.28.9"
    echo "$NCCL_SHA256  $NL/nccl/$NCCL_WHEEL" | sha256sum -c --quiet \
        || die "$NCCL_WHEEL: checksum mismatch"
    unzip -o -j -q "$NL/nccl/$NCCL_WHEEL" 'nvidia/nccl/lib/libnccl.so.2' -d "$NL/nccl"
    ln -sf nccl/libnccl.so.2 "$NL/libnccl.so"
fi
export CARGO_TARGET_DIR="${RAT_CUDA_TARGET_DIR:-$ROOT/target/cuda}" CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
"$ROOT/scripts/fetch-mujoco.sh"

# --- build ---
FEATURES="cuda,mujoco,nccl"
echo "build-cuda: cargo build --release --features $FEATURES (examples, benches)"
cargo build --release --features "$FEATURES" \
    --example train_detach --example train_shared --example evaluate \
    --bench solvers --bench kernel --bench conv_kernel
echo "build-cuda: cargo test --release -p rat-core -p rat-train --no-run (cuda, nccl, mujoco)"
TESTS="$(cargo test --release -p rat-core -p rat-train --features rat-core/cuda,rat-core/nccl,rat-train/mujoco,rat-train/nccl \
    --no-run --message-format=json \
    | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"] \
            and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"] + " " + m["executable"])
')"
[ -n "$TESTS" ] || die "no test binaries were built"

# --- collect ---
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/mujoco"
R="$CARGO_TARGET_DIR/release"
for e in train_detach train_shared evaluate; do cp "$R/examples/$e" "$OUT/bin/"; done
for b in solvers kernel conv_kernel; do
    f="$(ls -t "$R"/deps/"$b"-* | grep -v '\.d$' | head -n 1)"
    cp "$f" "$OUT/bin/$b"
done
while read -r name exe; do cp "$exe" "$OUT/bin/test-$name"; done <<< "$TESTS"
strip "$OUT"/bin/*
MJ="${RAT_MUJOCO_DIR:-$ROOT/.mujoco}"
cp "$MJ"/libmujoco.so.3.17.0 "$OUT/mujoco/" && ln -sf libmujoco.so.3.17.0 "$OUT/mujoco/libmujoco.so"
cp -r "$MJ/assets" "$OUT/mujoco/"
cp -r "$ROOT/configs" "$OUT/"
cat > "$OUT/run" <<'RUN'
#!/usr/bin/env bash
# Runs a binary of this directory with the libraries it needs on the path.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# CUDA's runtime libraries: a toolkit in /usr/local/cuda, or PyTorch's nvidia-* wheels.
py_nvidia="$(python3 -c 'import nvidia, os; d = list(nvidia.__path__)[0]; print(":".join(os.path.join(d, s, "lib") for s in sorted(os.listdir(d)) if os.path.isdir(os.path.join(d, s, "lib"))))' 2>/dev/null || true)"
export LD_LIBRARY_PATH="$here/mujoco:$here/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:${py_nvidia}:${LD_LIBRARY_PATH:-}"
export RAT_MUJOCO_DIR="$here/mujoco"
missing="$(ldd "$1" 2>/dev/null | grep 'not found' || true)"
[ -z "$missing" ] || { echo "run: $1 needs libraries this machine lacks:"; echo "$missing"; exit 127; } >&2
exec "$@"
RUN
chmod +x "$OUT/run"
echo "build-cuda: packing $OUT/rat-cuda.tar.xz"
# xz -9 on one thread: its 64 MiB window spans neighbouring binaries, which embed the same
# kernels (72 MB at the default level, 19 MB this way; about 5 CPU minutes).
(cd "$OUT" && XZ_OPT="-9 -T1" tar cJf rat-cuda.tar.xz bin mujoco configs run)
du -sh "$OUT"/bin "$OUT/rat-cuda.tar.xz"
size=$(stat -c %s "$OUT/rat-cuda.tar.xz")
[ "$size" -lt $((64 * 1024 * 1024)) ] || echo "build-cuda: warning: the archive is over 64 MiB ($size bytes)" >&2
echo "build-cuda: done; carry $OUT/rat-cuda.tar.xz (or the directory) to the GPU machine"
