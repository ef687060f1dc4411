// A learnable stand-in for text, for tiny CPU runs and tests when no corpus is at hand: documents drawn from one
// fixed random order-2 Markov source over 40 symbols (a-z, 0-9, space, '.', ',', newline). Each context of two
// symbols allows 3 successors, with probabilities 0.6 / 0.3 / 0.1 (0.898 nats = 1.30 bits per symbol); a document
// ends after each symbol with probability 1/1000. A model that learns the source reaches
// synthetic_entropy_per_token() (~0.905 nats per byte-tokenizer token), far below a uniform guess (ln 257 = 5.55).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sinklab {

// Documents from the source, drawn with `stream_seed`, until they hold at least min_chars symbols in all.
std::vector<std::string> synthetic_documents(uint64_t stream_seed, size_t min_chars);

// The source's entropy rate per token of the byte tokenizer, with one EOT token before each document (as the
// shards hold it), for documents of the mean length.
double synthetic_entropy_per_token();

}  // namespace sinklab
