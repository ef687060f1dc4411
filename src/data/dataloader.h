// Training and validation windows from llm.c token shards (see shard.h), memory-mapped.
//
// All shards of the glob form one token stream of N tokens. A window is T+1 consecutive tokens (inputs and
// targets shifted by one); windows start every T tokens, so each token is a target once per epoch.
//   training (shuffle): epoch e starts at a random offset in [0, T) and visits its windows in a random order, both
//                       drawn from (seed, e); windows_per_epoch = N/T - 1 (integer division).
//   validation:         offset 0, windows in order; windows_per_epoch = (N-1)/T.
// A global batch is world*B consecutive entries of the epoch's order; rank r takes entries [r*B, r*B+B). An epoch
// ends when fewer than world*B windows remain (those are skipped); the next epoch starts. Validation then wraps
// around to the first window.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/shard.h"

namespace sinklab {

class Communicator;

struct LoaderPosition {
    uint64_t epoch = 0;
    uint64_t cursor = 0;  // windows of the epoch handed out so far, over all ranks
};

class DataLoader {
public:
    // Maps every shard of `glob`, validates them (header, size, every token < vocab_size) and fails with the file
    // named where one is wrong, or where the data holds less than one global batch.
    DataLoader(const std::string& glob, int B, int T, int rank, int world, uint64_t seed, bool shuffle,
               int vocab_size);
    void next(int32_t* inputs, int32_t* targets);  // [B, T] each
    void reset();                                  // back to the first batch
    LoaderPosition position() const { return pos_; }
    void seek(const LoaderPosition& p);  // continue exactly from there
    int64_t tokens() const { return static_cast<int64_t>(tokens_); }
    // "s1:" and a checksum of the stream's tokens as int32, in order: the same for the same tokens however shards cut
    // and store them (a resume may continue on the same data prepared again with other shard sizes); the prefix names
    // the scheme, so that a later one can tell it apart instead of refusing every earlier checkpoint.
    std::string fingerprint() const;
    int64_t windows_per_epoch() const { return static_cast<int64_t>(windows_); }
    // Fails on every rank when a rank reads other tokens than rank 0 (nodes with their own copies of the shards, one
    // copy stale or cut): its batches would come from other data than the positions every rank shares assume.
    // `key` names the config key of the glob in the message.
    void require_same_on_every_rank(Communicator& comm, const std::string& key) const;

private:
    static std::string fingerprint_of(uint64_t checksum);
    // One pass over every token, in chunks that OpenMP threads share: the error naming the shard and offset of the
    // first token >= vocab_size, or the stream's checksum (of each chunk's tokens as int32, combined in order).
    uint64_t check_stream(int vocab_size) const;
    void start_epoch(uint64_t epoch);                     // offset_ and order_ of that epoch
    void read(uint64_t from, uint64_t n, int32_t* out) const;  // stream tokens [from, from + n)

    std::string glob_;
    std::vector<Shard> shards_;
    std::vector<uint64_t> shard_start_;  // offset of each shard's first token in the stream
    int B_, T_, rank_, world_;
    uint64_t seed_;
    bool shuffle_;
    uint64_t tokens_ = 0, windows_ = 0, checksum_ = 0;
    LoaderPosition pos_;
    uint64_t ready_epoch_ = UINT64_MAX;  // epoch that offset_ and order_ belong to
    uint64_t offset_ = 0;
    std::vector<uint64_t> order_;  // [windows_] window visit order (training only)
    std::vector<int32_t> window_;  // [T+1]
};

}  // namespace sinklab
