#!/usr/bin/env bash
# README Quick start, command 1: install everything into .venv and run Voicex on embedded defaults.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
voicex_bootstrap ""
cd "$VOICEX_ROOT"
exec voicex serve "$@"
