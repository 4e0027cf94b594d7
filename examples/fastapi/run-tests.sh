#!/usr/bin/env bash
# Runs the FastAPI example's tests (test_app.py) against a real ferrid:
#
#   bash examples/fastapi/run-tests.sh [path-to-ferrid-binary]    # default: target/debug/ferrid
#
# A Python venv in target/fastapi-venv (made again when requirements.txt changes), a fresh
# ferrid database and keys dir in a temporary dir, two clients and a user provisioned with
# ferrid's command line, `ferrid serve` on a free loopback port, then pytest. The server is
# stopped whatever happens; its log is printed when the tests fail. Exits with pytest's code.
# Needs python3 with its venv module (Debian: python3-venv) and PyPI.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ferrid="${1:-$root/target/debug/ferrid}"
[[ "$ferrid" == /* ]] || ferrid="$PWD/$ferrid"
if [[ ! -x "$ferrid" ]]; then
    echo "run-tests.sh: no ferrid binary at $ferrid (cargo build, or pass its path)" >&2
    exit 2
fi
python="${PYTHON:-python3}"

# --- the venv, reused while requirements.txt is unchanged ---------------------------------
venv="$root/target/fastapi-venv"
want="$("$python" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$here/requirements.txt")"
if [[ "$(cat "$venv/requirements.sha256" 2>/dev/null)" != "$want" || ! -x "$venv/bin/python" ]]; then
    rm -rf "$venv"
    mkdir -p "$root/target"
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        echo "run-tests.sh: '$python -m venv' failed. On Debian and Ubuntu the venv module" \
            "(and the ensurepip it needs) is a package of its own: apt-get install python3-venv" >&2
        exit 2
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    echo "$want" >"$venv/requirements.sha256"
fi
py="$venv/bin/python"

# --- ferrid: provision, then serve ---------------------------------------------------------
# serve derives the issuer from the address it binds, and logs it in text (parsed below).
unset FERRID_ISSUER FERRID_LOG_JSON
tmp="$(mktemp -d)"
pid=""
log="$tmp/ferrid.log"
log_shown=""
show_log() {
    [[ -z "$log_shown" ]] || return 0
    log_shown=1
    echo "run-tests.sh: $1; ferrid's log:" >&2
    cat "$log" >&2 || true
}
cleanup() {
    local rc=$?
    set +e
    [[ $rc -eq 0 ]] || show_log "failed ($rc)"
    if [[ -n "$pid" ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

export FERRID_DATABASE_URL="sqlite://$tmp/ferrid.db"
export FERRID_KEYS_DIR="$tmp/keys"
export FERRID_BIN="$ferrid"
f() { "$ferrid" --database-url "$FERRID_DATABASE_URL" --keys-dir "$FERRID_KEYS_DIR" "$@"; }
field() { "$py" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# The API's audience, and the client (the app its users sign in with) whose tokens carry it.
export AUDIENCE="fastapi-example"
export CLIENT_ID="example-app"
CLIENT_SECRET="$(f client add "$CLIENT_ID" --grant-type password --audience "$AUDIENCE" \
    --scope openid --scope me --scope items --json 2>>"$log" | field client_secret)"
export CLIENT_SECRET
# A client whose tokens are meant for another API: the example must refuse them.
export OTHER_CLIENT_ID="other-app"
OTHER_CLIENT_SECRET="$(f client add "$OTHER_CLIENT_ID" --grant-type password --audience other-api \
    --scope openid --scope me --scope items --json 2>>"$log" | field client_secret)"
export OTHER_CLIENT_SECRET
export TEST_USERNAME="johndoe"
TEST_PASSWORD="$("$py" -c 'import secrets; print(secrets.token_urlsafe(18))')"
export TEST_PASSWORD
printf '%s\n' "$TEST_PASSWORD" | f user add "$TEST_USERNAME" --name "John Doe" \
    --email johndoe@example.com --scope me --scope items >>"$log" 2>&1

# Port 0: the system picks a free port; ferrid logs the address and the issuer it derives
# from it (`ferrid is serving issuer="http://127.0.0.1:PORT" addr=…`).
# (The binary itself, not through f: $! must be ferrid's pid, for SIGHUP and for kill.)
RUST_LOG=ferrid=info "$ferrid" --database-url "$FERRID_DATABASE_URL" --keys-dir "$FERRID_KEYS_DIR" \
    serve --bind 127.0.0.1:0 >>"$log" 2>&1 &
pid=$!
export FERRID_PID="$pid"
FERRID_ISSUER=""
for _ in $(seq 1 300); do
    FERRID_ISSUER="$(sed -n 's/.*ferrid is serving.* issuer="\([^"]*\)".*/\1/p' "$log" | head -n 1)"
    [[ -n "$FERRID_ISSUER" ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
done
if [[ -z "$FERRID_ISSUER" ]] ||
    ! "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/healthz", timeout=5)' "$FERRID_ISSUER"; then
    show_log "ferrid did not start"
    exit 1
fi
export FERRID_ISSUER
echo "run-tests.sh: ferrid $("$ferrid" --version | cut -d' ' -f2) serving at $FERRID_ISSUER (pid $pid)"

# --- the tests -----------------------------------------------------------------------------
status=0
(cd "$here" && PYTHONDONTWRITEBYTECODE=1 "$py" -m pytest -p no:cacheprovider -q -rA test_app.py) || status=$?
[[ $status -eq 0 ]] || show_log "pytest failed ($status)"
exit "$status"
