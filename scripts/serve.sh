#!/usr/bin/env bash
# Runs the server on embedded defaults from a fresh clone: installs into .venv, then `telemetry-server serve`.
# Arguments go to `serve` (e.g. scripts/serve.sh --port 9000 --workers 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/telemetry-server serve "$@"
