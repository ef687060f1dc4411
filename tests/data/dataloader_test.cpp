// DataLoader: windows are exact slices of the token stream, rank slices tile the global batch, the order is a
// function of the seed, an epoch visits every window once, position()/seek() resume exactly, validation is
// sequential and wraps around.
#include <map>
#include <set>

#include "core/check.h"
#include "core/rng.h"
#include "data/dataloader.h"
#include "data_test_util.h"
#include "test_util.h"

namespace sinklab {
namespace {

// Token i of the stream is i itself, so a window's first input says where it starts. Three shards of uneven size.
class LoaderTest : public ::testing::Test {
protected:
    static constexpr int kTokens = 3001, kVocab = 4000;
    void SetUp() override {
        const std::vector<int> sizes = {1000, 1234, kTokens - 2234};
        uint32_t next = 0;
        for (size_t s = 0; s < sizes.size(); ++s) {
            std::vector<uint32_t> t;
            for (int i = 0; i < sizes[s]; ++i) t.push_back(next++);
            test::write_llmc_shard(dir_ / fmt::format("train_{:06d}.bin", s), t, true);
        }
    }
    std::string glob() const { return dir_ / "train_*.bin"; }

    // The window starts of `steps` batches, checking on the way that every window is a slice of the stream.
    static std::vector<int> starts(DataLoader& loader, int B, int T, int steps) {
        std::vector<int> out;
        std::vector<int32_t> x(B * T), y(B * T);
        for (int s = 0; s < steps; ++s) {
            loader.next(x.data(), y.data());
            for (int b = 0; b < B; ++b) {
                for (int t = 0; t < T; ++t) {
                    EXPECT_EQ(x[b * T + t], x[b * T] + t);
                    EXPECT_EQ(y[b * T + t], x[b * T] + t + 1);  // targets: inputs shifted by one
                }
                out.push_back(x[b * T]);
            }
        }
        return out;
    }
    test::TempDir dir_;
};

TEST_F(LoaderTest, RankSlicesTileTheGlobalBatch) {
    const int B = 3, T = 16, world = 4, steps = 30;  // 30 steps of 12 windows cross an epoch end (186 windows)
    DataLoader whole(glob(), world * B, T, 0, 1, 42, true, kVocab);
    const std::vector<int> want = starts(whole, world * B, T, steps);
    std::vector<std::vector<int>> per_rank;
    for (int r = 0; r < world; ++r) {
        DataLoader part(glob(), B, T, r, world, 42, true, kVocab);
        per_rank.push_back(starts(part, B, T, steps));
    }
    for (int s = 0; s < steps; ++s) {
        std::vector<int> global;
        std::set<int> distinct;
        for (int r = 0; r < world; ++r)
            for (int b = 0; b < B; ++b) {
                global.push_back(per_rank[r][s * B + b]);
                distinct.insert(per_rank[r][s * B + b]);
            }
        EXPECT_EQ(distinct.size(), global.size()) << "ranks overlap at step " << s;
        EXPECT_EQ(global, std::vector<int>(want.begin() + s * world * B, want.begin() + (s + 1) * world * B));
    }
}

TEST_F(LoaderTest, EachEpochVisitsEveryWindowOnceAtOneOffset) {
    const int B = 2, T = 10;
    DataLoader loader(glob(), B, T, 0, 1, 7, true, kVocab);
    const int W = loader.windows_per_epoch();
    EXPECT_EQ(W, kTokens / T - 1);
    std::set<int> offsets;
    std::vector<std::vector<int>> orders;
    for (int epoch = 0; epoch < 4; ++epoch) {
        const std::vector<int> s = starts(loader, B, T, W / B);
        EXPECT_EQ(loader.position().epoch, static_cast<uint64_t>(epoch));
        const int offset = s[0] % T;
        offsets.insert(offset);
        std::set<int> windows;
        for (int start : s) {
            EXPECT_EQ(start % T, offset);
            EXPECT_LE(start + T + 1, kTokens);
            windows.insert(start / T);
        }
        EXPECT_EQ(static_cast<int>(windows.size()), W / B * B);  // all distinct; the last partial batch is skipped
        orders.push_back(s);
    }
    EXPECT_GT(offsets.size(), 1u) << "the offset should change between epochs";
    EXPECT_NE(orders[0], orders[1]);
    std::vector<int> sorted = orders[0];
    std::sort(sorted.begin(), sorted.end());
    EXPECT_NE(sorted, orders[0]) << "windows should be shuffled";
}

// Windows that fill whole batches exactly (299 = 23 x 13): each epoch reads all of them, its last batch included,
// before the next begins.
TEST_F(LoaderTest, AnEpochOfWholeBatchesReadsItsLastBatch) {
    const int B = 13, T = 10;
    DataLoader loader(glob(), B, T, 0, 1, 7, true, kVocab);
    const int W = loader.windows_per_epoch();
    ASSERT_EQ(W % B, 0);
    for (int epoch = 0; epoch < 3; ++epoch) {
        const std::vector<int> s = starts(loader, B, T, W / B);
        EXPECT_EQ(loader.position().epoch, static_cast<uint64_t>(epoch));
        std::set<int> windows;
        for (int start : s) windows.insert(start / T);
        EXPECT_EQ(static_cast<int>(windows.size()), W) << "epoch " << epoch;
    }
}

// The shuffle draws every order of the windows alike (Fisher-Yates), and a uniform order leaves one window in its own
// place per epoch on average. An off-by-one in the swap's range (Sattolo's shuffle, which draws only the orders that
// are one cycle) never leaves one.
TEST_F(LoaderTest, TheShuffleLeavesWindowsInPlaceAsAUniformOrderDoes) {
    const int B = 13, T = 10, epochs = 40;
    DataLoader loader(glob(), B, T, 0, 1, 11, true, kVocab);
    const int W = loader.windows_per_epoch();
    int in_place = 0;
    for (int epoch = 0; epoch < epochs; ++epoch) {
        const std::vector<int> s = starts(loader, B, T, W / B);
        for (int k = 0; k < W; ++k) in_place += s[k] / T == k;
    }
    // Poisson(40): sd 6.3.
    EXPECT_GT(in_place, 15) << "windows read in their own place in " << epochs << " epochs";
    EXPECT_LT(in_place, 70) << "windows read in their own place in " << epochs << " epochs";
}

TEST_F(LoaderTest, SeedFixesTheOrder) {
    const int B = 4, T = 8, steps = 50;
    DataLoader a(glob(), B, T, 0, 1, 1, true, kVocab), b(glob(), B, T, 0, 1, 1, true, kVocab),
        c(glob(), B, T, 0, 1, 2, true, kVocab);
    const std::vector<int> sa = starts(a, B, T, steps), sb = starts(b, B, T, steps), sc = starts(c, B, T, steps);
    EXPECT_EQ(sa, sb);
    EXPECT_NE(sa, sc);
}

TEST_F(LoaderTest, SeekResumesExactly) {
    const int B = 5, T = 12;
    for (const int before : {0, 3, 48, 49, 50, 97}) {  // 49 * 5 = 245 of 249 windows: across epoch ends
        DataLoader first(glob(), B, T, 1, 2, 99, true, kVocab);
        starts(first, B, T, before);
        const LoaderPosition p = first.position();
        const std::vector<int> want = starts(first, B, T, 20);
        DataLoader second(glob(), B, T, 1, 2, 99, true, kVocab);
        starts(second, B, T, 7);  // elsewhere first: seek must not depend on the history
        second.seek(p);
        EXPECT_EQ(starts(second, B, T, 20), want) << "after " << before;
    }
    DataLoader loader(glob(), B, T, 0, 1, 0, true, kVocab);
    EXPECT_THROW(loader.seek({0, 1000000}), Error);
}

// Validation's micro-batch g is windows [g B, g B + B) in stream order, on any rank of any number, so that validation
// reads the same windows whatever the ranks; its data needs one micro-batch, not one per rank. Only validation's
// loader has such batches, and training's only next().
TEST_F(LoaderTest, ValidationBatchesAreTheSameWindowsOnEveryRank) {
    const int B = 3, T = 100;  // 30 windows: 10 batches of 3
    std::vector<int32_t> x(B * T), y(B * T);
    for (int world : {1, 2, 3, 11})  // 11 ranks x 3 > 30 windows: still one micro-batch
        for (int rank = 0; rank < world; ++rank) {
            DataLoader val(glob(), B, T, rank, world, 5, false, kVocab);
            EXPECT_EQ(val.windows_per_epoch(), (kTokens - 1) / T);
            for (int g : {7, 0, 9, 4}) {
                val.batch_at(g, x.data(), y.data());
                for (int b = 0; b < B; ++b)
                    for (int t = 0; t < T; ++t) {
                        ASSERT_EQ(x[b * T + t], (g * B + b) * T + t) << "world " << world << " rank " << rank;
                        ASSERT_EQ(y[b * T + t], (g * B + b) * T + t + 1);
                    }
            }
            EXPECT_THROW(val.batch_at(10, x.data(), y.data()), Error);
            EXPECT_THROW(val.next(x.data(), y.data()), Error);
        }
    EXPECT_THROW(DataLoader(glob(), 31, T, 0, 1, 5, false, kVocab), Error);  // 30 windows < one micro-batch
    DataLoader shuffled(glob(), B, T, 0, 1, 5, true, kVocab);
    EXPECT_THROW(shuffled.batch_at(0, x.data(), y.data()), Error);
}

TEST_F(LoaderTest, TooLittleDataForOneBatchIsAnError) {
    try {
        DataLoader loader(glob(), 8, 512, 0, 1, 0, true, kVocab);  // 4 windows < 8
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(fmt::format("{} windows of T+1=513 tokens (training's start at a random "
                                                         "offset below T: {} / 512 - 1), fewer than one global batch",
                                                         kTokens / 512 - 1, kTokens)),
                  std::string::npos)
            << e.what();
    }
    EXPECT_THROW(DataLoader(glob(), 1, 8, 2, 2, 0, true, kVocab), Error);  // rank out of range
    EXPECT_THROW(DataLoader(glob(), 1, 8, 0, 1, 0, true, 100), Error);     // tokens beyond the vocabulary
}

// A path that names the shards' folder, or a glob that catches a folder beside the shards, says so and how to match
// the shards only.
TEST_F(LoaderTest, AFolderIsNoShard) {
    std::filesystem::create_directories(dir_ / "sub");
    const std::string named = dir_.path(), slash = named + "/";
    for (const auto& [pattern, folder] :
         {std::pair{named, named}, std::pair{slash, slash}, std::pair{dir_ / "*", dir_ / "sub"}})
        EXPECT_EQ(test::error_of([&] { DataLoader(pattern, 1, 8, 0, 1, 0, true, kVocab); }),
                  fmt::format("'{}' matches {}, a folder, not a token shard; give a glob that matches shard files "
                              "only (such as '{}')",
                              pattern, folder, dir_ / "*.bin"));
}

}  // namespace
}  // namespace sinklab
