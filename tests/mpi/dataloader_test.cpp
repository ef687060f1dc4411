// DataLoader under mpiexec -n 2 (and -n 3): ranks of one machine that map the same shards split the pass over the
// tokens at start, and come to what one process reading every token comes to: the checksum, and the error naming the
// first token beyond the vocabulary. Ranks reading their own copies each read every token.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>

#include "core/check.h"
#include "core/rng.h"
#include "data/data_test_util.h"
#include "data/dataloader.h"
#include "dist/comm.h"

namespace sinklab {
namespace {

constexpr int kVocab = 50000;
// Five and a half of the loader's 65536-token chunks, in three uneven shards, so that each rank's slice spans
// several chunks and a shard boundary.
constexpr uint32_t kTokens = 360448;
constexpr uint32_t kShardEnds[] = {100000, 250000, kTokens};

class SharedCheck : public ::testing::Test {
protected:
    void SetUp() override {
        SplitMix64 rng(11);
        for (uint32_t i = 0; i < kTokens; i++) tokens_.push_back(uint32_t(rng.below(kVocab)));
        std::string folder = own_.path();  // every rank names rank 0's
        uint64_t n = folder.size();
        comm_.broadcast(&n, sizeof n, 0);
        folder.resize(n);
        comm_.broadcast(folder.data(), n, 0);
        shared_ = folder;
        if (comm_.rank() == 0) write(shared_, tokens_);
        comm_.barrier();
    }
    void TearDown() override { comm_.barrier(); }  // rank 0's folder stays until every rank is done with it

    static void write(const std::string& folder, const std::vector<uint32_t>& tokens) {
        uint32_t from = 0;
        for (size_t s = 0; s < std::size(kShardEnds); s++) {
            test::write_llmc_shard(folder + fmt::format("/train_{:06d}.bin", s),
                                   std::vector<uint32_t>(tokens.begin() + from, tokens.begin() + kShardEnds[s]), true);
            from = kShardEnds[s];
        }
    }
    static std::string glob(const std::string& folder) { return folder + "/train_*.bin"; }

    // The loader's error, or "" when it has none.
    static std::string error_of(const std::function<void()>& make) {
        try {
            make();
        } catch (const Error& e) {
            return e.what();
        }
        return "";
    }

    Communicator& comm_ = process_communicator();
    std::vector<uint32_t> tokens_;
    test::TempDir own_{"loader_mpi"};  // rank 0's holds the shards
    std::string shared_;
};

TEST_F(SharedCheck, EachTokenIsCheckedOnceAndTheChecksumIsOneReadersChecksum) {
    if (!std::filesystem::exists("/proc/sys/kernel/random/boot_id"))
        GTEST_SKIP() << "no boot id to tell the ranks of one kernel by: each rank checks every token";
    const DataLoader shared(glob(shared_), 1, 8, comm_, 1, true, kVocab);
    const DataLoader alone(glob(shared_), 1, 8, comm_.rank(), comm_.world(), 1, true, kVocab);
    EXPECT_EQ(alone.tokens_checked(), kTokens);
    EXPECT_EQ(shared.tokens(), kTokens);
    EXPECT_EQ(shared.fingerprint(), alone.fingerprint());
    EXPECT_GT(shared.tokens_checked(), 0);
    EXPECT_LT(shared.tokens_checked(), kTokens);
    double checked = double(shared.tokens_checked());
    comm_.all_reduce_sum(&checked, 1);
    EXPECT_EQ(checked, double(kTokens));
}

// Bad tokens in either rank's slice (rank 0 checks chunks 0-2, tokens below 196608), and in both (the first is
// named), as one reader names them, on every rank.
TEST_F(SharedCheck, TheFirstTokenBeyondTheVocabularyIsNamedWhicheverRankReadsIt) {
    const std::vector<std::vector<uint32_t>> cases = {{70000}, {kTokens - 5}, {kTokens - 5, 150000}};
    for (const std::vector<uint32_t>& bad : cases) {
        if (comm_.rank() == 0) {
            std::vector<uint32_t> tokens = tokens_;
            for (uint32_t at : bad) tokens[at] = kVocab + at % 7;
            write(shared_, tokens);
        }
        comm_.barrier();
        const std::string shared = error_of([&] { DataLoader(glob(shared_), 1, 8, comm_, 1, true, kVocab); });
        const std::string alone =
            error_of([&] { DataLoader(glob(shared_), 1, 8, comm_.rank(), comm_.world(), 1, true, kVocab); });
        EXPECT_NE(alone, "") << "bad token at " << bad.back();
        EXPECT_EQ(shared, alone) << "bad token at " << bad.back();
        comm_.barrier();
    }
}

TEST_F(SharedCheck, RanksWithTheirOwnCopiesEachCheckEveryToken) {
    const test::TempDir copy("loader_copy");
    write(copy.path(), tokens_);
    const DataLoader own(glob(copy.path()), 1, 8, comm_, 1, true, kVocab);
    EXPECT_EQ(own.tokens_checked(), kTokens);
    const DataLoader shared(glob(shared_), 1, 8, comm_, 1, true, kVocab);
    EXPECT_EQ(own.fingerprint(), shared.fingerprint());
}

// Rank 0 reads its own copy, the others share rank 0's folder: each group checks every token once (under mpiexec
// -n 2 rank 1 is a group of one; ctest's mpi.three_ranks makes it two).
TEST_F(SharedCheck, EachGroupOfRanksChecksEveryTokenOnce) {
    if (!std::filesystem::exists("/proc/sys/kernel/random/boot_id"))
        GTEST_SKIP() << "no boot id to tell the ranks of one kernel by: each rank checks every token";
    const test::TempDir copy("loader_group");
    if (comm_.rank() == 0) write(copy.path(), tokens_);
    const DataLoader loader(glob(comm_.rank() == 0 ? copy.path() : shared_), 1, 8, comm_, 1, true, kVocab);
    const DataLoader alone(glob(shared_), 1, 8, comm_.rank(), comm_.world(), 1, true, kVocab);
    EXPECT_EQ(loader.fingerprint(), alone.fingerprint());
    EXPECT_EQ(loader.tokens_checked() == kTokens, comm_.rank() == 0 || comm_.world() == 2);
    double checked = double(loader.tokens_checked());
    comm_.all_reduce_sum(&checked, 1);
    EXPECT_EQ(checked, 2.0 * kTokens);
}

}  // namespace
}  // namespace sinklab
