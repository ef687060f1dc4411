// How the ranks of a run pick their GPUs and agree on their backend (train/run_backend.h), under `mpiexec -n 2` and
// `-n 3` on one machine (ctest mpi.two_ranks, mpi.three_ranks). The GPUs a rank sees are given as made-up numbers:
// what visible_gpus() would say on machines where ranks see all, one socket's or only their own GPUs.
#include <gtest/gtest.h>

#include <string>

#include "dist/comm.h"
#include "test_util.h"
#include "train/run_backend.h"

namespace sinklab {
namespace {

TEST(RunBackend, GpuSlotIsTheLocalRankWhereEveryRankSeesTheSameGpus) {
    Communicator& c = process_communicator();
    EXPECT_EQ(gpu_slot(c, 42), c.local_rank());
}

TEST(RunBackend, GpuSlotIsZeroWhereEachRankSeesOnlyItsOwnGpu) {
    Communicator& c = process_communicator();
    EXPECT_EQ(gpu_slot(c, 100 + uint64_t(c.rank())), 0);
}

// Two sockets' GPUs, the ranks placed on them in turn (Slurm's default cyclic distribution over sockets): ranks 0, 2,
// 4, ... see one set, 1, 3, 5, ... the other, and each takes its place in its own set.
TEST(RunBackend, GpuSlotCountsOnlyTheRanksThatSeeTheSameGpus) {
    Communicator& c = process_communicator();
    EXPECT_EQ(gpu_slot(c, 7 + uint64_t(c.rank() % 2)), c.rank() / 2);
}

TEST(RunBackend, RanksMustMakeTheSameBackend) {
    Communicator& c = process_communicator();
    EXPECT_NO_THROW(require_same_backend(c, "cuda (bf16)"));
    const std::string error =
        test::error_of([&] { require_same_backend(c, c.rank() == 1 ? "cpu (f32)" : "cuda (bf16)"); });
    EXPECT_NE(error.find("rank(s) 1 made another backend than rank 0's cuda (bf16)"), std::string::npos) << error;
    EXPECT_NE(error.find("backend: cpu"), std::string::npos) << error;
}

}  // namespace
}  // namespace sinklab
