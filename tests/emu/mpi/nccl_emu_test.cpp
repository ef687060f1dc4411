// The NCCL communicator (src/dist/nccl_comm_nccl.cu) on two ranks of emulated GPUs: the CUDA backend on the CPU
// emulator, NCCL's calls carried out over MPI (nccl_mpi.cpp). Run by ctest under `mpiexec -n 2` (emu.nccl_two_ranks);
// no GPU, or pair of them, has run this code. Every collective is checked against values each rank computes on its
// own, and ZeRO-1 (train.shard_optimizer) on the emulated GPUs against the unsharded optimizer, bit for bit.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cuda/cuda_under_test.h"
#include "dist/comm.h"
#include "emu.h"
#include "model/model_fixture.h"
#include "test_util.h"
#include "train/optimizer.h"

namespace sinklab {

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host);  // dist/nccl_comm_nccl.cu

namespace {

struct Ranks {
    std::unique_ptr<Backend> gpu;
    std::unique_ptr<Communicator> nccl;
};

// One emulated GPU per rank in the given precision, and the NCCL communicator over the process's MPI one.
Ranks& ranks(DType compute) {
    static std::map<DType, Ranks> r;
    Ranks& x = r[compute];
    if (!x.gpu) {
        BackendOptions opt;
        opt.cuda_compute = compute;
        x.gpu = test::make_cuda_under_test(opt);
        x.nccl = make_nccl_communicator(process_communicator());
    }
    return x;
}

// How many elements of `got` differ from want(i). Counted, not asserted one by one: a rank that left a test early
// would leave the other waiting in its next collective until the test's timeout.
template <typename V, typename F> int64_t mismatches(const std::vector<V>& got, F want) {
    int64_t n = 0;
    for (size_t i = 0; i < got.size(); i++) n += got[i] != V(want(int64_t(i)));
    return n;
}

TEST(NcclCommunicator, IsMadeOverTheMpiOne) {
    Communicator& c = *ranks(DType::F32).nccl;
    EXPECT_EQ(c.name(), "nccl");
    ASSERT_EQ(c.world(), 2);
    EXPECT_EQ(c.rank(), process_communicator().rank());
}

// Two ranks on one GPU, which real NCCL refuses with "invalid usage" alone (the emulated one would run them): the
// communicator names the ranks instead, on both, and says what to do.
TEST(NcclCommunicator, RefusesRanksThatShareAGpu) {
    ranks(DType::F32);  // a backend has made its GPU current, as before any communicator
    emu::set_device_shared(true);
    const std::string error = test::error_of([] { make_nccl_communicator(process_communicator()); });
    emu::set_device_shared(false);
    EXPECT_NE(error.find("ranks 0 and 1 share one GPU"), std::string::npos) << error;
    EXPECT_NE(error.find("CUDA_VISIBLE_DEVICES"), std::string::npos) << error;
}

// Rank r holds (2 r + 1) (i + 1): the mean is 2 (i + 1), exact in f32 and, for i < 128, in bf16.
TEST(NcclCommunicator, AllReduceMeanOfDeviceBuffers) {
    for (DType dt : {DType::F32, DType::BF16}) {
        Ranks& r = ranks(dt);
        const int64_t n = 128;
        Tensor t(r.gpu->alloc(size_t(n) * dtype_size(dt)), dt, {n});
        std::vector<double> host(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; i++) host[size_t(i)] = double((2 * r.nccl->rank() + 1) * (i + 1));
        r.gpu->write(t, host.data(), DType::F64);
        r.nccl->all_reduce_mean(*r.gpu, t);
        r.gpu->read(host.data(), DType::F64, t);
        EXPECT_EQ(mismatches(host, [](int64_t i) { return 2 * (i + 1); }), 0) << dtype_name(dt);
        r.gpu->release(t.data);
    }
}

// NCCL's collectives run on a stream of their own: each must wait for the work the backend has queued on its stream
// (here a scale, still queued on the emulated GPU until someone waits) and finish before the backend's next work.
TEST(NcclCommunicator, CollectivesWaitForTheBackendsQueuedWork) {
    Ranks& r = ranks(DType::F32);
    const int me = r.nccl->rank();
    const int64_t n = 40;
    Tensor t(r.gpu->alloc(size_t(n) * 4), DType::F32, {n});
    std::vector<float> host(size_t(n), 1.f);
    const auto collective_of_scaled = [&](const std::function<void()>& collective) {
        std::fill(host.begin(), host.end(), 1.f);
        r.gpu->write(t, host.data(), DType::F32);
        r.gpu->scale(t, float(me + 2));
        collective();
        r.gpu->scale(t, 10.f);
        r.gpu->read(host.data(), DType::F32, t);
    };
    collective_of_scaled([&] { r.nccl->all_reduce_mean(*r.gpu, t); });
    EXPECT_EQ(mismatches(host, [](int64_t) { return 25.f; }), 0) << "all-reduce";
    collective_of_scaled([&] { r.nccl->broadcast(*r.gpu, t, 1); });
    EXPECT_EQ(mismatches(host, [](int64_t) { return 30.f; }), 0) << "broadcast";
    collective_of_scaled([&] { r.nccl->all_gather(*r.gpu, t, {0, 15, n}); });
    EXPECT_EQ(mismatches(host, [](int64_t i) { return i < 15 ? 20.f : 30.f; }), 0) << "all-gather";
    r.gpu->release(t.data);
}

// Built without NCCL, a CUDA run's collectives are the MPI communicator's, which stages device buffers through the
// host: its one staging buffer, kept between calls, must serve each size it meets, the smaller after the larger too.
TEST(MpiCommunicator, StagesDeviceBuffersThroughTheHost) {
    Ranks& r = ranks(DType::F32);
    Communicator& mpi = process_communicator();
    ASSERT_EQ(mpi.name(), "mpi");
    for (int64_t n : {300, 64, 500}) {
        Tensor t(r.gpu->alloc(size_t(n) * 4), DType::F32, {n});
        std::vector<float> host(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; i++) host[size_t(i)] = float((2 * mpi.rank() + 1) * (i + 1));
        r.gpu->write(t, host.data(), DType::F32);
        mpi.all_reduce_mean(*r.gpu, t);
        r.gpu->read(host.data(), DType::F32, t);
        EXPECT_EQ(mismatches(host, [](int64_t i) { return 2 * (i + 1); }), 0) << n;
        r.gpu->release(t.data);
    }
}

TEST(NcclCommunicator, BroadcastsFromEitherRoot) {
    Ranks& r = ranks(DType::F32);
    for (int root : {0, 1}) {
        Tensor t(r.gpu->alloc(64 * 4), DType::F32, {64});
        std::vector<float> host(64, float(r.nccl->rank() + 1));
        r.gpu->write(t, host.data(), DType::F32);
        r.nccl->broadcast(*r.gpu, t, root);
        r.gpu->read(host.data(), DType::F32, t);
        EXPECT_EQ(mismatches(host, [root](int64_t) { return root + 1; }), 0) << "root " << root;
        r.gpu->release(t.data);
    }
}

// Uneven shards (rank 0 holds 3 elements, rank 1 the other 130), gathered by one grouped broadcast per shard; the
// values (i % 100 + 0.5) are exact in bf16.
TEST(NcclCommunicator, AllGathersUnevenShards) {
    for (DType dt : {DType::F32, DType::BF16}) {
        Ranks& r = ranks(dt);
        const int64_t n = 133;
        const std::vector<int64_t> bounds = {0, 3, n};
        Tensor t(r.gpu->alloc(size_t(n) * dtype_size(dt)), dt, {n});
        std::vector<double> host(size_t(n), -1.0);  // what a rank does not own is stale
        const int me = r.nccl->rank();
        for (int64_t i = bounds[size_t(me)]; i < bounds[size_t(me) + 1]; i++) host[size_t(i)] = double(i % 100) + 0.5;
        r.gpu->write(t, host.data(), DType::F64);
        r.nccl->all_gather(*r.gpu, t, bounds);
        r.gpu->read(host.data(), DType::F64, t);
        EXPECT_EQ(mismatches(host, [](int64_t i) { return double(i % 100) + 0.5; }), 0) << dtype_name(dt);
        r.gpu->release(t.data);
    }
}

// ZeRO-1 on the emulated GPUs: three steps with the moments sharded over the NCCL communicator leave the same weights
// (the compute copy and, in bf16, the f32 master copy) as three unsharded steps, bit for bit; in bf16 with stochastic
// rounding too, whose random stream follows the element's place in the flat buffer, not the shard.
TEST(NcclCommunicator, ShardedAdamWOnGpusMatchesTheWholeOne) {
    for (DType dt : {DType::F32, DType::BF16}) {
        SCOPED_TRACE(dtype_name(dt));
        Ranks& r = ranks(dt);
        Config cfg = test::tiny_config("standard");
        cfg.train.shard_optimizer = true;
        cfg.precision.compute = dt == DType::BF16 ? "bf16" : "fp32";
        cfg.precision.rounding = dt == DType::BF16 ? "stochastic" : "nearest";
        const int B = 2, T = cfg.model.seq_len;
        Model sharded_model(*r.gpu, cfg, B, T), whole_model(*r.gpu, cfg, B, T);
        sharded_model.init(cfg.run.seed);
        whole_model.init(cfg.run.seed);
        AdamW sharded(sharded_model, cfg.train, cfg.precision, cfg.run.seed, r.nccl.get());
        AdamW whole(whole_model, cfg.train, cfg.precision, cfg.run.seed);
        ASSERT_TRUE(sharded.sharded());
        for (int step = 0; step < 3; step++) {
            // Both ranks see the same batch, so the mean gradient is each rank's own.
            const test::Batch batch = test::random_batch(cfg, B, T, 40 + uint64_t(step));
            for (Model* m : {&sharded_model, &whole_model}) {
                m->zero_grad();
                m->forward(batch.inputs.data(), batch.targets.data(), 1.f / float(B * T));
                m->backward();
            }
            r.nccl->all_reduce_mean(*r.gpu, sharded_model.grads());
            sharded.step(1e-2, 1.0);
            whole.step(1e-2, 1.0);
        }
        EXPECT_EQ(test::read_all(*r.gpu, sharded_model.truth()), test::read_all(*r.gpu, whole_model.truth()));
        EXPECT_EQ(test::read_all(*r.gpu, sharded_model.weights()), test::read_all(*r.gpu, whole_model.weights()));
    }
}

}  // namespace
}  // namespace sinklab
