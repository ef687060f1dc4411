// Checksum64: the value depends on the bytes only (not on how update() calls split them), and any single
// flipped bit or extra byte changes it.
#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "core/checksum.h"

namespace sinklab {
namespace {

std::vector<unsigned char> bytes(size_t n) {
    std::vector<unsigned char> b(n);
    for (size_t i = 0; i < n; i++) b[i] = static_cast<unsigned char>(i * 131 + 7);
    return b;
}

TEST(Checksum64, SplitDoesNotMatter) {
    const auto b = bytes(1000);
    const uint64_t whole = checksum64(b.data(), b.size());
    for (size_t piece : {1, 3, 7, 31, 32, 33, 64, 999}) {
        Checksum64 c;
        for (size_t at = 0; at < b.size(); at += piece) c.update(b.data() + at, std::min(piece, b.size() - at));
        EXPECT_EQ(c.digest(), whole) << "pieces of " << piece;
    }
}

TEST(Checksum64, EveryBitAndLengthCounts) {
    auto b = bytes(100);
    std::set<uint64_t> seen{checksum64(b.data(), b.size())};
    for (size_t i = 0; i < b.size(); i++)
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= static_cast<unsigned char>(1 << bit);
            EXPECT_TRUE(seen.insert(checksum64(b.data(), b.size())).second) << "byte " << i << " bit " << bit;
            b[i] ^= static_cast<unsigned char>(1 << bit);
        }
    const std::vector<unsigned char> zeros(80, 0);
    std::set<uint64_t> lengths;
    for (size_t n = 0; n <= zeros.size(); n++) EXPECT_TRUE(lengths.insert(checksum64(zeros.data(), n)).second) << n;
}

}  // namespace
}  // namespace sinklab
