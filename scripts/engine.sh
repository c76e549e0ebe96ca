#!/usr/bin/env bash
# Fast MongoDB-wire engine for local runs and benchmarks: the Rust SecantusDB server
# (crate secantus-mdb, binary secantusd-rs). See bench/ENGINES.md for why.
#
#   scripts/engine.sh build              build or reuse the cached binary; print its path
#   scripts/engine.sh start PORT DATADIR exec the engine on 127.0.0.1:PORT, data under DATADIR
#   scripts/engine.sh name               print the engine name
#   scripts/engine.sh built              succeed when the binary is already built (never builds)
#
# `build` exits non-zero with a message on stderr when it cannot (no cargo, no C toolchain,
# build error); callers then fall back to secantusd-py. While it builds, or waits for another
# build of this user's to finish, it says so on stderr every 30 s, with the build log's path.
# Env: ENGINE_BUILD_JOBS (default 2), ENGINE_RUST_TOOLCHAIN (rustup toolchain, default nightly
# if installed), ENGINE_CACHE_SIZE (WiredTiger cache, default 512M), ENGINE_PROGRESS_SECONDS (how
# often a build, or the wait for one, says how far it has got; default 30).
set -euo pipefail

ENGINE_NAME=secantus-mdb
ENGINE_VERSION=0.5.3-beta.196
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/telemetry-server/engines"
ENGINE_ROOT="$CACHE_ROOT/$ENGINE_NAME-$ENGINE_VERSION"
ENGINE_BIN="$ENGINE_ROOT/bin/secantusd-rs"

die() {
    echo "engine.sh: $*" >&2
    exit 1
}

usable() {
    [[ -x "$ENGINE_BIN" ]] && "$ENGINE_BIN" --version >/dev/null 2>&1
}

# The crate declares rust-version 1.98; it builds with older toolchains when told to
# ignore that field. ENGINE_RUST_TOOLCHAIN picks a rustup toolchain; by default nightly
# when rustup has it (the newest compiler), else cargo's default.
cargo_cmd() {
    if [[ -n "${ENGINE_RUST_TOOLCHAIN:-}" ]]; then
        echo "cargo +$ENGINE_RUST_TOOLCHAIN"
    elif command -v rustup >/dev/null 2>&1 && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
        echo "cargo +nightly"
    else
        echo "cargo"
    fi
}

# cargo_install ROOT LOG: build the engine into ROOT, all output into LOG.
cargo_install() {
    # shellcheck disable=SC2046
    nice -n 10 $(cargo_cmd) install "$ENGINE_NAME" --version "$ENGINE_VERSION" --locked --ignore-rust-version \
        -j "${ENGINE_BUILD_JOBS:-2}" --root "$1" >"$2" 2>&1
}

# The log of the build under way (or of the last one): the newest build folder's.
build_log() {
    local newest
    newest="$(ls -t "$CACHE_ROOT/.build-$ENGINE_NAME".*/build.log 2>/dev/null | head -n 1 || true)"
    echo "${newest:-none yet}"
}

# Run a command in the foreground (so that Ctrl-C reaches it as before) while a background loop says, every
# ENGINE_PROGRESS_SECONDS, how long we have been at it and how far the build log has got.
with_progress() {
    local what="$1" started=$SECONDS parent=$$ reporter status=0
    shift
    # Its stdout is not ours (a caller may be capturing the binary's path), and its sleep dies with it, so
    # that nothing holds a caller's pipe open once we are done.
    (
        trap 'kill "$nap" 2>/dev/null; exit 0' TERM
        while :; do
            sleep "${ENGINE_PROGRESS_SECONDS:-30}" &
            nap=$!
            wait "$nap"
            kill -0 "$parent" 2>/dev/null || exit 0
            log="$(build_log)"
            if [[ -f "$log" ]]; then
                echo "engine.sh: $what, $((SECONDS - started)) s so far; $(grep -c Compiling "$log") crates" \
                    "compiled, last: $(tail -n 1 "$log" | sed 's/^ *//') (log: $log)" >&2
            else
                echo "engine.sh: $what, $((SECONDS - started)) s so far" >&2
            fi
        done
    ) >/dev/null &
    reporter=$!
    "$@" || status=$?
    kill "$reporter" 2>/dev/null || true
    wait "$reporter" 2>/dev/null || true
    return "$status"
}

build() {
    if usable; then
        echo "$ENGINE_BIN"
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: cannot build $ENGINE_NAME (install Rust, or use secantusd-py)"
    command -v cmake >/dev/null 2>&1 || die "cmake not found: $ENGINE_NAME compiles WiredTiger with cmake and a C compiler"
    command -v cc >/dev/null 2>&1 || die "no C compiler (cc) found: $ENGINE_NAME compiles WiredTiger from source"
    mkdir -p "$CACHE_ROOT"
    # One build at a time; a second caller waits, then reuses the result.
    exec 9>"$CACHE_ROOT/.$ENGINE_NAME.lock"
    if ! flock -n 9; then
        echo "engine.sh: another build of $ENGINE_NAME is running (log: $(build_log)); waiting for it" >&2
        with_progress "waiting for the other build" flock 9
    fi
    if usable; then
        echo "$ENGINE_BIN"
        return 0
    fi
    # Holding the lock, no build is running: any build folder left is from one that was killed.
    rm -rf "$CACHE_ROOT/.build-$ENGINE_NAME".*
    local tmp log
    tmp="$(mktemp -d "$CACHE_ROOT/.build-$ENGINE_NAME.XXXXXX")"
    log="$tmp/build.log"
    echo "engine.sh: building $ENGINE_NAME $ENGINE_VERSION (about 8 minutes on 2 cores, once; log: $log)" >&2
    if ! with_progress "building" cargo_install "$tmp/root" "$log"; then
        tail -n 20 "$log" >&2
        die "building $ENGINE_NAME $ENGINE_VERSION failed (full log: $log)"
    fi
    rm -rf "$ENGINE_ROOT"
    mv "$tmp/root" "$ENGINE_ROOT"
    rm -rf "$tmp"
    usable || die "built $ENGINE_BIN but it does not run"
    echo "$ENGINE_BIN"
}

start() {
    [[ $# -eq 2 ]] || die "usage: engine.sh start PORT DATADIR"
    local port="$1" datadir="$2"
    usable || die "$ENGINE_BIN missing: run 'scripts/engine.sh build' first"
    mkdir -p "$datadir"
    # An explicit (empty) config stops auto-discovery of ./secantusd.toml, ~/.secantus/secantusd.toml.
    : >"$datadir/engine-empty.toml"
    # The kernel names a process after the file it executes, so through this link ps and the server's log
    # say secantus-mdb (not secantusd-rs, nor engine.sh).
    local named="$ENGINE_ROOT/bin/$ENGINE_NAME"
    [[ -e "$named" ]] || ln -s secantusd-rs "$named" 2>/dev/null || [[ -e "$named" ]] || named="$ENGINE_BIN"
    # The engine accepts writeConcern j:true but does not act on it: a commit reaches the disk only at its
    # next log flush, so kill -9 loses writes already acknowledged. --sync-on-commit fsyncs every commit.
    # ENGINE_SYNC_ON_COMMIT=0 leaves it out: faster writes, for benchmarks and data you can lose.
    local durability=(--sync-on-commit)
    [[ "${ENGINE_SYNC_ON_COMMIT:-1}" != 0 ]] || durability=()
    exec "$named" --config "$datadir/engine-empty.toml" --host 127.0.0.1 --port "$port" --storage-path "$datadir" \
        --cache-size "${ENGINE_CACHE_SIZE:-512M}" --log-file-max 32MB --log-level WARNING "${durability[@]}"
}

case "${1:-}" in
    build) build ;;
    start) shift; start "$@" ;;
    name) echo "$ENGINE_NAME" ;;
    built) usable ;;
    *) die "usage: engine.sh build | built | start PORT DATADIR | name" ;;
esac
