#!/bin/sh
# Runs Zulip's own Python client (package "zulip", pinned below) against a standalone
# fake-zulip, to prove the fake faithful to the client real bridges are written against.
#
# Usage: run_python_client_test.sh FAKE_ZULIP_BINARY VENV_DIR
# The venv is created on first use and reused after. Without network or venv support the test
# is skipped (exit 77) on a developer's machine and fails under CI=true.
set -eu

fake_zulip=$1
venv=$2
here=$(cd "$(dirname "$0")" && pwd)
zulip_pin="zulip==0.9.1"

skip_or_fail() {
  if [ "${CI:-}" = "true" ]; then
    echo "FAIL: $1 (CI=true: not skipping)" >&2
    exit 1
  fi
  echo "SKIP: $1" >&2
  exit 77
}

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import zulip" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 || skip_or_fail "cannot create a virtual environment in $venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$zulip_pin" >&2 ||
    skip_or_fail "cannot pip install $zulip_pin"
fi

workdir=$(mktemp -d "${TMPDIR:-/tmp}/fake_zulip_py.XXXXXX")
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$workdir"
}
trap cleanup EXIT INT TERM

"$fake_zulip" --listen 127.0.0.1:0 --port-file "$workdir/port" \
  --user "bot@example.com:abcdefghijklmnopqrstuvwxyz012345" \
  --time-scale 1 2>"$workdir/fake-zulip.log" &
pid=$!
i=0
while [ ! -s "$workdir/port" ]; do
  i=$((i + 1))
  if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
    cat "$workdir/fake-zulip.log" >&2
    echo "FAIL: fake-zulip did not start" >&2
    exit 1
  fi
  sleep 0.05
done

export FAKE_ZULIP_URL="http://127.0.0.1:$(cat "$workdir/port")"
"$venv/bin/python" "$here/python_client_test.py" -v
