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
step "test"
ctest --test-dir "$build_dir" -j "$jobs" --output-on-failure "$@"
