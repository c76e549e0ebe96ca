#!/usr/bin/env bash
# Runs the server on embedded defaults from a fresh clone: installs what serving needs (the project and its
# embedded engines, no test or benchmark tools) into .venv, then `telemetry-server serve`.
# Arguments go to `serve` (e.g. scripts/serve.sh --port 9000 --workers 2).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh embedded
# The fast MongoDB-wire engine when scripts/engine.sh has built it already (the first start never waits for a
# build); else SecantusDB's Python server. MONGO_URI or MONGO_ENGINE_CMD, when set, win.
if [ -z "${MONGO_ENGINE_CMD:-}" ] && scripts/engine.sh built; then
  export MONGO_ENGINE_CMD="$PWD/scripts/engine.sh start {port} {data}"
fi
exec .venv/bin/telemetry-server serve "$@"
