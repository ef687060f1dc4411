// UTF-8 decoding and the code point classes that the GPT-2 pre-tokenizer's regex distinguishes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sinklab {

// Letter = \p{L}, Number = \p{N}, Space = JavaScript's \s (the reference tokenizer is a JavaScript regex);
// everything else, including bytes that are not valid UTF-8, is Other.
enum class CharClass : uint8_t { Other, Letter, Number, Space };

CharClass char_class(char32_t cp);

// Decodes the code point that starts at s[i] into cp and returns its length in bytes (1-4), or 0 where s[i]
// starts no valid UTF-8 sequence (truncated, overlong, a surrogate, or past U+10FFFF).
int utf8_decode(std::string_view s, size_t i, char32_t& cp);

// Byte offset of the first invalid UTF-8 sequence in s, or std::string_view::npos when s is valid.
size_t utf8_invalid_offset(std::string_view s);

// Throws an error naming `where` and the byte offset (plus base_offset) of the first invalid UTF-8 sequence.
void require_utf8(std::string_view s, const std::string& where, size_t base_offset = 0);

}  // namespace sinklab
