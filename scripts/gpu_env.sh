# shellcheck shell=bash
# Sourced by scripts/gpu_check.sh and scripts/gpu_variants.sh on the GPU machine: where the carried binaries find
# their libraries, and how a carried .tar.xz is unpacked.

# Library folders of the CUDA toolkit and of PyTorch's NVIDIA wheels (cuDNN, cuBLAS) on this machine, for the
# carried binaries only (PyTorch loads its own).
cuda_lib_dirs() {
    local d
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib; do
        [[ -d $d ]] && echo "$d"
    done
    python3 - <<'PY' 2>/dev/null
import glob, os, site, sys
seen = set()
for p in sys.path + site.getsitepackages():
    for d in sorted(glob.glob(os.path.join(p, "nvidia", "*", "lib*"))):
        if d not in seen and os.path.isdir(d):
            seen.add(d)
            print(d)
PY
}

# Chosen here, so that sinklab does not start itself again to choose it (src/cli/main.cpp) under ncu or
# compute-sanitizer, which then follow a second image.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# The CUDA test suite, less the tests that need this checkout's build paths.
export CUDA_TEST_FILTER='Cuda*:*Model*:-Training.*:ConfigPresets.*:Eval.*:TorchCheckpoint.*'

# sl CMD...: runs CMD with the carried libraries (PACK_LIB, set by the caller) and the machine's CUDA libraries.
sl() { LD_LIBRARY_PATH="$SL_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }

# unpack ARCHIVE DIR: xz may be missing there; Python's tarfile reads it too.
unpack() {
    mkdir -p "$2"
    if command -v xz >/dev/null; then
        tar -C "$2" -xJf "$1"
    else
        python3 -m tarfile -e "$1" "$2"
    fi
}

# gpu_env_init PACK_LIB: sets SL_LIBS for sl and exports what the stages' subshells need.
gpu_env_init() {
    SL_LIBS="$1:$(cuda_lib_dirs | paste -sd:)"
    export SL_LIBS
    export -f sl
}
