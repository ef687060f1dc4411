#include "data/unicode.h"

#include <algorithm>
#include <iterator>

#include "core/check.h"

namespace sinklab {

namespace {

struct ClassRange {
    char32_t first, last;
    CharClass cls;
};

constexpr ClassRange kRanges[] = {
#include "data/unicode_table.inc"
};

}  // namespace

CharClass char_class(char32_t cp) {
    auto it = std::upper_bound(std::begin(kRanges), std::end(kRanges), cp,
                               [](char32_t c, const ClassRange& r) { return c < r.first; });
    if (it == std::begin(kRanges)) return CharClass::Other;
    --it;
    return cp <= it->last ? it->cls : CharClass::Other;
}

int utf8_decode(std::string_view s, size_t i, char32_t& cp) {
    const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char b0 = byte(i);
    int len;
    char32_t min;  // smallest code point this length may encode: anything below is an overlong form
    if (b0 < 0x80) {
        cp = b0;
        return 1;
    } else if ((b0 & 0xE0) == 0xC0) {
        len = 2, cp = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3, cp = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4, cp = b0 & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (i + len > s.size()) return 0;
    for (int k = 1; k < len; ++k) {
        const unsigned char b = byte(i + k);
        if ((b & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t utf8_invalid_offset(std::string_view s) {
    size_t i = 0;
    char32_t cp;
    while (i < s.size()) {
        if (static_cast<unsigned char>(s[i]) < 0x80) {
            ++i;
            continue;
        }
        const int len = utf8_decode(s, i, cp);
        if (len == 0) return i;
        i += len;
    }
    return std::string_view::npos;
}

void require_utf8(std::string_view s, const std::string& where, size_t base_offset) {
    const size_t bad = utf8_invalid_offset(s);
    SL_REQUIRE(bad == std::string_view::npos,
               "{}: invalid UTF-8 at byte {}; text input must be UTF-8 (convert it, e.g. iconv -f latin1 -t utf-8)",
               where, base_offset + bad);
}

}  // namespace sinklab
