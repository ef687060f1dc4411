// The byte-level tokenizer: id = byte value (0-255), EOT = 256. No vocabulary file, no merges.
#pragma once
#include "data/tokenizer.h"

namespace sinklab {

class BytesTokenizer final : public Tokenizer {
public:
    static constexpr int kEot = 256;
    std::vector<int32_t> encode(std::string_view text) const override;
    std::string decode(const std::vector<int32_t>& ids) const override;
    int eot() const override { return kEot; }
    int vocab_size() const override { return kEot + 1; }
    std::string name() const override { return "bytes"; }
};

}  // namespace sinklab
