// shard_bounds: the sharded optimizer's split of the flat parameter buffer, against its contract on many sizes.
#include <gtest/gtest.h>

#include "model/params.h"

namespace sinklab {
namespace {

TEST(ShardBounds, CoverTheBufferInAlignedNearlyEvenPieces) {
    for (int64_t n : {0, 1, 63, 64, 65, 1000, 4096, 887'432, 152'000'017}) {
        for (int ranks : {1, 2, 3, 7, 8}) {
            SCOPED_TRACE(testing::Message() << "n " << n << ", ranks " << ranks);
            const std::vector<int64_t> b = shard_bounds(n, ranks);
            ASSERT_EQ(b.size(), size_t(ranks) + 1);
            EXPECT_EQ(b.front(), 0);
            EXPECT_EQ(b.back(), n);
            for (int r = 0; r < ranks; r++) {
                EXPECT_LE(b[size_t(r)], b[size_t(r) + 1]);
                if (r > 0 && b[size_t(r)] < n) {
                    EXPECT_EQ(b[size_t(r)] % 64, 0);
                }
                // No shard more than 64 elements above an even split.
                EXPECT_LE(b[size_t(r) + 1] - b[size_t(r)], (n + ranks - 1) / ranks + 64);
            }
        }
    }
}

}  // namespace
}  // namespace sinklab
