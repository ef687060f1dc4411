#!/usr/bin/env bash
# Tokenizer throughput on the default corpus: `sinklab prepare` of <cache>/corpus/corpus.jsonl with one thread and
# with all cores, for both tokenizers, into a scratch folder. Wall time and CPU time are both printed, because on a
# shared machine the wall time also measures the neighbours. Run data/fetch_corpus.sh first.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bin=${SINKLAB_BIN:-$repo/build/sinklab}
corpus=$cache/corpus/corpus.jsonl
[[ -s $corpus ]] || die "no $corpus; run data/fetch_corpus.sh first"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for tokenizer in gpt2 bytes; do
    for threads in 1 0; do
        /usr/bin/time -f "  cpu time: %U s user + %S s system" \
            env SINKLAB_CACHE="$cache" "$bin" prepare "$corpus" --out "$out/$tokenizer-$threads" \
            --tokenizer "$tokenizer" --threads "$threads" --force -q
    done
done
