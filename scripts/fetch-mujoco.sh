#!/usr/bin/env bash
# Fetches the MuJoCo 3.17.0 library and Gymnasium 1.4.0's MuJoCo model files into a cache
# directory, for `cargo build --features mujoco` (crate rat-envs).
#
#   scripts/fetch-mujoco.sh            # into ${RAT_MUJOCO_DIR:-<repo>/.mujoco}
#
# Both come from PyPI wheels, downloaded with pip and checked against the sha256 pinned below:
#   mujoco==3.17.0 (cp311 manylinux x86_64; the library is the same in every cpXY wheel):
#       mujoco/libmujoco.so.3.17.0           -> $DIR/libmujoco.so.3.17.0 (+ libmujoco.so symlink)
#   gymnasium==1.4.0 (pure Python, MIT):
#       gymnasium/envs/mujoco/assets/*.xml   -> $DIR/assets/
# Nothing is committed: the cache directory is git-ignored. Idempotent: does nothing when the
# files are already there. Environment: RAT_MUJOCO_DIR (target), PYTHON (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${RAT_MUJOCO_DIR:-$ROOT/.mujoco}"
PY="${PYTHON:-python3}"

MUJOCO_WHEEL="mujoco-3.17.0-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
MUJOCO_SHA256="d66928d86a2d1b601bbaa4dc11db50214d17d5301bb8afd84721313b67ff0874"
GYM_WHEEL="gymnasium-1.4.0-py3-none-any.whl"
GYM_SHA256="1cb947c59e7c72d8eabb2c2274c00cd20948e69f8452a9ef4092223be24fdf0e"
LIB="libmujoco.so.3.17.0"
# The model files the Rust tasks load (walker2d_v5.xml is Walker2d-v5's).
XMLS="ant half_cheetah hopper humanoid humanoidstandup inverted_double_pendulum inverted_pendulum reacher swimmer walker2d walker2d_v5"

NAME=fetch-mujoco
# shellcheck source=wheel-lib.sh
source "$ROOT/scripts/wheel-lib.sh"

have_all() {
    [ -f "$DIR/$LIB" ] && [ -L "$DIR/libmujoco.so" ] || return 1
    for x in $XMLS; do [ -f "$DIR/assets/$x.xml" ] || return 1; done
}

if have_all; then
    echo "fetch-mujoco: already present in $DIR (nothing to do)"
    exit 0
fi

need_pip

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-mujoco: downloading mujoco==3.17.0 and gymnasium==1.4.0 wheels with pip"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
    -d "$TMP" mujoco==3.17.0 || die "pip could not download mujoco==3.17.0 (is PyPI reachable?)"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$TMP" gymnasium==1.4.0 \
    || die "pip could not download gymnasium==1.4.0 (is PyPI reachable?)"

check_sha256 "$TMP" "$MUJOCO_WHEEL" "$MUJOCO_SHA256"
check_sha256 "$TMP" "$GYM_WHEEL" "$GYM_SHA256"

mkdir -p "$DIR/assets"
"$PY" - "$TMP/$MUJOCO_WHEEL" "$TMP/$GYM_WHEEL" "$DIR" "$LIB" $XMLS <<'EOF' || die "extraction failed"
import os, sys, zipfile
mj_whl, gym_whl, out, lib, xmls = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
def extract(whl, member, dest):
    with zipfile.ZipFile(whl) as z, z.open(member) as src:
        data = src.read()
    tmp = dest + ".part"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dest)
    print(f"fetch-mujoco: extracted {member} -> {dest}")
extract(mj_whl, "mujoco/" + lib, os.path.join(out, lib))
os.chmod(os.path.join(out, lib), 0o755)
for x in xmls:
    extract(gym_whl, f"gymnasium/envs/mujoco/assets/{x}.xml", os.path.join(out, "assets", x + ".xml"))
EOF
ln -sfn "$LIB" "$DIR/libmujoco.so"
echo "fetch-mujoco: linked $DIR/libmujoco.so -> $LIB"
have_all || die "files missing after extraction in $DIR"
echo "fetch-mujoco: done; MuJoCo 3.17.0 and the Gymnasium 1.4.0 assets are in $DIR"
