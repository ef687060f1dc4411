#!/usr/bin/env bash
# The README's example on a fresh machine: installs what is missing, builds, and trains configs/tiny.yaml
# (HeadNorm attention, byte tokens) on the default English corpus, which is fetched and prepared on first use.
# Usage: scripts/quickstart.sh [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
install_deps

step "build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build sinklab

step "train configs/tiny.yaml (runs/tiny/)"
build/sinklab train configs/tiny.yaml --overwrite "$@"
