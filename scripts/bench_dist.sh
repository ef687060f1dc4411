#!/usr/bin/env bash
# Data-parallel throughput on CPU: 1 rank x 2 threads against 2 ranks x 1 thread (mpirun) at the same global
# batch, and the share of step time spent in the all-reduces (waiting for the slower rank included).
# Usage: scripts/bench_dist.sh [CONFIG] [STEPS] [REPEATS]    (default configs/tiny.yaml 60 3)
# Each run goes to a temporary folder; the table gives the median tokens/s over steps 11..STEPS of each run
# and the best run of each setup (on a shared machine the best is the least disturbed).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/tiny.yaml}
STEPS=${2:-60}
REPEATS=${3:-3}
BIN=${SINKLAB_BIN:-build/sinklab}
OUT=$(mktemp -d /tmp/sinklab_bench_dist_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_WAIT_POLICY=passive
RESOLVED=$("$BIN" info "$CONFIG" --yaml)
B=$(awk '/^train:/ {t = 1} t && /micro_batch:/ {print $2; t = 0}' <<< "$RESOLVED")
COMMON=(--set run.out_dir="$OUT" --set train.max_steps="$STEPS" --set metrics.val_every=0 --set metrics.val_batches=1
        --set train.log_every=100000 --set train.tokens_per_step=0)

for r in $(seq "$REPEATS"); do
  "$BIN" train "$CONFIG" "${COMMON[@]}" --set run.name="1x2_$r" --set run.threads=2 > "$OUT/1x2_$r.log"
  mpirun -np 2 "$BIN" train "$CONFIG" "${COMMON[@]}" --set run.name="2x1_$r" --set run.threads=1 \
    --set train.micro_batch=$((B / 2)) > "$OUT/2x1_$r.log"
done

/usr/bin/python3 - "$OUT" "$REPEATS" <<'PY'
import re, sys
import h5py, numpy as np
out, repeats = sys.argv[1], int(sys.argv[2])
print(f"{'setup':<18}{'tokens/step':>12}{'tok/s (best run)':>18}{'tok/s (runs)':>30}{'all-reduce share':>20}")
for setup, label in (("1x2", "1 rank x 2 thr"), ("2x1", "2 ranks x 1 thr")):
    rates, shares = [], []
    for r in range(1, repeats + 1):
        f = h5py.File(f"{out}/{setup}_{r}/metrics.h5", "r")
        rates.append(float(np.median(f["train/tokens_per_s"][10:])))
        tokens = int(f.attrs["tokens_per_step"])
        m = re.search(r"all-reduce ([0-9.]+)%", open(f"{out}/{setup}_{r}.log").read())
        shares.append(m.group(1) + "%" if m else "-")
    best = int(np.argmax(rates))
    runs = " ".join(f"{x:.0f}" for x in rates)
    print(f"{label:<18}{tokens:>12}{rates[best]:>18.0f}{runs:>30}{shares[best]:>20}")
PY
