// gpu_set_id: which GPUs a rank sees, as one number for gpu_slot to compare across ranks (src/train/run_backend.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <vector>

#include "backend/backend.h"

namespace sinklab {
namespace {

using Uuid = std::array<unsigned char, 16>;

Uuid uuid(unsigned char first, unsigned char last) {
    Uuid u{};
    u.front() = first, u.back() = last;
    return u;
}

// Ranks on one machine may list its GPUs in different orders (CUDA_DEVICE_ORDER, CUDA_VISIBLE_DEVICES=3,2,1,0):
// every order of one set is one id, so gpu_slot still counts them as ranks sharing those GPUs.
TEST(GpuSetId, EveryOrderOfOneSetIsOneId) {
    std::vector<Uuid> gpus = {uuid(1, 9), uuid(2, 1), uuid(1, 8), uuid(200, 0)};
    std::sort(gpus.begin(), gpus.end());
    const uint64_t id = gpu_set_id(gpus);
    EXPECT_NE(id, 0u);
    int orders = 0;
    do {
        EXPECT_EQ(gpu_set_id(gpus), id) << "order " << orders;
        orders++;
    } while (std::next_permutation(gpus.begin(), gpus.end()));
    EXPECT_EQ(orders, 24);
}

TEST(GpuSetId, OtherSetsAreOtherIds) {
    const std::vector<Uuid> machine = {uuid(1, 1), uuid(1, 2), uuid(1, 3), uuid(1, 4)};
    const uint64_t id = gpu_set_id(machine);
    EXPECT_NE(gpu_set_id({machine[0], machine[1]}), id) << "one socket's GPUs";
    EXPECT_NE(gpu_set_id({machine[0], machine[1]}), gpu_set_id({machine[2], machine[3]})) << "the other socket's";
    EXPECT_NE(gpu_set_id({machine[0]}), gpu_set_id({machine[1]})) << "a GPU per rank";
    EXPECT_NE(gpu_set_id({uuid(2, 1), uuid(2, 2), uuid(2, 3), uuid(2, 4)}), id) << "another machine";
    EXPECT_EQ(gpu_set_id({}), 0u) << "no GPU";
}

}  // namespace
}  // namespace sinklab
