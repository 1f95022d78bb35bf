#!/usr/bin/env bash
# Creates the Python environment the parity tests compare against:
# gymnasium[mujoco]==1.4.0 with mujoco==3.17.0 (the same library the Rust build links), and
# minatar==1.0.15 (without its plotting dependencies) for the MinAtar games.
#
#   scripts/parity-venv.sh        # venv in ${RAT_PARITY_VENV:-<repo>/.venv-parity}
#   RAT_PARITY_PYTHON="$(scripts/parity-venv.sh | tail -n1)" \
#       cargo test -p rat-envs --features mujoco --test mujoco_parity
#
# Idempotent: an existing venv with the right versions is reused. The last line printed is the
# venv's python. Environment: RAT_PARITY_VENV (where), PYTHON (the base interpreter, python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RAT_PARITY_VENV:-$ROOT/.venv-parity}"
PY="${PYTHON:-python3}"

die() { echo "parity-venv: error: $*" >&2; exit 1; }

check() {
    "$VENV/bin/python" - <<'EOF' 2>/dev/null
import sys
import gymnasium, mujoco, numpy
ok = gymnasium.__version__ == "1.4.0" and mujoco.__version__ == "3.17.0"
sys.exit(0 if ok else 1)
EOF
}

if [ -x "$VENV/bin/python" ] && check; then
    echo "parity-venv: $VENV already has gymnasium 1.4.0 and mujoco 3.17.0" >&2
else
    command -v "$PY" >/dev/null || die "'$PY' not found (set PYTHON to a Python >= 3.10)"
    echo "parity-venv: creating $VENV" >&2
    "$PY" -m venv "$VENV" || die "could not create the venv at $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "gymnasium[mujoco]==1.4.0" "mujoco==3.17.0" >&2 \
        || die "pip install gymnasium[mujoco]==1.4.0 mujoco==3.17.0 failed (is PyPI reachable?)"
    check || die "the venv at $VENV does not import gymnasium 1.4.0 and mujoco 3.17.0"
    echo "parity-venv: installed gymnasium 1.4.0 and mujoco 3.17.0" >&2
fi
# MinAtar's package for the black-box parity tests of rat-envs' MinAtar games (GPL: used as a
# reference only, never copied). Its declared plotting dependencies are not needed to simulate.
if ! "$VENV/bin/python" -c 'import importlib.metadata as m; assert m.version("minatar") == "1.0.15"' 2>/dev/null; then
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "minatar==1.0.15" >&2 \
        || die "pip install --no-deps minatar==1.0.15 failed (is PyPI reachable?)"
    echo "parity-venv: installed minatar 1.0.15" >&2
fi
echo "$VENV/bin/python"
