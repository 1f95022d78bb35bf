# Shared by the fetch scripts, which source it after setting NAME (their message prefix) and PY
# (the Python whose pip downloads the wheels).

die() { echo "$NAME: error: $*" >&2; exit 1; }

# Checks that $PY has pip and that sha256sum exists.
need_pip() {
    command -v "$PY" >/dev/null || die "'$PY' not found (set PYTHON to a Python 3 with pip)"
    "$PY" -m pip --version >/dev/null 2>&1 || die "'$PY -m pip' does not work (set PYTHON to a Python 3 with pip)"
    command -v sha256sum >/dev/null || die "sha256sum not found"
}

# check_sha256 DIR FILE SHA256: pip left FILE in DIR, with the pinned checksum.
check_sha256() {
    [ -f "$1/$2" ] || die "pip did not produce $2 (got: $(ls "$1"))"
    local got
    got="$(sha256sum "$1/$2" | cut -d' ' -f1)"
    [ "$got" = "$3" ] || die "sha256 mismatch for $2: expected $3, got $got"
    echo "$NAME: sha256 ok  $2"
}
