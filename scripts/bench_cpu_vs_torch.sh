#!/usr/bin/env bash
# sinklab's CPU backend against PyTorch (fp32, the same threads) on the same model and batch size:
# both training throughputs, measured one after the other in this run, and their ratio.
# Usage: scripts/bench_cpu_vs_torch.sh [CONFIG] [--set k=v ...]   env: THREADS, STEPS, SINKLAB_BIN
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-configs/tiny.yaml}
shift || true
threads=${THREADS:-$(nproc)}
steps=${STEPS:-20}
bin=${SINKLAB_BIN:-build/sinklab}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" info "$config" --set backend=cpu --set run.threads="$threads" "$@" --yaml >"$tmp/resolved.yaml"
variant=$(/usr/bin/python3 -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['attention']['variant'])" \
    "$tmp/resolved.yaml")
echo "== sinklab (CPU backend, $threads threads)"
"$bin" bench "$config" --set backend=cpu --set run.threads="$threads" "$@" --steps "$steps" --no-profile |
    tee "$tmp/ours.txt"
ours=$(awk -v v="$variant" '$2 == v && $3 ~ /^[0-9.]+$/ {print $3}' "$tmp/ours.txt" | tail -n 1)
echo "== PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') (fp32, $threads threads)"
OMP_NUM_THREADS=$threads /usr/bin/python3 scripts/torch_llama.py --config "$tmp/resolved.yaml" --device cpu \
  --threads "$threads" --steps "$steps" | tee "$tmp/torch.txt"
theirs=$(awk '/^torch tokens\/s/ {print $3}' "$tmp/torch.txt")
/usr/bin/python3 -c "import sys; o, t = float(sys.argv[1]), float(sys.argv[2]); \
print(f'ratio sinklab/torch = {o / t:.2f}x  ({o:.0f} vs {t:.0f} tokens/s)')" "$ours" "$theirs"
