// The MPI communicator, run by ctest under `mpiexec -n 2` (test mpi.two_ranks): every collective against
// values each rank can compute on its own. Both ranks run every test; the job fails if either rank fails.
#include <gtest/gtest.h>

#include <numeric>

#include "backend/backend.h"
#include "dist/comm.h"
#include "model/model_fixture.h"
#include "train/optimizer.h"

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

// Uneven shards (rank 0 holds 3 elements, rank 1 the other 130), in both CPU dtypes.
TEST(MpiCommunicator, AllGathersShardsOfBackendBuffers) {
    Communicator& c = process_communicator();
    for (DType dt : {DType::F32, DType::F64}) {
        auto be = make_cpu_backend(dt, 1);
        const int64_t n = 133;
        const std::vector<int64_t> bounds = {0, 3, n};
        Tensor t(be->alloc(size_t(n) * dtype_size(dt)), dt, {n});
        std::vector<double> host(n, -1.0);  // what a rank does not own is stale
        for (int64_t i = bounds[size_t(c.rank())]; i < bounds[size_t(c.rank()) + 1]; i++) host[i] = double(i) + 0.5;
        be->write(t, host.data(), DType::F64);
        c.all_gather(*be, t, bounds);
        be->read(host.data(), DType::F64, t);
        for (int64_t i = 0; i < n; i++) ASSERT_EQ(host[i], double(i) + 0.5) << i;
        be->release(t.data);
    }
}

// ZeRO-1: each rank's AdamW holds the moments of its shard only, and sinklab info's estimate for 2 ranks says so.
TEST(MpiCommunicator, ShardedAdamWHoldsItsShardOfTheMoments) {
    Communicator& c = process_communicator();
    Config cfg = test::tiny_config("standard");
    cfg.train.shard_optimizer = true;
    const int B = 2, T = cfg.model.seq_len;
    auto be = make_cpu_backend(DType::F32, 1);
    Model model(*be, cfg, B, T);
    const size_t before = be->memory_in_use();
    be->reset_peak_memory();
    {
        AdamW sharded(model, cfg.train, cfg.precision, cfg.run.seed, &c);
        EXPECT_TRUE(sharded.sharded());
        const std::vector<int64_t> bounds = shard_bounds(model.table().total(), 2);
        const int64_t mine = bounds[size_t(c.rank()) + 1] - bounds[size_t(c.rank())];
        EXPECT_EQ(be->memory_in_use() - before, size_t(2 * mine) * 4);
        // A checkpoint's whole moments are gathered in host memory, not in the backend's.
        const auto whole = sharded.gather_moments();
        EXPECT_TRUE(whole->on_host());
        EXPECT_EQ(whole->m.numel(), model.table().total());
        EXPECT_EQ(be->peak_memory() - before, size_t(2 * mine) * 4);
        if (c.rank() == 0) {  // the larger shard
            EXPECT_EQ(model_footprint(cfg, B, T, DType::F32, 2).moments, size_t(2 * mine) * 4);
        }
    }
    AdamW whole(model, cfg.train, cfg.precision, cfg.run.seed);
    EXPECT_FALSE(whole.sharded());
    EXPECT_EQ(be->memory_in_use() - before, size_t(2 * model.table().total()) * 4);
}

}  // namespace
}  // namespace sinklab
