// The GPT-2 pre-tokenizer, written out by hand: the pieces that the regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// finds, left to right (JavaScript semantics for \s, as in the reference package gpt-3-encoder).
#pragma once
#include <string_view>
#include <vector>

namespace sinklab {

// Replaces `pieces` with the pieces of `text`; they are views into text and cover it exactly.
// A byte that starts no valid UTF-8 sequence counts as one code point of class Other.
void gpt2_split(std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace sinklab
