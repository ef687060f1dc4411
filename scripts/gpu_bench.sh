#!/usr/bin/env bash
# The bench stages of scripts/gpu_check.sh, in one place so that tests/cli/gpu_report_test.cpp runs the same calls
# on the CPU: three `sinklab bench` runs into one log, which scripts/gpu_report.py reads.
#   1. standard on each attention.impl, with and without the per-step sink metrics, with per-op timing (the op
#      shares and attention's TFLOP/s per implementation);
#   2. standard and headnorm, with and without the metrics, in 2 rounds without per-op timing (the overheads);
#   3. standard on each attention.impl in 2 rounds without per-op timing (tokens/s against PyTorch's).
# Each run's first row is standard on ours, which its `vs first` ratios are to. sinklab_wgmma comes last, so that a
# fault of its kernels, which ends the CUDA context of its process, costs only its own rows. A run that fails does
# not stop the next; the exit status says whether all three succeeded.
# Usage: gpu_bench.sh SINKLAB CONFIG T MICRO_BATCH [--set k=v ...]   env: BENCH_STEPS (6), BENCH_WARMUP (2),
# NO_WGMMA (set: leave sinklab_wgmma out)
set -uo pipefail
(($# >= 4)) || { echo "usage: gpu_bench.sh SINKLAB CONFIG T MICRO_BATCH [--set k=v ...]" >&2; exit 2; }
bin=$1 config=$2 T=$3 micro_batch=$4
shift 4
args=("$config" --set model.seq_len="$T" --set train.micro_batch="$micro_batch" "$@"
      --steps "${BENCH_STEPS:-6}" --warmup "${BENCH_WARMUP:-2}")
impls=(--impls sinklab cudnn sinklab_wgmma)
[[ -n ${NO_WGMMA:-} ]] && impls=(--impls sinklab cudnn)
rc=0
"$bin" bench "${args[@]}" --variants standard "${impls[@]}" --metrics || rc=1
"$bin" bench "${args[@]}" --variants standard headnorm --metrics --no-profile --rounds 2 || rc=1
"$bin" bench "${args[@]}" --variants standard "${impls[@]}" --no-profile --rounds 2 || rc=1
exit $rc
