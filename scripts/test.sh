#!/usr/bin/env bash
# Installs what is missing (Debian apt), configures, builds and runs every test.
# Usage: scripts/test.sh [extra ctest args]     env: BUILD_DIR (default build), SINKLAB_CUDA (AUTO|ON|OFF)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps

build_dir=${BUILD_DIR:-build}
jobs=$(nproc)
step "configure ($build_dir)"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSINKLAB_CUDA="${SINKLAB_CUDA:-AUTO}" >/dev/null
step "build"
ninja -C "$build_dir" -j "$jobs"
# Reference data for the tokenizer and corpus tests; without network they are skipped, and say so.
step "GPT-2 vocabulary and default corpus (for the data tests)"
bash data/fetch_gpt2_vocab.sh || echo "sinklab: WARNING: no GPT-2 vocabulary; its tests will be skipped" >&2
SINKLAB_BIN="$build_dir/sinklab" bash data/fetch_corpus.sh ||
    echo "sinklab: WARNING: no default corpus; its tests will be skipped" >&2
step "test"
ctest --test-dir "$build_dir" -j "$jobs" --output-on-failure "$@"
