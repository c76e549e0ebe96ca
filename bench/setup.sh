#!/usr/bin/env bash
# Install what the benchmark needs beyond the venv: wrk (load generator) and InfluxDB 1.x (the peer), via apt,
# and the `bench` extra (locust, matplotlib) into .venv. Run as root (or with sudo) once per machine.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1 || ! command -v influxd >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  $SUDO apt-get install -y wrk influxdb
  # The Debian package enables a system service; the benchmark starts its own influxd on loopback instead.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled influxdb >/dev/null 2>&1; then
    $SUDO systemctl disable --now influxdb >/dev/null 2>&1 || true
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[bench]'
echo "wrk: $(wrk -v 2>&1 | head -1)"
echo "influxd: $(influxd version 2>/dev/null || echo missing)"
echo "engine: $(bash scripts/engine.sh name 2>/dev/null || echo 'scripts/engine.sh missing: secantusd-py fallback')"
