#include "data/bytes_tokenizer.h"

#include "core/check.h"
#include "data/gpt2_tokenizer.h"

namespace sinklab {

std::vector<int32_t> BytesTokenizer::encode(std::string_view text) const {
    std::vector<int32_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
}

std::string BytesTokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    out.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
        const int32_t id = ids[i];
        SL_REQUIRE(id >= 0 && id <= kEot, "token id {} at position {} is outside the bytes vocabulary [0, {}]", id,
                   i, kEot);
        if (id == kEot)
            out += kEndOfText;
        else
            out += static_cast<char>(id);
    }
    return out;
}

}  // namespace sinklab
