#include "data/dataloader.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "core/check.h"
#include "core/checksum.h"
#include "core/rng.h"
#include "data/glob.h"
#include "dist/comm.h"

namespace sinklab {

namespace {

// Tokens: 256 KiB as int32, in a core's cache. Part of the s2 checksum's definition: another size is another scheme
// (a new prefix), or every checkpoint's checksum would read as other data.
constexpr uint64_t kChunk = 1 << 16;

}  // namespace

DataLoader::DataLoader(const std::string& glob, int B, int T, int rank, int world, uint64_t seed, bool shuffle,
                       int vocab_size)
    : DataLoader(glob, B, T, rank, world, seed, shuffle, vocab_size, nullptr, "") {}

DataLoader::DataLoader(const std::string& glob, int B, int T, Communicator& comm, uint64_t seed, bool shuffle,
                       int vocab_size, const std::string& key)
    : DataLoader(glob, B, T, comm.rank(), comm.world(), seed, shuffle, vocab_size, &comm, key) {}

DataLoader::DataLoader(const std::string& glob, int B, int T, int rank, int world, uint64_t seed, bool shuffle,
                       int vocab_size, Communicator* sharers, const std::string& key)
    : glob_(glob), B_(B), T_(T), rank_(rank), world_(world), seed_(seed), shuffle_(shuffle) {
    // The glob as errors name it: "data.train 'x/*.bin'", or "'x/*.bin'" without a key.
    const std::string named = fmt::format("{}'{}'", key.empty() ? "" : key + " ", glob);
    SL_REQUIRE(B > 0 && T > 0, "batch shape B={} T={} must be positive", B, T);
    SL_REQUIRE(world > 0 && rank >= 0 && rank < world, "rank {} is not in [0, world size {})", rank, world);
    SL_REQUIRE(vocab_size > 0, "vocab_size {} must be positive", vocab_size);
    const std::vector<std::string> files = glob_files(glob);
    SL_REQUIRE(!files.empty(),
               "no token shard matches {}{}: make shards with `sinklab prepare` or data/fetch_corpus.sh (see "
               "data/README.md), or fix the path",
               named,
               std::filesystem::path(glob).is_relative()
                   ? fmt::format(" (relative to the current folder, {})", std::filesystem::current_path().string())
                   : "");
    shards_.reserve(files.size());
    for (const std::string& f : files) {
        // The folder named itself, or caught by a wildcard among the shards beside it.
        const std::filesystem::path path(f), shards = f == glob ? path : path.parent_path();
        SL_REQUIRE(!std::filesystem::is_directory(f),
                   "{} matches {}, a folder, not a token shard; give a glob that matches shard files only (such as "
                   "'{}')",
                   named, f, (shards / "*.bin").lexically_normal().string());
        shards_.emplace_back(f);
        shard_start_.push_back(tokens_);
        tokens_ += shards_.back().tokens();
    }
    checksum_ = check_stream(vocab_size, sharers);
    const uint64_t T64 = static_cast<uint64_t>(T);
    windows_ = shuffle ? training_windows(tokens_, T) : (tokens_ > 0 ? (tokens_ - 1) / T64 : 0);
    // Training takes a global batch a step; validation any one micro-batch (batch_at).
    const uint64_t needed = shuffle ? static_cast<uint64_t>(world) * B : static_cast<uint64_t>(B);
    SL_REQUIRE(windows_ >= needed,
               "{} holds {} tokens in {} shard(s): {} windows of T+1={} tokens{}, fewer than {} = {}; use more data or "
               "a smaller batch / seq_len",
               named, tokens_, shards_.size(), windows_, T + 1,
               shuffle ? fmt::format(" (training's start at a random offset below T: {} / {} - 1)", tokens_, T) : "",
               shuffle ? "one global batch of world x B" : "one micro-batch of B", needed);
    window_.resize(T + 1);
}

uint64_t DataLoader::check_stream(int vocab_size, Communicator* sharers) {
    const uint64_t chunks = (tokens_ + kChunk - 1) / kChunk;
    std::vector<int> peers{rank_};  // the ranks sharing the pass, this one among them
    if (sharers) {
        std::vector<uint64_t> files;  // [shards]
        for (const Shard& shard : shards_) files.push_back(shard.file_identity());
        peers = ranks_on_this_kernel_with(*sharers, checksum64(files.data(), files.size() * sizeof(uint64_t)));
    }
    const uint64_t n = peers.size(), me = uint64_t(std::find(peers.begin(), peers.end(), rank_) - peers.begin());
    const uint64_t first = chunks * me / n, last = chunks * (me + 1) / n;
    checked_ = std::min(last * kChunk, tokens_) - std::min(first * kChunk, tokens_);
    Checked all = check_chunks(first, last, static_cast<uint32_t>(vocab_size));
    if (sharers) {
        const uint64_t mine[2] = {all.sum, all.first_bad};
        const std::vector<uint64_t> parts = gather_from_every_rank(*sharers, mine, 2);  // [world, 2]
        all = {0, tokens_};
        for (const int r : peers) {
            all.sum += parts[2 * size_t(r)];
            all.first_bad = std::min(all.first_bad, parts[2 * size_t(r) + 1]);
        }
    }
    if (all.first_bad < tokens_) {
        const auto s =
            std::upper_bound(shard_start_.begin(), shard_start_.end(), all.first_bad) - shard_start_.begin() - 1;
        shards_[size_t(s)].refuse_token(all.first_bad - shard_start_[size_t(s)], vocab_size);
    }
    return mix64(all.sum + tokens_);
}

DataLoader::Checked DataLoader::check_chunks(uint64_t first, uint64_t last, uint32_t limit) const {
    uint64_t sum = 0, first_bad = tokens_;
#pragma omp parallel
    {
        std::vector<int32_t> ids(kChunk);  // [kChunk]
#pragma omp for schedule(static) reduction(+ : sum) reduction(min : first_bad)
        for (int64_t c = static_cast<int64_t>(first); c < static_cast<int64_t>(last); ++c) {
            const uint64_t from = static_cast<uint64_t>(c) * kChunk, n = std::min(kChunk, tokens_ - from);
            read(from, n, ids.data());
            // The chunk's index goes into its term, so that the same chunks in another order sum to another value.
            sum += mix64(checksum64(ids.data(), n * sizeof(int32_t)) + splitmix64(static_cast<uint64_t>(c)));
            uint32_t max = 0;  // uint32 ids above INT32_MAX are negative as int32: compared unsigned
            for (uint64_t i = 0; i < n; ++i) max = std::max(max, static_cast<uint32_t>(ids[i]));
            if (max < limit) continue;
            for (uint64_t i = 0; i < n; ++i)
                if (static_cast<uint32_t>(ids[i]) >= limit) {
                    first_bad = std::min(first_bad, from + i);
                    break;
                }
        }
    }
    return {sum, first_bad};
}

std::string DataLoader::fingerprint_of(uint64_t checksum) { return fmt::format("s2:{:016x}", checksum); }

std::string DataLoader::fingerprint() const { return fingerprint_of(checksum_); }

void DataLoader::require_same_on_every_rank(Communicator& comm, const std::string& key) const {
    if (comm.world() == 1) return;
    const uint64_t identity[2] = {tokens_, checksum_};
    const std::vector<int> differ = ranks_differing_from_root(comm, checksum64(identity, sizeof identity));
    if (differ.empty()) return;
    uint64_t root[2] = {tokens_, checksum_};  // what rank 0 read, for every rank's message
    comm.broadcast(root, sizeof root, 0);
    fail("rank(s) {} read other tokens from {} '{}'{} than rank 0 ({} tokens, checksum {}): every rank must read the "
         "same shards; where nodes keep their own copies, make them identical (copy them again, or rerun the same "
         "sinklab prepare)",
         fmt::join(differ, ", "), key, glob_,
         std::filesystem::path(glob_).is_relative() ? " (relative to each rank's current folder)" : "", root[0],
         fingerprint_of(root[1]));
}

void DataLoader::start_epoch(uint64_t epoch) {
    if (ready_epoch_ == epoch) return;
    ready_epoch_ = epoch;
    SplitMix64 rng(mix64(seed_) ^ mix64(epoch + 0x5851F42D4C957F2Dull));
    offset_ = rng.below(static_cast<uint64_t>(T_));
    order_.resize(windows_);
    std::iota(order_.begin(), order_.end(), uint64_t{0});
    for (uint64_t i = windows_ - 1; i > 0; --i) std::swap(order_[i], order_[rng.below(i + 1)]);  // Fisher-Yates
}

void DataLoader::read(uint64_t from, uint64_t n, int32_t* out) const {
    size_t s = std::upper_bound(shard_start_.begin(), shard_start_.end(), from) - shard_start_.begin() - 1;
    while (n > 0) {
        const uint64_t local = from - shard_start_[s];
        const uint64_t take = std::min(n, shards_[s].tokens() - local);
        shards_[s].copy(local, take, out);
        out += take, from += take, n -= take;
        ++s;
    }
}

void DataLoader::read_window(uint64_t window, int b, int32_t* inputs, int32_t* targets) {
    const size_t T = static_cast<size_t>(T_);
    read(offset_ + window * T, T + 1, window_.data());
    std::copy(window_.begin(), window_.begin() + T, inputs + b * T);   // [B, T]
    std::copy(window_.begin() + 1, window_.end(), targets + b * T);    // [B, T]
}

void DataLoader::next(int32_t* inputs, int32_t* targets) {
    SL_ASSERT(shuffle_, "next() of the validation loader of {}: validation reads batch_at", glob_);
    const uint64_t global = static_cast<uint64_t>(world_) * B_;
    if (pos_.cursor + global > windows_) pos_ = {pos_.epoch + 1, 0};
    start_epoch(pos_.epoch);
    for (int b = 0; b < B_; ++b) {
        const uint64_t entry = pos_.cursor + static_cast<uint64_t>(rank_) * B_ + b;
        read_window(order_[entry], b, inputs, targets);
    }
    pos_.cursor += global;
}

void DataLoader::batch_at(int64_t g, int32_t* inputs, int32_t* targets) {
    SL_ASSERT(!shuffle_ && g >= 0 && uint64_t(g + 1) * B_ <= windows_, "batch_at({}) of {} windows of {} (B = {})", g,
              windows_, glob_, B_);
    for (int b = 0; b < B_; ++b) read_window(uint64_t(g) * B_ + b, b, inputs, targets);  // offset_ stays 0
}

void DataLoader::seek(const LoaderPosition& p) {
    SL_REQUIRE(p.cursor <= windows_,
               "data position (epoch {}, window {}) lies past the {} windows per epoch of '{}'; it was saved with "
               "other data or another seq_len",
               p.epoch, p.cursor, windows_, glob_);
    pos_ = p;
}

}  // namespace sinklab
