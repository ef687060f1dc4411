// Small core helpers: tensor views, shapes in messages, the median, SI-prefixed counts.
#include <gtest/gtest.h>

#include <vector>

#include "core/median.h"
#include "core/si.h"
#include "core/tensor.h"

namespace sinklab {
namespace {

TEST(Tensor, ViewKeepsElements) {
    Tensor t(nullptr, DType::F32, {2, 3, 4});
    EXPECT_EQ(t.view({6, 4}).numel(), 24);
    EXPECT_THROW(t.view({5, 5}), Error);
}

TEST(Tensor, ShapesReadAlikeFromTensorsAndLists) {
    EXPECT_EQ(Tensor(nullptr, DType::F32, {2, 3, 4}).shape_str(), "[2, 3, 4]");
    EXPECT_EQ(shape_str(std::vector<int64_t>{7}), "[7]");
    EXPECT_EQ(shape_str(std::vector<int64_t>{}), "[]");
}

TEST(Median, MiddleValueOrMeanOfTheTwoMiddleOnes) {
    EXPECT_EQ(median({5, 1, 3}), 3);
    EXPECT_EQ(median({4, 1, 3, 2}), 2.5);
    EXPECT_EQ(median({-1}), -1);
    EXPECT_EQ(median({2, 2, 9, 9}), 5.5);
    EXPECT_THROW(median({}), Error);
}

TEST(Si, PrefixesCountsAndRates) {
    EXPECT_EQ(si(1234567), "1.23M");
    EXPECT_EQ(si(2.5e9), "2.5G");
    EXPECT_EQ(si(999), "999");
    EXPECT_EQ(si(-2500), "-2.5k");
    EXPECT_EQ(si(11600), "11.6k");
    EXPECT_EQ(si(3000), "3k");
    EXPECT_EQ(si(999700), "1M");  // rounded up into the next prefix
    EXPECT_EQ(si(999.7), "1k");
    EXPECT_EQ(si(999.4), "999");
    EXPECT_EQ(si(0), "0");
}

}  // namespace
}  // namespace sinklab
