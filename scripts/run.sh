#!/usr/bin/env bash
# README Quick start, command 1: install everything (offline models included) into .venv and run the demo:
# the server on embedded defaults and a simulated phone call to an agent on the offline models.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
voicex_bootstrap "local"
cd "$VOICEX_ROOT"
exec voicex demo "$@"
