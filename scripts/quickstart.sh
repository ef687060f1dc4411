#!/usr/bin/env bash
# The README's main command on a fresh Debian machine: installs what is missing (apt), builds sinklab, fetches and
# prepares the default corpus, trains standard attention against HeadNorm for a few minutes on the CPU, prints the
# comparison table and writes the plot. Under 10 minutes on 2 cores; a second run skips whatever is done already.
# Usage: scripts/quickstart.sh      env: BUILD_DIR (default build), SINKLAB_CUDA (AUTO|ON|OFF; default AUTO where
#                                    nvidia-smi sees a GPU, else OFF: the CUDA kernels take minutes to compile and
#                                    the comparison runs on the CPU)
# Outputs: runs/quickstart/ (the two runs), runs/quickstart.png and runs/quickstart-maps.png (plots),
# runs/quickstart.md (table).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

start=$SECONDS
elapsed() { printf '%d:%02d' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)); }
build_dir=${BUILD_DIR:-build}
bin=$PWD/$build_dir/sinklab

step "1/5 dependencies (Debian packages)"
install_deps

step "2/5 build sinklab in $build_dir/ [$(elapsed)]"
cuda=${SINKLAB_CUDA:-$( (nvidia-smi -L 2>/dev/null | grep -q GPU) && echo AUTO || echo OFF)}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSINKLAB_CUDA="$cuda" >/dev/null
ninja -C "$build_dir" sinklab  # the binary only; scripts/test.sh builds and runs the tests

step "3/5 default corpus: download, extract, tokenize (data/fetch_corpus.sh) [$(elapsed)]"
SINKLAB_BIN=$bin bash data/fetch_corpus.sh

step "4/5 train baseline, then HeadNorm (experiments/headnorm-vs-baseline/quickstart.yaml) [$(elapsed)]"
"$bin" sweep experiments/headnorm-vs-baseline/quickstart.yaml

step "5/5 compare [$(elapsed)]"
# this script's own, perhaps from a sinklab that did not mark them
rm -f runs/quickstart.png runs/quickstart-maps.png runs/quickstart.md
"$bin" compare runs/quickstart --plot runs/quickstart.png --maps runs/quickstart-maps.png \
    --markdown runs/quickstart.md

step "done in $(elapsed)"
cat <<MSG
The plots:  runs/quickstart.png (loss curves; attention mass on the first token per layer and step)
            runs/quickstart-maps.png (W_O input std by position per layer; attention maps at the last step)
The table:  runs/quickstart.md
Next:       $build_dir/sinklab sweep experiments/headnorm-vs-baseline/suite.yaml   (3 seeds, ~5 min)
            $build_dir/sinklab compare runs/headnorm-vs-baseline --plot hvb.png  (also while it runs)
            experiments/README.md explains suites; configs/base.yaml every config key.
MSG
