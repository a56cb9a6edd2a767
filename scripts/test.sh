#!/usr/bin/env bash
# README Quick start, command 2: install the dev tools into .venv and run every check: ruff, mypy, pip-audit, then pytest.
# Fails on a lint or type error, a failed test, when no test ran (pytest exit 5), and on a known-vulnerable dependency.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
voicex_bootstrap "dev,local"
cd "$VOICEX_ROOT"
echo "voicex: ruff check"
ruff check .
ruff format --check . >/dev/null || { echo "voicex: ruff format would change files (run: ruff format .)"; exit 1; }
echo "voicex: mypy"
mypy  # the files and strictness are in pyproject.toml ([tool.mypy]): pipelines/ and providers/ strict

# Dependency audit (scripts/audit_deps.py): known vulnerabilities fail the script, after the tests have run;
# packages whose vulnerability data is unreachable are reported as NOT AUDITED, never as clean.
audit_failed=""
if [ "${VOICEX_SKIP_AUDIT:-}" = 1 ]; then
  echo "voicex: pip-audit SKIPPED (VOICEX_SKIP_AUDIT=1)" >&2
else
  echo "voicex: pip-audit"
  python -m scripts.audit_deps || audit_failed="the dependency audit failed (above): raise those pins in pyproject.toml"
fi
echo "voicex: pytest"
status=0
python -m pytest -m "slow or not slow" "$@" || status=$?  # both tiers (plain pytest: the fast tier only)
if [ "$status" -eq 5 ]; then
  echo "voicex: pytest collected no tests: failing on purpose" >&2
  exit 1
fi
if [ -n "$audit_failed" ]; then
  echo "voicex: $audit_failed" >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
