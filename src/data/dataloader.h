// Training and validation windows from llm.c token shards (see shard.h), memory-mapped.
//
// All shards of the glob form one token stream of N tokens. A window is T+1 consecutive tokens (inputs and
// targets shifted by one); windows start every T tokens, so each token is a target once per epoch.
//   training (shuffle, next): epoch e starts at a random offset in [0, T) and visits its windows in a random order,
//       both drawn from (seed, e); windows_per_epoch = N/T - 1 (integer division). A global batch is world*B
//       consecutive entries of the epoch's order; rank r takes entries [r*B, r*B+B). An epoch ends when fewer than
//       world*B windows remain (those are skipped); the next epoch starts.
//   validation (batch_at): offset 0, windows in order; windows_per_epoch = (N-1)/T. Micro-batch g is windows
//       [g*B, g*B+B) on whichever rank asks, so that validation takes the same windows on any number of ranks.
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
    // named where one is wrong, or where the data holds less than one global batch (validation: one micro-batch).
    // This process reads every token.
    DataLoader(const std::string& glob, int B, int T, int rank, int world, uint64_t seed, bool shuffle,
               int vocab_size);
    // The same for rank comm.rank() of comm.world(), every rank calling it: the ranks on one machine that map the very
    // same files (MappedFile::identity) share the pass over the tokens, each reading a slice of the stream, so that a
    // node reads its data once at start instead of once per rank. `key` (data.train, --data) names the glob in errors.
    DataLoader(const std::string& glob, int B, int T, Communicator& comm, uint64_t seed, bool shuffle, int vocab_size,
               const std::string& key = "");
    void next(int32_t* inputs, int32_t* targets);  // [B, T] each; training's loader
    // Windows [g B, g B + B) in order, g < windows_per_epoch() / B, on any rank; validation's loader.
    void batch_at(int64_t g, int32_t* inputs, int32_t* targets);  // [B, T] each
    LoaderPosition position() const { return pos_; }  // of next()
    void seek(const LoaderPosition& p);  // next() continues exactly from there
    int64_t tokens() const { return static_cast<int64_t>(tokens_); }
    int64_t tokens_checked() const { return static_cast<int64_t>(checked_); }  // by this process, at start
    // "s2:" and a checksum of the stream's tokens as int32, in order: the same for the same tokens however shards cut
    // and store them (a resume may continue on the same data prepared again with other shard sizes); the prefix names
    // the scheme, so that a later one can tell it apart instead of refusing every earlier checkpoint. s2 adds up one
    // term per chunk of the stream, so that ranks can checksum slices; s1 (before) chained the chunks' checksums.
    std::string fingerprint() const;
    int64_t windows_per_epoch() const { return static_cast<int64_t>(windows_); }
    // windows_per_epoch() of a training loader over `tokens` tokens, for estimates made without one (sinklab info).
    static uint64_t training_windows(uint64_t tokens, int T) {
        return tokens >= uint64_t(T) ? tokens / uint64_t(T) - 1 : 0;
    }
    // Fails on every rank when a rank reads other tokens than rank 0 (nodes with their own copies of the shards, one
    // copy stale or cut): its batches would come from other data than the positions every rank shares assume.
    // `key` names the config key of the glob in the message.
    void require_same_on_every_rank(Communicator& comm, const std::string& key) const;

private:
    DataLoader(const std::string& glob, int B, int T, int rank, int world, uint64_t seed, bool shuffle, int vocab_size,
               Communicator* sharers, const std::string& key);
    static std::string fingerprint_of(uint64_t checksum);
    // One pass over the tokens, shared with the ranks of `sharers` (null: none) that map the same files on this
    // machine: the error naming the shard and offset of the first token >= vocab_size, or the stream's checksum.
    uint64_t check_stream(int vocab_size, Communicator* sharers);
    // The tokens of chunks [first, last) of the stream, in chunks that OpenMP threads share: the first token at or
    // above `limit` (tokens_ when none) and the sum of the chunks' terms of the checksum.
    struct Checked {
        uint64_t sum = 0, first_bad = 0;
    };
    Checked check_chunks(uint64_t first, uint64_t last, uint32_t limit) const;
    void start_epoch(uint64_t epoch);                     // offset_ and order_ of that training epoch
    void read(uint64_t from, uint64_t n, int32_t* out) const;  // stream tokens [from, from + n)
    void read_window(uint64_t window, int b, int32_t* inputs, int32_t* targets);  // into sequence b of [B, T]

    std::string glob_;
    std::vector<Shard> shards_;
    std::vector<uint64_t> shard_start_;  // offset of each shard's first token in the stream
    int B_, T_, rank_, world_;
    uint64_t seed_;
    bool shuffle_;
    uint64_t tokens_ = 0, windows_ = 0, checksum_ = 0, checked_ = 0;
    LoaderPosition pos_;
    uint64_t ready_epoch_ = UINT64_MAX;  // epoch that offset_ and order_ belong to
    uint64_t offset_ = 0;          // of the epoch's first window; 0 for validation
    std::vector<uint64_t> order_;  // [windows_] window visit order (training)
    std::vector<int32_t> window_;  // [T+1]
};

}  // namespace sinklab
