#!/usr/bin/env bash
# Debian's Chromium for the dashboard's browser tests, which drive it with Playwright (never a downloaded
# browser). Idempotent: prints the browser's path, installing the `chromium` package with apt-get first when it
# is missing; exits 1 with the reason on stderr when it cannot (no apt-get, not root), so that the caller can
# skip those tests and say why.
#   scripts/browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."

log=${XDG_CACHE_HOME:-$HOME/.cache}/telemetry-server/browser-apt.log
found() { command -v chromium 2>/dev/null; }

if ! found >/dev/null; then
    command -v apt-get >/dev/null || { echo "browser.sh: chromium is not installed and there is no apt-get" >&2; exit 1; }
    if [ "$(id -u)" -eq 0 ]; then
        apt=(apt-get)
    elif sudo -n true 2>/dev/null; then
        apt=(sudo -n apt-get)
    else
        echo "browser.sh: chromium is not installed, and installing it needs root (apt-get install chromium)" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$log")"
    echo "browser.sh: installing chromium with apt-get (log: $log)" >&2
    # A machine whose package lists are stale or empty needs one `apt-get update` first.
    { DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q chromium ||
        { "${apt[@]}" update -q && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q chromium; }; } \
        >"$log" 2>&1 || { echo "browser.sh: apt-get could not install chromium (see $log)" >&2; exit 1; }
fi
found
