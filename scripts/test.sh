#!/usr/bin/env bash
# The project's test command: fetches MuJoCo 3.17.0 and the Gymnasium assets, and Procgen's
# prebuilt library (once each, cached), creates the Python venv the parity tests compare against
# (once, cached), then runs every test of the workspace with the MuJoCo tasks built in. Extra
# arguments go to `cargo test`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

"$root/scripts/fetch-mujoco.sh"
"$root/scripts/fetch-procgen.sh"
RAT_PARITY_PYTHON="$("$root/scripts/parity-venv.sh" | tail -n 1)"
export RAT_PARITY_PYTHON
echo "parity tests compare against: $RAT_PARITY_PYTHON"

cargo test --workspace --features mujoco "$@"
