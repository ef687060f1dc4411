#!/usr/bin/env bash
# The whole GPU verification in one call of the device tool (README.md, "Checking on a GPU"). First, here:
#   bash scripts/gpu_pack.sh          # fills .carry/ (portable binaries, their libraries, token shards)
# then on the GPU machine, from the repository root, with carry [".carry"] and a 600 s limit:
#   bash scripts/gpu_check.sh
# Stages, each with its own time limit (together 9.75 minutes; the whole check takes about 5 on an H200), cut to
# what is left before SINKLAB_GPU_DEADLINE (below) or skipped when too little is, and its own log <stage>.log; a
# stage that fails or runs out of time is reported and the next one runs:
#   preflight   unpack .carry; GPU, driver, toolkit, cuDNN and PyTorch versions; every library of the binaries found
#               (cuBLASLt too, which they load only when a GPU run starts)
#   tests       the CUDA test suite: sinklab_tests --gtest_filter='Cuda*:*Model*' (less the tests that need this
#               checkout's build paths), the wgmma tests (Cuda*Wgmma*) in a process of their own; report.md lists
#               each failed test with its first messages (CudaWgmma's name the operand elements the hardware read,
#               should it read a tile otherwise than the emulator)
#   sanitize    compute-sanitizer memcheck and racecheck on the norm and sink-metric op tests, memcheck on the
#               attention op tests and the exact-size scratch tests
#   bench-1024  sinklab bench on llama-152m, T=1024 (micro-batch 48) and T=4096 (12), bf16 (scripts/gpu_bench.sh):
#   bench-4096  standard with per-op timing, attention.impl sinklab, cudnn and sinklab_wgmma, with and without
#               per-step sink metrics; then without per-op timing for the tokens/s, in 2 rounds (medians; ratios from
#               per-round ratios): standard and headnorm with and without the metrics (our attention), and standard
#               on each attention.impl
#   torch-1024  scripts/torch_llama.py (torch.compile, bf16 autocast, fastest SDPA) on the same model and batch
#   torch-4096
#   train       a small model (6 x 384, T=512, bf16) for 600 steps on the carried English shards
#   profile     Nsight Compute (ncu --set full) on one launch each of our three attention kernels at llama-152m's
#               T=1024 shape, mma.sync and wgmma: time, the TFLOP/s of their products, tensor-pipe and issue
#               activity, occupancy and the largest stall reasons; then the attention kernels' SASS (cuobjdump: the
#               toolkit's or Triton's; no machine here has one)
# STAGES="tests sanitize" runs only the stages named (preflight, which unpacks the binaries, always runs): a quick
# re-check after a fix in the same device session.
# $OUT/report.md gets the summary table (also printed last), the issue's speed goals judged per sequence length (printed
# before it) and each stage's key lines; $OUT/logs.tar.gz the logs (both rewritten after every stage, so a call cut
# short still returns them; the device tool returns at most 8 files).
# Without a GPU every GPU stage fails fast and the report still comes out (a dry run: bash scripts/gpu_check.sh;
# OUT defaults to /tmp/sinklab-gpu-check-out).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# The end of the whole device call, in seconds since the epoch, shared with a gpu_variants.sh run after this script
# in the same call (export it before both); by default 570 s from now, inside the tool's 600 s.
export SINKLAB_GPU_DEADLINE=${SINKLAB_GPU_DEADLINE:-$(($(date +%s) + 570))}
OUT=${OUT:-${TMPDIR:-/tmp}/sinklab-gpu-check-out}
work=${TMPDIR:-/tmp}/sinklab-gpu-check
all_stages="preflight tests sanitize bench-1024 bench-4096 torch-1024 torch-4096 train profile"
for name in ${STAGES:-}; do
    [[ " $all_stages " == *" $name "* ]] ||
        { echo "gpu_check.sh: STAGES names '$name'; the stages: $all_stages" >&2; exit 2; }
done
mkdir -p "$OUT"
rm -rf "$work"
mkdir -p "$work/pack" "$work/runs" "$work/logs"
: >"$work/stages.tsv"
export OUT work
export bin=$work/pack/bin
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
gpu_env_init "$work/pack/lib"

# The binaries are unpacked first: a cold `import torch` on a fresh machine may take long enough to end the stage,
# and every later stage needs them.
preflight() {
    echo "host: $(uname -srm), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    if [[ ! -s .carry/sinklab-gpu.tar.xz ]]; then
        echo "no .carry/sinklab-gpu.tar.xz: run scripts/gpu_pack.sh first and carry .carry"
        return 1
    fi
    head -n 3 .carry/MANIFEST
    unpack .carry/sinklab-gpu.tar.xz "$work/pack" || return 1
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || echo "nvidia-smi: none"
    if command -v nvcc >/dev/null; then nvcc --version | tail -n 2; else echo "nvcc: none"; fi
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn",
torch.backends.cudnn.version(), "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)' ||
        echo "torch: not importable"
    echo "libraries for the carried binaries: $SL_LIBS"
    local missing=0 exe
    for exe in "$bin"/*; do
        echo "$(basename "$exe"):"
        sl ldd "$exe" | grep -E "not found|cudnn|cublas|cudart|openblas|gomp" | sed 's/^/  /'
        sl ldd "$exe" | grep -q "not found" && missing=1
    done
    # sinklab loads cuBLASLt when a GPU run starts, not with the process (src/backend/cublaslt_lazy.cu): ldd omits it.
    local lazy
    lazy=$(grep -ao 'libcublasLt\.so\.[0-9]*' "$bin/sinklab" | sort -u | head -n 1)
    if [[ -n $lazy ]] && sl python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1])' "$lazy" 2>/dev/null; then
        echo "sinklab loads $lazy when a GPU run starts: found"
    else
        echo "sinklab loads ${lazy:-cuBLASLt} when a GPU run starts: not found"
        missing=1
    fi
    sl "$bin/sinklab" --version
    ((missing == 0)) && nvidia-smi -L
}

# The wgmma tests in a second process: a fault of those kernels on the GPU ends their process's CUDA context, which
# would fail every test after it. Until they pass (a failure, a hang cut by the stage's limit), $work/wgmma-unproven
# keeps sinklab_wgmma out of the bench stages: a fault there would end the other implementations' runs with it.
tests() {
    local rc=0
    sl "$bin/sinklab_tests" --gtest_color=no --gtest_filter="$CUDA_TEST_FILTER:Cuda*Wgmma*" || rc=1
    touch "$work/wgmma-unproven"
    if sl "$bin/sinklab_tests" --gtest_color=no --gtest_filter='Cuda*Wgmma*'; then
        rm -f "$work/wgmma-unproven"
    else
        rc=1
    fi
    return $rc
}

# compute-sanitizer (memcheck, then racecheck for the shared-memory reductions) on the small op tests of the
# normalization and sink-metric kernels; the whole suite under it would not fit the call.
# The attention kernels get memcheck only: racecheck on them would not fit the stage. So do the launchers that take
# scratch, each run with exactly what it asks for (CudaScratch), where memcheck sees a write past it.
sanitize() {
    local cs rc=0 filter='CudaOps.RMSNorm:CudaOps.HeadNorm*:CudaOps.QKNorm:CudaOps.SinkMetric*'
    cs=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null) ||
        { echo "compute-sanitizer: none"; return 1; }
    # Each tool runs whatever the one before found, so that one finding does not hide another's.
    sl "$cs" --tool memcheck --error-exitcode 1 "$bin/sinklab_tests" --gtest_filter="$filter" --gtest_brief=1 || rc=1
    sl "$cs" --tool racecheck --error-exitcode 1 "$bin/sinklab_tests" --gtest_filter="$filter" --gtest_brief=1 || rc=1
    sl "$cs" --tool memcheck --error-exitcode 1 "$bin/sinklab_tests" --gtest_brief=1 \
        --gtest_filter='CudaOps.Attention*:CudaScratch.*:-CudaOps.AttentionCudnn*' || rc=1
    return $rc
}

bench() {  # bench T MICRO_BATCH: scripts/gpu_bench.sh's three runs
    [[ -e $work/wgmma-unproven ]] && export NO_WGMMA=1 && echo "the wgmma tests did not pass: no sinklab_wgmma rows"
    sl bash scripts/gpu_bench.sh "$bin/sinklab" configs/llama-152m.yaml "$1" "$2" --set backend=cuda
}

torch_peer() {  # torch_peer T MICRO_BATCH
    sl "$bin/sinklab" info configs/llama-152m.yaml --set model.seq_len="$1" --set train.micro_batch="$2" --yaml \
        >"$work/llama-$1.yaml" || return 1
    PYTHONUNBUFFERED=1 python3 scripts/torch_llama.py --config "$work/llama-$1.yaml" --steps 6 --warmup 3
}

train() {
    local data
    if compgen -G "$work/pack/shards/train_*.bin" >/dev/null; then
        echo "data: the carried English shards (bytes)"
        data=(--set "data.train=$work/pack/shards/train_*.bin" --set "data.val=$work/pack/shards/val_*.bin"
              --set data.missing=error)
    else
        echo "data: no carried shards; generated synthetic data (order-2 Markov, best loss 0.905)"
        data=(--set "data.train=$work/synthetic/train_*.bin" --set "data.val=$work/synthetic/val_*.bin"
              --set data.missing=synthetic)
    fi
    sl "$bin/sinklab" train configs/tiny.yaml --set backend=cuda --set precision.compute=bf16 \
        --set model.d_model=384 --set model.n_layer=6 --set model.n_head=6 --set model.d_ff=1152 \
        --set model.seq_len=512 --set train.micro_batch=32 --set train.max_steps=600 --set train.warmup_steps=50 \
        --set train.lr=2e-3 --set train.min_lr=2e-4 --set train.log_every=50 --set metrics.val_every=150 \
        --set metrics.heavy_every=300 --set run.out_dir="$work/runs" --set run.name=gpu-check "${data[@]}"
}
# One launch each of the forward, dK/dV and dQ kernels at llama-152m's T=1024 shape, mma.sync and wgmma (one step of
# each attention.impl; both dQ passes are the one kernel that reads the dS the dK/dV kernel kept, so the wgmma dQ
# kernel, which recomputes dS and runs only under attention.ds_scratch_mib: 0, is not among them). One layer and a
# small vocabulary (byte tokens) leave little device memory for ncu to save and restore between its replays of a
# kernel. The configuration is checked first, so that a dry run finds a mistake in it; it also gives the report the
# shape. The CSV names the kernels with their template arguments (demangled), which tell the two sets apart. Then the
# kernels' SASS.
profile() {
    local ncu rc=0 cfg=(configs/llama-152m.yaml --set backend=cuda --set model.seq_len=1024 --set train.micro_batch=48
                        --set model.n_layer=1 --set model.vocab_size=512 --set data.tokenizer=bytes)
    sl "$bin/sinklab" info "${cfg[@]}" --yaml >"$work/logs/profile-config.yaml" || return 1
    if ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null); then
        # The report is read whatever the run's end: a wgmma fault would end it after the mma.sync kernels' profiles.
        sl "$ncu" --clock-control none --set full -k 'regex:attn_(fwd|dkdv|dq|dq_ds)_kernel' --launch-count 6 -f \
            -o "$work/attn" "$bin/sinklab" bench "${cfg[@]}" --variants standard --impls sinklab sinklab_wgmma \
            --steps 1 --warmup 0 --no-profile || rc=1
        if [[ -f $work/attn.ncu-rep ]]; then
            { "$ncu" -i "$work/attn.ncu-rep" --csv --page raw --print-kernel-base demangled >"$work/logs/ncu-raw.csv" ||
                "$ncu" -i "$work/attn.ncu-rep" --csv --page raw >"$work/logs/ncu-raw.csv"; } &&
                "$ncu" -i "$work/attn.ncu-rep" --page details || rc=1
        else
            rc=1
        fi
    else
        echo "ncu: none"
        rc=1
    fi
    sass_dump
    return $rc
}

# The SASS of every attention kernel into logs/attn.sass, which gpu_report.py counts by instruction kind: no machine
# here has cuobjdump, so the kernels' instruction counts can only be read on the GPU machine. After ncu, and at most
# 20 s, so that the profile keeps its time.
sass_dump() {
    local dump triton
    triton=$(python3 -c 'import os, triton; print(os.path.dirname(triton.__file__))' 2>/dev/null)
    for dump in "$(command -v cuobjdump)" /usr/local/cuda/bin/cuobjdump "$triton/backends/nvidia/bin/cuobjdump" ""; do
        [[ -x $dump ]] && break
    done
    if [[ -z $dump ]]; then
        echo "cuobjdump: none"
        return
    fi
    timeout 20 "$dump" -sass "$bin/sinklab" | awk '/Function : /{keep = /attn_/} keep' >"$work/logs/attn.sass"
    echo "SASS of $(grep -c 'Function : ' "$work/logs/attn.sass") attention kernels in logs/attn.sass ($dump)"
}
export -f preflight tests sanitize bench torch_peer train profile sass_dump unpack

# A stage gets at most what is left of the call (SINKLAB_GPU_DEADLINE, less 20 s for a killed stage's 10 s of grace
# and the report); one that would get less than 15 s is skipped, so that report.md is whole before the device tool's
# limit ends the call.
stage() {  # stage NAME LIMIT_S FUNCTION [ARGS...]: output to logs/NAME.log, a row in stages.tsv, report.md anew
    local name=$1 limit=$2 t0=$SECONDS rc status left
    shift 2
    [[ -z ${STAGES:-} || $name == preflight || " $STAGES " == *" $name "* ]] || return 0
    left=$((SINKLAB_GPU_DEADLINE - $(date +%s) - 20))
    if ((left < 15)); then
        echo "== $name: skipped, the call's time is spent"
        printf '%s\t%s\t0\t%s\n' "$name" "SKIPPED (no time left)" "$limit" >>"$work/stages.tsv"
        return 0
    fi
    ((limit > left)) && limit=$left
    echo "== $name (limit ${limit}s)"
    timeout -k 10 "$limit" bash -c '"$@"' _ "$@" >"$work/logs/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124 | 137) status=TIMEOUT ;;
        *) status="FAIL (rc $rc)" ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - t0))" "$limit" >>"$work/stages.tsv"
    tail -n 4 "$work/logs/$name.log" | sed 's/^/   /'
    tar -czf "$OUT/logs.tar.gz.tmp" -C "$work" logs && mv "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"
    python3 scripts/gpu_report.py "$work/stages.tsv" "$work/logs" "$OUT" >/dev/null 2>&1
}

# Limits leave room over what an H200 took: a configuration's bench pass took about 2.8 s at T=1024 and 3.3 s at
# 4096, and a stage runs 20 (6 profiled, then 8 and 6 in each of two rounds). A bench cut short still has its
# profiled table. The tests and sanitize stages run each head-dim-64 attention case twice (mma.sync and wgmma).
stage preflight 30 preflight
stage tests 55 tests
stage sanitize 60 sanitize
stage bench-1024 90 bench 1024 48
stage bench-4096 100 bench 4096 12
stage torch-1024 70 torch_peer 1024 48
stage torch-4096 65 torch_peer 4096 12
stage train 45 train
stage profile 70 profile

python3 scripts/gpu_report.py "$work/stages.tsv" "$work/logs" "$OUT" || {
    echo "gpu_report.py failed; the stages were:"
    cat "$work/stages.tsv"
}
