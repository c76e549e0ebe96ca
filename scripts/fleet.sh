#!/usr/bin/env bash
# Tools for running many instances and checking their deployment, installed once per machine, for the test
# suite and bench/:
#
#   scripts/fleet.sh haproxy      install HAProxy with apt if it is missing; print its path
#   scripts/fleet.sh kubeconform  build or reuse kubeconform (~/.cache/telemetry-server/tools); print its path
#
# A tool that cannot be had exits non-zero saying why on stderr; callers then skip what needs it, saying so.
set -euo pipefail

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/telemetry-server/tools"
KUBECONFORM_VERSION=v0.7.0

die() {
    echo "fleet.sh: $*" >&2
    exit 1
}

kubeconform_bin() { echo "$CACHE_ROOT/kubeconform-$KUBECONFORM_VERSION/kubeconform"; }

case "${1:-}" in
haproxy)
    if ! command -v haproxy >/dev/null; then
        mkdir -p "$CACHE_ROOT"
        echo "fleet.sh: installing haproxy with apt-get" >&2
        # Another apt-get may hold the lock for a while; a machine whose package lists are stale needs an update.
        apt=(apt-get -o DPkg::Lock::Timeout=300 install -y -q haproxy)
        { DEBIAN_FRONTEND=noninteractive "${apt[@]}" ||
            { apt-get -o DPkg::Lock::Timeout=300 update -q && DEBIAN_FRONTEND=noninteractive "${apt[@]}"; }; } \
            >"$CACHE_ROOT/haproxy-apt.log" 2>&1 || die "apt-get could not install haproxy (see $CACHE_ROOT/haproxy-apt.log)"
    fi
    command -v haproxy
    ;;
kubeconform)
    if ! "$(kubeconform_bin)" -v >/dev/null 2>&1; then
        command -v go >/dev/null || die "go is not installed: kubeconform cannot be built"
        mkdir -p "$CACHE_ROOT"
        exec 9>"$CACHE_ROOT/.kubeconform.lock"
        flock 9
        if ! "$(kubeconform_bin)" -v >/dev/null 2>&1; then
            echo "fleet.sh: building kubeconform $KUBECONFORM_VERSION (log: $CACHE_ROOT/kubeconform.build.log)" >&2
            GOBIN="$(dirname "$(kubeconform_bin)")" nice -n 10 go install \
                "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
                >"$CACHE_ROOT/kubeconform.build.log" 2>&1 ||
                die "building kubeconform failed; see $CACHE_ROOT/kubeconform.build.log"
        fi
    fi
    kubeconform_bin
    ;;
*)
    die "usage: scripts/fleet.sh haproxy|kubeconform"
    ;;
esac
