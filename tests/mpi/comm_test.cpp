// The MPI communicator, run by ctest under `mpiexec -n 2` (test mpi.two_ranks): every collective against
// values each rank can compute on its own. Both ranks run every test; the job fails if either rank fails.
#include <gtest/gtest.h>

#include <numeric>

#include "backend/backend.h"
#include "dist/comm.h"

namespace sinklab {
namespace {

TEST(MpiCommunicator, IsTheProcessCommunicatorUnderMpiexec) {
    Communicator& c = process_communicator();
    EXPECT_EQ(c.name(), "mpi");
    ASSERT_EQ(c.world(), 2);
    EXPECT_EQ(c.local_size(), 2);  // one node
    EXPECT_EQ(c.local_rank(), c.rank());
    EXPECT_GE(default_threads_per_rank(c), 1);
}

TEST(MpiCommunicator, AllReduceMeanOfBackendBuffers) {
    Communicator& c = process_communicator();
    auto be = make_cpu_backend(DType::F32, 1);
    const int64_t n = 1000;
    Tensor t(be->alloc(size_t(n) * 4), DType::F32, {n});
    std::vector<float> host(n);
    for (int64_t i = 0; i < n; i++) host[i] = float(c.rank() * 1000 + i);
    be->write(t, host.data(), DType::F32);
    c.all_reduce_mean(*be, t);
    be->read(host.data(), DType::F32, t);
    for (int64_t i = 0; i < n; i++) ASSERT_EQ(host[i], float(500 + i)) << i;  // (i + (1000 + i)) / 2, exact
    be->release(t.data);
}

TEST(MpiCommunicator, BroadcastsFromEitherRoot) {
    Communicator& c = process_communicator();
    auto be = make_cpu_backend(DType::F32, 1);
    Tensor t(be->alloc(64 * 4), DType::F32, {64});
    std::vector<float> host(64, float(c.rank() + 1));
    be->write(t, host.data(), DType::F32);
    c.broadcast(*be, t, 1);
    be->read(host.data(), DType::F32, t);
    for (float v : host) ASSERT_EQ(v, 2.f);
    be->release(t.data);

    std::string text = c.rank() == 0 ? "from rank zero" : std::string(14, '?');
    c.broadcast(text.data(), text.size(), 0);
    EXPECT_EQ(text, "from rank zero");
}

TEST(MpiCommunicator, SumsAndComparesHostValues) {
    Communicator& c = process_communicator();
    double v[3] = {1.0, double(c.rank()), 0.5 * c.rank()};
    c.all_reduce_sum(v, 3);
    EXPECT_EQ(v[0], 2.0);
    EXPECT_EQ(v[1], 1.0);
    EXPECT_EQ(v[2], 0.5);
    EXPECT_TRUE(ranks_differing_from_root(c, 42).empty());
    EXPECT_EQ(ranks_differing_from_root(c, c.rank() == 1 ? 7 : 5), std::vector<int>{1});
    c.barrier();
}

}  // namespace
}  // namespace sinklab

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
    sinklab::process_communicator();  // MPI_Init before any test
    return RUN_ALL_TESTS();
}
