#!/usr/bin/env bash
# README Quick start, command 2: install the dev tools into .venv and run every check: ruff, then pytest.
# Fails on a lint error, a failed test, and when no test ran (pytest exit 5).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
voicex_bootstrap "dev,local"
cd "$VOICEX_ROOT"
echo "voicex: ruff check"
ruff check .
ruff format --check . >/dev/null || { echo "voicex: ruff format would change files (run: ruff format .)"; exit 1; }
echo "voicex: pytest"
status=0
python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "voicex: pytest collected no tests: failing on purpose" >&2
  exit 1
fi
exit "$status"
