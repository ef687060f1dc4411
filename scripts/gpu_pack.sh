#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on the GPU machine into .carry/ (git-ignored), run HERE before the device
# call. That machine has the NVIDIA driver, CUDA 13, cuDNN (PyTorch's) and PyTorch, but none of our Debian
# libraries, so .carry/sinklab-gpu.tar.xz holds:
#   bin/    sinklab and sinklab_tests: Release, sm_90a, no -march=native (that CPU is not this one), no MPI (OpenMPI
#           would need its plugins and launcher there too), stripped of host symbols (the GPU code stays)
#   lib/    every shared library they load except glibc, the GCC C++ runtime, the driver and the CUDA toolkit
#           libraries (cudart, cuBLAS(Lt), cuDNN), which gpu_check.sh finds on the GPU machine
#   shards/ byte-level token shards of ~CORPUS_MB MiB of the default English corpus (documents drawn at random),
#           for the training stage; without the corpus the check trains on generated synthetic data instead
# xz because OpenBLAS alone is 36 MB (4 MB packed) and everything that travels must stay under 64 MiB.
# .carry/MANIFEST says what was built from which commit, with the unpacked sizes.
# Usage: bash scripts/gpu_pack.sh     env: JOBS (ninja jobs, default 2), BUILD_DIR (default build-gpu),
#        CORPUS_MB (default 4), SINKLAB_CACHE (where data/fetch_corpus.sh keeps the corpus, default .cache)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
build=${BUILD_DIR:-build-gpu}
carry=.carry
jobs=${JOBS:-2}
corpus_mb=${CORPUS_MB:-4}
cache=${SINKLAB_CACHE:-$repo/.cache}

die() { echo "gpu_pack: $*" >&2; exit 1; }

mkdir -p "$build"
echo "gpu_pack: configuring $build (Release, sm_90a, portable, no MPI)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSINKLAB_CUDA=ON -DSINKLAB_CUDA_ARCH=90a \
    -DSINKLAB_NATIVE=OFF -DSINKLAB_MPI=OFF -DSINKLAB_TESTS=ON >"$build/gpu_pack.configure.log" 2>&1 ||
    die "cmake failed; see $build/gpu_pack.configure.log"
grep -q "cuDNN=ON" "$build/gpu_pack.configure.log" ||
    die "cuDNN was not found, so attention.impl: cudnn could not be checked"
echo "gpu_pack: building sinklab and sinklab_tests (ninja -j $jobs; a clean build takes ~20 min on 2 cores)"
ninja -C "$build" -j "$jobs" sinklab sinklab_tests >"$build/gpu_pack.build.log" 2>&1 ||
    die "build failed; see $build/gpu_pack.build.log"

stage=$build/carry-stage
# Only this script's files: a variants pack of scripts/gpu_variants.sh in .carry stays (it takes far longer to make).
rm -rf "$stage" "$carry/sinklab-gpu.tar.xz" "$carry/MANIFEST"
mkdir -p "$stage/bin" "$stage/lib" "$carry"
for exe in "$build/sinklab" "$build/tests/sinklab_tests"; do
    strip --strip-unneeded -o "$stage/bin/$(basename "$exe")" "$exe"
done

# What the GPU machine has of its own: glibc, the GCC C++ runtime, the driver, the CUDA toolkit and cuDNN.
glibc='linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libresolv|libutil'
cuda='libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*|libnvJitLink|libnvrtc'
provided="^($glibc|libstdc\+\+|libgcc_s|$cuda)\.so"
for exe in "$stage"/bin/*; do
    ldd "$exe" | grep -q "not found" && die "$exe: $(ldd "$exe" | grep "not found" | head -n 1)"
    ldd "$exe" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | while read -r name path; do
        [[ $name =~ $provided ]] && continue
        cp -L "$path" "$stage/lib/$name"
    done
done

corpus=$cache/corpus/corpus.jsonl
if [[ ! -s $corpus ]]; then
    echo "gpu_pack: no corpus at $corpus; building it (data/fetch_corpus.sh)"
    SINKLAB_CACHE=$cache SINKLAB_BIN=$build/sinklab bash data/fetch_corpus.sh ||
        echo "gpu_pack: WARNING: no corpus; the check's training stage will use synthetic data"
fi
if [[ -s $corpus ]]; then
    subset=$(mktemp --suffix=.jsonl)
    trap 'rm -f "$subset"' EXIT
    # Whole documents in a fixed random order until the budget: every source of the corpus is represented.
    /usr/bin/python3 - "$corpus" "$subset" "$corpus_mb" <<'EOF'
import random, sys
lines = open(sys.argv[1], encoding="utf-8").readlines()
random.Random(0).shuffle(lines)
budget, out, n = int(float(sys.argv[3]) * 2**20), [], 0
for line in lines:
    if n + len(line) > budget:
        continue
    out.append(line)
    n += len(line)
open(sys.argv[2], "w", encoding="utf-8").writelines(out)
EOF
    "$build/sinklab" prepare "$subset" --out "$stage/shards" --tokenizer bytes --val-fraction 0.02 -q
fi

echo "gpu_pack: compressing (xz -9)"
tar -C "$stage" -cf - . | xz -9 -T "$jobs" >"$carry/sinklab-gpu.tar.xz"

{
    dirty=$(git diff --quiet HEAD || echo " (with uncommitted changes)")
    echo "commit $(git rev-parse --short=12 HEAD)$dirty"
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), $(/usr/local/cuda/bin/nvcc --version | tail -n 1)"
    echo "cmake: Release, SINKLAB_CUDA_ARCH=90a, SINKLAB_NATIVE=OFF, SINKLAB_MPI=OFF"
    echo "unpacked sizes (bytes):"
    (cd "$stage" && du -ab bin lib shards 2>/dev/null | sort -k2)
} >"$carry/MANIFEST"
total=$(du -sm "$carry" | cut -f1)
(( total < 60 )) || die "$carry is ${total} MiB; the device tool carries at most 64 MiB with the working tree"
echo "gpu_pack: $carry holds ${total} MiB:"
du -sh "$carry"/* | sed 's/^/  /'
