// Tokenizers: text <-> token ids. "bytes" (256 byte symbols + EOT) needs no files; "gpt2" is GPT-2's byte-level
// BPE, loaded from encoder.json + vocab.bpe that data/fetch_gpt2_vocab.sh puts into <cache>/gpt2/.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sinklab {

class Tokenizer {
public:
    virtual ~Tokenizer();
    // Any bytes encode (invalid UTF-8 too) and decode back to the same bytes. The text "<|endoftext|>" is
    // ordinary text here, as in the reference package: documents are separated by inserting eot() ids.
    virtual std::vector<int32_t> encode(std::string_view text) const = 0;
    // Ids outside [0, vocab_size()) are an error; eot() decodes to "<|endoftext|>".
    virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
    virtual int eot() const = 0;
    virtual int vocab_size() const = 0;
    virtual std::string name() const = 0;
};

// "bytes" or "gpt2". gpt2 reads <cache>/gpt2/{encoder.json,vocab.bpe} (cache_dir() in data/cache.h) and says to
// run data/fetch_gpt2_vocab.sh where they are missing.
std::unique_ptr<Tokenizer> make_tokenizer(const std::string& name);

}  // namespace sinklab
