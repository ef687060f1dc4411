#include <gtest/gtest.h>
#include "core/tensor.h"
TEST(Tensor, ViewKeepsElements) {
    sinklab::Tensor t(nullptr, sinklab::DType::F32, {2, 3, 4});
    EXPECT_EQ(t.view({6, 4}).numel(), 24);
    EXPECT_THROW(t.view({5, 5}), sinklab::Error);
}
