#!/usr/bin/env bash
# Fetches Procgen's prebuilt environment library and its assets into a cache directory, for the
# `procgen:<game>` environments of rat-envs (loaded at run time; nothing is needed to build).
#
#   scripts/fetch-procgen.sh           # into ${RAT_PROCGEN_DIR:-<repo>/.procgen}
#
# The files come from the PyPI wheel procgen==0.10.7 (cp310 manylinux2014 x86_64; there is no
# wheel for newer Pythons, but the library inside is Python-independent), downloaded with pip and
# checked against the sha256 pinned below:
#   procgen/data/prebuilt/libenv.so  -> $DIR/libenv.so   (the gym3 libenv C API, Qt linked in)
#   procgen/data/assets/             -> $DIR/assets/
# Never committed: the assets include CC-BY and OGA-BY art that needs attribution when
# redistributed, and the library links Qt (LGPL) statically. Idempotent. Environment:
# RAT_PROCGEN_DIR (target), PYTHON (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${RAT_PROCGEN_DIR:-$ROOT/.procgen}"
PY="${PYTHON:-python3}"

WHEEL="procgen-0.10.7-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
SHA256="4b594d14e42f0f2166e59a9e294477b906eb99c90c3343b570b7124cbc865f53"

NAME=fetch-procgen
# shellcheck source=wheel-lib.sh
source "$ROOT/scripts/wheel-lib.sh"

have_all() { [ -f "$DIR/libenv.so" ] && [ -f "$DIR/assets/.complete" ]; }

if have_all; then
    echo "fetch-procgen: already present in $DIR (nothing to do)"
    exit 0
fi

need_pip

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "fetch-procgen: downloading the procgen==0.10.7 wheel with pip"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.10 --implementation cp --abi cp310 --platform manylinux2014_x86_64 \
    -d "$TMP" procgen==0.10.7 || die "pip could not download procgen==0.10.7 (is PyPI reachable?)"
check_sha256 "$TMP" "$WHEEL" "$SHA256"

mkdir -p "$DIR"
"$PY" - "$TMP/$WHEEL" "$DIR" <<'PYEOF' || die "extraction failed"
import os, shutil, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
assets = os.path.join(out, "assets")
shutil.rmtree(assets, ignore_errors=True)
n = 0
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        name = info.filename
        if name.startswith("procgen/data/assets/") and not name.endswith("/"):
            dest = os.path.join(assets, name[len("procgen/data/assets/"):])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with z.open(info) as src, open(dest, "wb") as f:
                shutil.copyfileobj(src, f)
            n += 1
    lib = os.path.join(out, "libenv.so")
    with z.open("procgen/data/prebuilt/libenv.so") as src, open(lib + ".part", "wb") as f:
        shutil.copyfileobj(src, f)
    os.chmod(lib + ".part", 0o755)
    os.replace(lib + ".part", lib)
open(os.path.join(assets, ".complete"), "w").close()
print(f"fetch-procgen: extracted libenv.so and {n} asset files into {out}")
PYEOF
have_all || die "files missing after extraction in $DIR"
missing="$(ldd "$DIR/libenv.so" 2>/dev/null | grep 'not found' || true)"
[ -z "$missing" ] || echo "fetch-procgen: warning: libenv.so needs libraries this system lacks (on Debian: apt-get install libglib2.0-0 zlib1g):"$'\n'"$missing" >&2
echo "fetch-procgen: done; Procgen 0.10.7 is in $DIR"
