#!/usr/bin/env bash
# README Quick start, command 2: install the dev tools into .venv and run every check: ruff, pip-audit, then pytest.
# Fails on a lint error, a failed test, when no test ran (pytest exit 5), and on a failed dependency audit.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
voicex_bootstrap "dev,local"
cd "$VOICEX_ROOT"
echo "voicex: ruff check"
ruff check .
ruff format --check . >/dev/null || { echo "voicex: ruff format would change files (run: ruff format .)"; exit 1; }

# Dependency audit: every installed package (not the editable voicex itself) against PyPI's vulnerability data.
# --strict: a package PyPI cannot answer for fails the audit, so an unreachable PyPI never passes as "clean".
# A failed audit fails the script, after the tests have run (so they still report).
audit_failed=""
if [ "${VOICEX_SKIP_AUDIT:-}" = 1 ]; then
  echo "voicex: pip-audit SKIPPED (VOICEX_SKIP_AUDIT=1): known-vulnerable dependencies would go unnoticed" >&2
else
  echo "voicex: pip-audit"
  audit_log="$(mktemp)"
  if python -m pip_audit --local --skip-editable --strict --vulnerability-service pypi \
       --progress-spinner off --timeout 30 >"$audit_log" 2>&1; then
    grep -v "^voicex \|^Name \|^---" "$audit_log" || true
  else
    tail -n 25 "$audit_log" >&2
    if grep -q "known vulnerabilit" "$audit_log"; then
      audit_failed="pip-audit found known vulnerabilities (above): raise those pins in pyproject.toml"
    else
      audit_failed="pip-audit could not check the installed packages against PyPI's vulnerability data (is \
https://pypi.org/pypi/<name>/<version>/json reachable?); failing rather than passing unaudited.
  VOICEX_SKIP_AUDIT=1 skips the audit knowingly"
    fi
    echo "voicex: $audit_failed" >&2
  fi
  rm -f "$audit_log"
fi
echo "voicex: pytest"
status=0
python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "voicex: pytest collected no tests: failing on purpose" >&2
  exit 1
fi
if [ -n "$audit_failed" ]; then
  echo "voicex: $audit_failed" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
