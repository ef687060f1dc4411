#include "data/shard.h"

#include <unistd.h>

#include <bit>
#include <filesystem>
#include <limits>

#include "core/check.h"
#include "core/file_writer.h"
#include "data/sha256.h"

namespace sinklab {

static_assert(std::endian::native == std::endian::little, "shards are little-endian; this reader maps them as is");

int shard_token_bytes(int vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

Shard::Shard(const std::string& path) : file_(path) {
    SL_REQUIRE(file_.size() >= kShardHeaderBytes,
               "{}: {} bytes, shorter than the {}-byte header of an llm.c token shard; the file is truncated or not "
               "a shard",
               path, file_.size(), kShardHeaderBytes);
    int32_t header[3];
    std::memcpy(header, file_.data(), sizeof(header));
    const int32_t magic = header[0], version = header[1], count = header[2];
    if (magic == kShardMagic16) {
        SL_REQUIRE(version == kShardVersion16, "{}: version {} with magic {}; uint16 shards have version {}", path,
                   version, magic, kShardVersion16);
        token_bytes_ = 2;
    } else if (magic == kShardMagic32) {
        SL_REQUIRE(version == kShardVersion32, "{}: version {} with magic {}; uint32 shards have version {}", path,
                   version, magic, kShardVersion32);
        token_bytes_ = 4;
    } else {
        fail("{}: magic number {} is not an llm.c token shard's ({} for uint16 or {} for uint32 tokens)", path, magic,
             kShardMagic16, kShardMagic32);
    }
    SL_REQUIRE(count >= 0, "{}: negative token count {} in the header", path, count);
    tokens_ = static_cast<uint64_t>(count);
    const uint64_t expected = kShardHeaderBytes + tokens_ * token_bytes_;
    SL_REQUIRE(file_.size() == expected,
               "{}: the header promises {} tokens ({} bytes with the header) but the file has {} bytes; it is "
               "truncated or corrupt",
               path, tokens_, expected, file_.size());
}

void Shard::copy(uint64_t from, uint64_t n, int32_t* out) const {
    SL_ASSERT(from + n <= tokens_, "reading tokens [{}, {}) of {} in {}", from, from + n, tokens_, path());
    const char* base = file_.data() + kShardHeaderBytes;
    if (token_bytes_ == 2) {
        const auto* p = reinterpret_cast<const uint16_t*>(base) + from;
        for (uint64_t i = 0; i < n; ++i) out[i] = p[i];
    } else {
        const auto* p = reinterpret_cast<const uint32_t*>(base) + from;
        for (uint64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(p[i]);
    }
}

void Shard::refuse_token(uint64_t offset, int vocab_size) const {
    int32_t id;
    copy(offset, 1, &id);
    fail("{}: token {} at token offset {} (byte {}) is not below the vocabulary size {}; the shards were made with "
         "another tokenizer than model.vocab_size expects",
         path(), static_cast<uint32_t>(id), offset, kShardHeaderBytes + offset * token_bytes_, vocab_size);
}

ShardWriter::ShardWriter(int vocab_size) : vocab_size_(vocab_size), token_bytes_(shard_token_bytes(vocab_size)) {}

void ShardWriter::append(const int32_t* ids, size_t n) {
    const size_t at = data_.size();
    data_.resize(at + n * token_bytes_);
    uint8_t* out = data_.data() + at;
    for (size_t i = 0; i < n; ++i) {
        SL_ASSERT(ids[i] >= 0 && ids[i] < vocab_size_, "token {} outside the vocabulary of {}", ids[i], vocab_size_);
        if (token_bytes_ == 2) {
            const uint16_t v = static_cast<uint16_t>(ids[i]);
            std::memcpy(out + 2 * i, &v, 2);
        } else {
            const uint32_t v = static_cast<uint32_t>(ids[i]);
            std::memcpy(out + 4 * i, &v, 4);
        }
    }
}

ShardWriter::Written ShardWriter::write(const std::string& path) {
    const uint64_t count = tokens();
    SL_REQUIRE(count <= static_cast<uint64_t>(std::numeric_limits<int32_t>::max()),
               "{}: {} tokens do not fit the int32 count of an llm.c shard header; use smaller shards", path, count);
    int32_t header[kShardHeaderInts] = {};
    header[0] = token_bytes_ == 2 ? kShardMagic16 : kShardMagic32;
    header[1] = token_bytes_ == 2 ? kShardVersion16 : kShardVersion32;
    header[2] = static_cast<int32_t>(count);
    Sha256 sha;
    sha.update(header, sizeof(header));
    sha.update(data_.data(), data_.size());

    const std::string tmp = fmt::format("{}.tmp{}", path, ::getpid());  // own name per process: renames stay atomic
    try {
        FileWriter f(tmp);  // synced before the rename: a manifest or a train start may name the shard right after
        f.write(header, sizeof(header));
        f.write(data_.data(), data_.size());
        f.finish();
    } catch (...) {
        std::error_code ignored;
        std::filesystem::remove(tmp, ignored);
        throw;
    }
    std::filesystem::rename(tmp, path);
    Written w{path, count, kShardHeaderBytes + data_.size(), sha.hex()};
    data_.clear();
    return w;
}

}  // namespace sinklab
