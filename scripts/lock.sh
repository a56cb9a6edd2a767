#!/usr/bin/env bash
# Regenerate requirements/*.lock from pyproject.toml: exact pins, each with the SHA-256 of every file PyPI has for
# it, valid on every platform and Python >= 3.11 (uv's universal resolution). scripts/bootstrap.sh and the
# Dockerfile install them with `pip install --require-hashes`. Versions already locked stay unless UPGRADE=1, and
# the smaller locks are resolved inside dev-local.lock, so the three agree on every version they share.
#   scripts/lock.sh            after a change to the dependencies in pyproject.toml
#   UPGRADE=1 scripts/lock.sh  to take the newest releases pyproject.toml allows
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

uv="${UV:-$(command -v uv || true)}"
if [ -z "$uv" ]; then
  tools="${TMPDIR:-/tmp}/voicex-lock-tools"
  [ -x "$tools/bin/uv" ] || { python3 -m venv "$tools" && "$tools/bin/python" -m pip install -q uv; }
  uv="$tools/bin/uv"
fi
pins="$(mktemp)"
trap 'rm -f "$pins"' EXIT
if [ "${UPGRADE:-}" != 1 ] && [ -f requirements/dev-local.lock ]; then
  grep -E '^[A-Za-z0-9]' requirements/dev-local.lock | sed 's/ .*//' > "$pins"
fi

lock() {  # lock NAME [--extra X]...
  local name="$1"; shift
  "$uv" pip compile pyproject.toml "$@" --universal --python-version 3.11 --generate-hashes --no-annotate \
    --constraint "$pins" --custom-compile-command "scripts/lock.sh" --quiet -o "requirements/$name.lock"
}
lock dev-local --extra dev --extra local
grep -E '^[A-Za-z0-9]' requirements/dev-local.lock | sed 's/ .*//' > "$pins"
lock local --extra local
lock server
echo "voicex: wrote requirements/server.lock, local.lock and dev-local.lock"
