#!/usr/bin/env bash
# Shared set-up for the README's two commands: a local virtualenv (.venv) with Voicex installed.
# Idempotent: the pip step is skipped while pyproject.toml, requirements/*.lock and the requested extras are unchanged.
# Dependencies come from the lock files (exact versions, SHA-256 checked: pip --require-hashes), Voicex itself after.
# Usage: source scripts/bootstrap.sh; voicex_bootstrap "dev"   (extras, comma-separated; may be empty)
set -euo pipefail

VOICEX_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VOICEX_VENV="${VOICEX_VENV:-$VOICEX_ROOT/.venv}"
# Debian packages the project needs at run or test time (installed only when missing).
VOICEX_APT_PACKAGES=(espeak-ng)

_voicex_as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "voicex: need root (or sudo) to run: $*" >&2; return 1; fi
}

_voicex_pick_python() {
  for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "voicex: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

_voicex_apt() {
  local python="$1" missing=() pkg
  command -v dpkg-query >/dev/null || return 0
  for pkg in "${VOICEX_APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  # Debian's own Python ships venv without ensurepip; python3-venv adds it.
  "$python" -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  [ "${#missing[@]}" -gt 0 ] || return 0
  echo "voicex: installing Debian packages: ${missing[*]}"
  _voicex_as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive _voicex_as_root apt-get install -y -qq "${missing[@]}"
}

_voicex_lock() {  # the lock file holding the dependencies of these extras (sorted, comma-separated)
  case "$1" in
    "") echo "$VOICEX_ROOT/requirements/server.lock" ;;
    local) echo "$VOICEX_ROOT/requirements/local.lock" ;;
    *) echo "$VOICEX_ROOT/requirements/dev-local.lock" ;;  # dev, dev,local: the tests need the offline models too
  esac
}

voicex_bootstrap() {
  local extras="${1:-}"
  local python
  python="$(_voicex_pick_python)"
  _voicex_apt "$python"
  if [ ! -x "$VOICEX_VENV/bin/python" ]; then
    echo "voicex: creating $VOICEX_VENV"
    "$python" -m venv "$VOICEX_VENV"
  fi
  # The stamp records the hash of pyproject.toml and the lock files, and every extra installed so far; asking for
  # a subset of them installs nothing, so alternating the two README commands never reinstalls.
  local stamp_file="$VOICEX_VENV/.voicex-install" hash installed="" wanted lock
  hash="$(cat "$VOICEX_ROOT/pyproject.toml" "$VOICEX_ROOT"/requirements/*.lock | sha256sum | cut -c1-16)"
  if [ -f "$stamp_file" ] && [ "$(head -n1 "$stamp_file")" = "$hash" ]; then
    installed="$(sed -n 2p "$stamp_file")"
  fi
  wanted="$(printf '%s\n' ${installed//,/ } ${extras//,/ } | sort -u | paste -sd, -)"
  if [ ! -f "$stamp_file" ] || [ "$(head -n1 "$stamp_file")" != "$hash" ] || [ "$wanted" != "$installed" ]; then
    lock="$(_voicex_lock "$wanted")"
    echo "voicex: installing $lock and Voicex into $VOICEX_VENV (log: $VOICEX_VENV/pip.log)"
    if ! { "$VOICEX_VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip &&
           "$VOICEX_VENV/bin/python" -m pip install --disable-pip-version-check --require-hashes -r "$lock" &&
           (cd "$VOICEX_ROOT" && "$VOICEX_VENV/bin/python" -m pip install --disable-pip-version-check --no-deps -e .)
         } > "$VOICEX_VENV/pip.log" 2>&1; then
      tail -n 40 "$VOICEX_VENV/pip.log" >&2
      echo "voicex: pip install failed; full log in $VOICEX_VENV/pip.log" >&2
      return 1
    fi
    printf '%s\n%s\n' "$hash" "$wanted" > "$stamp_file"
  fi
  export PATH="$VOICEX_VENV/bin:$PATH"
}
