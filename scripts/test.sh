#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what is needed, starts MongoDB-wire and Redis engines and
# a 2-worker test server with .env.test on free ports, runs lint, types and pytest, and stops everything,
# also on failure or Ctrl-C. Exits with pytest's status. Arguments go to pytest (e.g. scripts/test.sh -k cache).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/bootstrap.sh dev

state=$(mktemp -d "${TMPDIR:-/tmp}/telemetry-test.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true; fi
  SERVICES_MODE=local SERVICES_STATE_DIR="$state/services" scripts/services.sh down >/dev/null 2>&1 || true
  rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== lint and types"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy telemetry_server

echo "== local LLM server (for the LLM prompt parser's tests against a real model)"
# Built once per machine and cached, like the engine; a machine where it cannot be built still runs the
# suite, and those tests are reported as skipped with the reason.
if [ "${TEST_LLM_SERVER:-1}" = 0 ]; then
  echo "test.sh: TEST_LLM_SERVER=0: llama-server not built; its tests will be skipped"
elif ! scripts/llm.sh build >/dev/null; then
  echo "test.sh: llama-server could not be built (see above); its tests will be skipped"
fi

echo "== agents (real clients of the ingest protocols; built once per machine, then cached)"
# A machine where one cannot be installed still runs the suite: its tests are reported as skipped, with why.
if [ "${TEST_AGENTS:-1}" = 0 ]; then
  echo "test.sh: TEST_AGENTS=0: agents not installed; their tests will be skipped"
else
  scripts/agents.sh apt
  if telegraf=$(timeout "${AGENTS_BUILD_TIMEOUT:-1200}" scripts/agents.sh telegraf); then
    export TELEGRAF_BIN="$telegraf"
  else
    echo "test.sh: Telegraf could not be built (see above); its tests will be skipped"
  fi
fi

echo "== HAProxy (the load balancer of the many-instances test)"
# Installed with apt-get when missing; a machine where it cannot be still runs the suite, that test skipped.
scripts/fleet.sh haproxy >/dev/null || echo "test.sh: HAProxy could not be installed (see above); its test will be skipped"
echo "== kubeconform (validates deploy/kubernetes/ offline; built once per machine, then cached)"
if kubeconform=$(scripts/fleet.sh kubeconform); then
  export KUBECONFORM_BIN="$kubeconform"
else
  echo "test.sh: kubeconform could not be built (see above); the manifests' schema tests will be skipped"
fi

echo "== browser (Debian's chromium, for the dashboard's tests)"
# Playwright drives the system's browser (never one it downloads); without it those tests say they were skipped.
if [ "${TEST_BROWSER:-1}" = 0 ]; then
  echo "test.sh: TEST_BROWSER=0: chromium not installed; the dashboard's browser tests will be skipped"
elif chromium=$(scripts/browser.sh); then
  export CHROMIUM_BIN="$chromium"
else
  echo "test.sh: chromium could not be installed (see above); the dashboard's browser tests will be skipped"
fi

echo "== services"
uris=$(SERVICES_MODE=local SERVICES_STATE_DIR="$state/services" scripts/services.sh up)
eval "$uris"
export MONGO_URI REDIS_URI
[ -z "${MONGO_ENGINE_CMD:-}" ] || export MONGO_ENGINE_CMD  # tests that start engines of their own use it too
echo "MONGO_URI=$MONGO_URI REDIS_URI=$REDIS_URI"

echo "== test server (.env.test)"
port=$(.venv/bin/python -c 'from telemetry_server.engines import free_port; print(free_port())')
ENVIRONMENT=test .venv/bin/telemetry-server serve --port "$port" >"$state/server.log" 2>&1 &
server_pid=$!
export TEST_BASE_URL="http://127.0.0.1:$port"
for _ in $(seq 600); do
  curl -fsS "$TEST_BASE_URL/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$state/server.log"; exit 1; }
  sleep 0.1
done
curl -fsS "$TEST_BASE_URL/readyz" || { cat "$state/server.log"; exit 1; }
echo

echo "== pytest"
status=0
ENVIRONMENT=test .venv/bin/pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then echo "test.sh: pytest collected no tests" >&2; status=1; fi
if [ "$status" -ne 0 ]; then echo "== server log (tail)"; tail -n 40 "$state/server.log"; fi
exit "$status"
