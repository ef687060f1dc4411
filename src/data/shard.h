// llm.c token shards: a header of 256 little-endian int32 (magic, version, token count, then zeros), then the
// tokens: magic 20240520 version 1 = uint16 tokens; magic 20240801 version 7 = uint32 tokens.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/mapped_file.h"

namespace sinklab {

inline constexpr int32_t kShardMagic16 = 20240520, kShardVersion16 = 1;
inline constexpr int32_t kShardMagic32 = 20240801, kShardVersion32 = 7;
inline constexpr size_t kShardHeaderInts = 256;
inline constexpr size_t kShardHeaderBytes = kShardHeaderInts * sizeof(int32_t);

// Bytes per token on disk: 2 when every id of the vocabulary fits in uint16, else 4.
int shard_token_bytes(int vocab_size);

// One shard file, mapped and validated: magic, version, and file size against the header's token count.
class Shard {
public:
    explicit Shard(const std::string& path);
    const std::string& path() const { return file_.path(); }
    uint64_t file_identity() const { return file_.identity(); }  // MappedFile::identity
    uint64_t tokens() const { return tokens_; }
    void copy(uint64_t from, uint64_t n, int32_t* out) const;  // tokens [from, from + n) as int32
    // The error for token `offset` (of this shard) not below vocab_size: the file, the token and its offset.
    [[noreturn]] void refuse_token(uint64_t offset, int vocab_size) const;

private:
    MappedFile file_;
    uint64_t tokens_ = 0;
    int token_bytes_ = 2;
};

// Collects one shard's tokens in memory, then writes the file atomically (a temporary file renamed into place).
class ShardWriter {
public:
    struct Written {
        std::string path;
        uint64_t tokens = 0, bytes = 0;
        std::string sha256;  // of the whole file, as sha256sum prints it
    };
    explicit ShardWriter(int vocab_size);
    void append(const int32_t* ids, size_t n);  // ids must lie in [0, vocab_size)
    uint64_t tokens() const { return data_.size() / token_bytes_; }
    Written write(const std::string& path);  // and starts a new, empty shard

private:
    int vocab_size_;
    int token_bytes_;
    std::vector<uint8_t> data_;  // tokens, little-endian, token_bytes_ each
};

}  // namespace sinklab
