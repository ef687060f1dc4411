#include "data/tokenizer.h"

#include <filesystem>

#include "core/check.h"
#include "data/bytes_tokenizer.h"
#include "data/cache.h"
#include "data/gpt2_tokenizer.h"

namespace sinklab {

Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name) {
    if (name == "bytes") return std::make_unique<BytesTokenizer>();
    if (name == "gpt2") {
        const std::string dir = cache_dir() + "/gpt2";
        SL_REQUIRE(std::filesystem::exists(dir + "/encoder.json") && std::filesystem::exists(dir + "/vocab.bpe"),
                   "the GPT-2 vocabulary is not in {}/ (encoder.json, vocab.bpe): run data/fetch_gpt2_vocab.sh from "
                   "the repository root, or set SINKLAB_CACHE to the cache folder that holds gpt2/",
                   dir);
        return std::make_unique<Gpt2Tokenizer>(dir);
    }
    fail("unknown tokenizer '{}': use bytes or gpt2", name);
}

}  // namespace sinklab
