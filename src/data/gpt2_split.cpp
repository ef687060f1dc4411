#include "data/gpt2_split.h"

#include <array>

#include "data/unicode.h"

namespace sinklab {

namespace {

struct CodePoint {
    CharClass cls;
    size_t len;  // bytes
};

const std::array<CharClass, 128> kAsciiClass = [] {
    std::array<CharClass, 128> t{};
    for (char32_t c = 0; c < 128; ++c) t[c] = char_class(c);
    return t;
}();

inline CodePoint at(std::string_view s, size_t i) {
    const unsigned char b = s[i];
    if (b < 0x80) return {kAsciiClass[b], 1};
    char32_t cp;
    const int len = utf8_decode(s, i, cp);
    if (len == 0) return {CharClass::Other, 1};
    return {char_class(cp), static_cast<size_t>(len)};
}

// Length of the contraction ('s 't 're 've 'm 'll 'd, in the regex's order) that starts at s[i], or 0.
size_t contraction(std::string_view s, size_t i) {
    static constexpr std::string_view kSuffixes[] = {"s", "t", "re", "ve", "m", "ll", "d"};
    const std::string_view rest = s.substr(i + 1);
    for (std::string_view suffix : kSuffixes)
        if (rest.starts_with(suffix)) return 1 + suffix.size();
    return 0;
}

}  // namespace

void gpt2_split(std::string_view text, std::vector<std::string_view>& pieces) {
    pieces.clear();
    const size_t n = text.size();
    size_t i = 0;
    while (i < n) {
        if (text[i] == '\'') {
            if (const size_t len = contraction(text, i)) {
                pieces.push_back(text.substr(i, len));
                i += len;
                continue;
            }
        }
        const CodePoint c = at(text, i);
        // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": a run of one class, optionally after one ' '.
        size_t run = i;
        CodePoint first = c;
        if (text[i] == ' ' && i + 1 < n) {
            const CodePoint next = at(text, i + 1);
            if (next.cls != CharClass::Space) run = i + 1, first = next;
        }
        if (first.cls != CharClass::Space) {
            size_t k = run + first.len;
            while (k < n) {
                const CodePoint e = at(text, k);
                if (e.cls != first.cls) break;
                k += e.len;
            }
            pieces.push_back(text.substr(i, k - i));
            i = k;
            continue;
        }
        // "\s+(?!\S)|\s+": a whitespace run; before a non-space it leaves its last code point to the next piece
        // (which may then take it as its leading ' '), unless the run is a single code point.
        size_t k = i + c.len, last = i;
        while (k < n) {
            const CodePoint e = at(text, k);
            if (e.cls != CharClass::Space) break;
            last = k;
            k += e.len;
        }
        const size_t end = (k < n && last > i) ? last : k;
        pieces.push_back(text.substr(i, end - i));
        i = end;
    }
}

}  // namespace sinklab
