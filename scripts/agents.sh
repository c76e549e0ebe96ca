#!/usr/bin/env bash
# Real agents that speak our ingest protocols, built once per machine and cached like the engine
# (~/.cache/telemetry-server/agents), for the test suite and bench/.
#
#   scripts/agents.sh telegraf   build or reuse Telegraf (only the plugins the tests use); print its path
#   scripts/agents.sh tsbs       build or reuse TSBS's generator and loaders; print the bin directory
#   scripts/agents.sh built telegraf  print the cached Telegraf's path if it is built (never builds), else fail
#   scripts/agents.sh apt        install the Debian packages the tests and benches start (influxdb,
#                                influxdb-client, victoria-metrics, prometheus) when apt can; never fails the caller
#
# A build that fails exits non-zero with the log's path on stderr; callers then skip what needs it, saying so.
# While a build runs, or waits for another one of this user's, it says so on stderr every 30 s.
set -euo pipefail

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/telemetry-server/agents"
TELEGRAF_VERSION=v1.37.2
# Only what the tests use: a full Telegraf is ~250 MB and a ~10 min build on 2 cores, this one ~90 s.
TELEGRAF_TAGS="custom,inputs.mem,inputs.file,outputs.influxdb,outputs.influxdb_v2,outputs.http,parsers.influx,serializers.influx,serializers.prometheusremotewrite"
# TSBS is not on the Go module proxy: a snapshot of timescale/tsbs is built from the mirror `fetch` made
# (TSBS_SRC, a git directory), its dependencies resolved through the proxy.
TSBS_COMMANDS="tsbs_generate_data tsbs_load_influx tsbs_load_victoriametrics tsbs_generate_queries tsbs_run_queries_victoriametrics"

die() {
    echo "agents.sh: $*" >&2
    exit 1
}

# locked NAME CHECK BUILD...: run BUILD unless CHECK already succeeds, one build per machine at a time,
# saying every 30 s that it is still at it.
locked() {
    local name="$1" check="$2"
    shift 2
    mkdir -p "$CACHE_ROOT"
    "$check" && return 0
    exec 9>"$CACHE_ROOT/.$name.lock"
    if ! flock -n 9; then
        echo "agents.sh: waiting for another build of $name" >&2
        flock 9
    fi
    "$check" && return 0
    local started=$SECONDS log="$CACHE_ROOT/$name.build.log"
    echo "agents.sh: building $name (log: $log)" >&2
    "$@" >"$log" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 5
        if (((SECONDS - started) % 30 < 5)); then
            echo "agents.sh: building $name, $((SECONDS - started)) s so far" >&2
        fi
    done
    wait "$pid" || die "building $name failed; see $log"
    "$check" || die "$name built but does not run; see $log"
    echo "agents.sh: built $name in $((SECONDS - started)) s" >&2
}

telegraf_bin() { echo "$CACHE_ROOT/telegraf-$TELEGRAF_VERSION/bin/telegraf"; }
telegraf_ok() { "$(telegraf_bin)" --version >/dev/null 2>&1; }
telegraf_build() {
    GOBIN="$(dirname "$(telegraf_bin)")" nice -n 10 go install -tags "$TELEGRAF_TAGS" \
        "github.com/influxdata/telegraf/cmd/telegraf@$TELEGRAF_VERSION"
}

tsbs_dir() { echo "$CACHE_ROOT/tsbs/bin"; }
tsbs_ok() {
    local command
    for command in $TSBS_COMMANDS; do [[ -x "$(tsbs_dir)/$command" ]] || return 1; done
}
tsbs_build() {
    [[ -n "${TSBS_SRC:-}" && -d "$TSBS_SRC" ]] || die "TSBS_SRC must name a git directory of timescale/tsbs"
    local work="$CACHE_ROOT/tsbs/src" command
    rm -rf "$work" && mkdir -p "$work"
    git --git-dir "$TSBS_SRC" archive HEAD | tar -x -C "$work"
    for command in $TSBS_COMMANDS; do
        (cd "$work" && nice -n 10 go build -o "$(tsbs_dir)/$command" "./cmd/$command")
    done
}

case "${1:-}" in
telegraf)
    command -v go >/dev/null || die "go is not installed: Telegraf cannot be built"
    locked telegraf telegraf_ok telegraf_build
    telegraf_bin
    ;;
tsbs)
    command -v go >/dev/null || die "go is not installed: TSBS cannot be built"
    locked tsbs tsbs_ok tsbs_build
    tsbs_dir
    ;;
built)
    [[ "${2:-}" == telegraf ]] || die "usage: scripts/agents.sh built telegraf"
    telegraf_ok || exit 1
    telegraf_bin
    ;;
apt)
    mkdir -p "$CACHE_ROOT"
    missing=()
    command -v influxd >/dev/null || missing+=(influxdb)
    command -v influx >/dev/null || missing+=(influxdb-client)
    command -v victoria-metrics >/dev/null || missing+=(victoria-metrics) # with vmagent
    command -v prometheus >/dev/null || missing+=(prometheus)
    if ((${#missing[@]})); then
        echo "agents.sh: installing ${missing[*]} with apt-get" >&2
        # A machine whose package lists are stale or empty needs one `apt-get update` first.
        { DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" ||
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"; }; } \
            >"$CACHE_ROOT/apt.log" 2>&1 ||
            echo "agents.sh: apt-get could not install ${missing[*]} (see $CACHE_ROOT/apt.log);" \
                "tests that need them will be skipped" >&2
    fi
    ;;
*)
    die "usage: scripts/agents.sh telegraf|tsbs|apt"
    ;;
esac
