// The NCCL communicator: gradient all-reduce and weight broadcast directly on GPU buffers, one GPU per rank.
// It is made from the process's MPI communicator, which broadcasts NCCL's unique id from rank 0 and keeps
// every host collective (losses, metrics, stop flags, aborts).
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "dist/comm.h"
#include "kernels/cuda/common.cuh"

#define NCCL_CHECK(call)                                                                                       \
    do {                                                                                                       \
        ncclResult_t r_ = (call);                                                                              \
        if (r_ != ncclSuccess)                                                                                 \
            ::sinklab::fail("NCCL error at {}:{}: {} ({}); check that every rank sees its GPU and that the "    \
                            "nodes can reach each other (NCCL_DEBUG=INFO says more)",                          \
                            __FILE__, __LINE__, ncclGetErrorString(r_), #call);                                \
    } while (0)

namespace sinklab {

namespace {

ncclDataType_t nccl_type(DType t) {
    switch (t) {
        case DType::F32: return ncclFloat32;
        case DType::BF16: return ncclBfloat16;
        case DType::F64: return ncclFloat64;
        case DType::I32: return ncclInt32;
    }
    return ncclFloat32;
}

// NCCL runs one rank per GPU; asked to put two on one, it fails with "invalid usage" and nothing more. The backend
// takes the local rank modulo the GPUs it sees, so a node with more ranks than GPUs has ranks sharing one: every rank
// compares the UUIDs of all ranks' GPUs and names the first pair, before NCCL starts.
void require_a_gpu_each(Communicator& host) {
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    const int world = host.world();
    std::vector<uint64_t> uuids(2 * size_t(world));  // [world][2]: each rank's GPU UUID, 16 bytes
    static_assert(sizeof prop.uuid.bytes == 2 * sizeof(uint64_t));
    std::memcpy(&uuids[2 * size_t(host.rank())], prop.uuid.bytes, sizeof prop.uuid.bytes);
    std::vector<int64_t> bounds(size_t(world) + 1);
    for (int r = 0; r <= world; r++) bounds[size_t(r)] = 2 * int64_t(r);
    host.all_gather(uuids.data(), sizeof(uint64_t), bounds);
    std::map<std::pair<uint64_t, uint64_t>, int> first_rank;
    for (int r = 0; r < world; r++) {
        const auto [at, fresh] = first_rank.emplace(std::pair{uuids[2 * size_t(r)], uuids[2 * size_t(r) + 1]}, r);
        if (!fresh)
            fail("ranks {} and {} share one GPU, and NCCL needs a GPU for each rank: start at most as many ranks on a "
                 "node as it has GPUs (mpirun -np, Slurm's --ntasks-per-node), or give each rank its own "
                 "(CUDA_VISIBLE_DEVICES)",
                 at->second, r);
    }
}

class NcclCommunicator final : public Communicator {
public:
    explicit NcclCommunicator(Communicator& host) : host_(host) {
        ncclUniqueId id{};
        if (host_.rank() == 0) NCCL_CHECK(ncclGetUniqueId(&id));
        host_.broadcast(&id, sizeof id, 0);
        // The backend has already made this rank's GPU current on this thread.
        require_a_gpu_each(host_);
        NCCL_CHECK(ncclCommInitRank(&comm_, host_.world(), id, host_.rank()));  // first: where a start fails
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    }
    // Finalize, then destroy, as NCCL recommends: the first completes what is in flight with the other ranks, the
    // second (which waits for the node's other ranks) frees this one's resources. Made once per process and destroyed
    // at exit, before MPI is finalized (comm.cpp: device_communicator).
    ~NcclCommunicator() override {
        ncclCommFinalize(comm_);
        ncclCommDestroy(comm_);
        cudaStreamDestroy(stream_);
    }

    std::string name() const override { return "nccl"; }
    int rank() const override { return host_.rank(); }
    int world() const override { return host_.world(); }
    int local_rank() const override { return host_.local_rank(); }
    int local_size() const override { return host_.local_size(); }

    // The backend's work on the buffer is finished first (it runs on the backend's own stream), and NCCL's is
    // finished before returning, so callers see an ordinary blocking collective.
    void all_reduce_mean(Backend& backend, Tensor t) override {
        backend.synchronize();
        NCCL_CHECK(ncclAllReduce(t.data, t.data, size_t(t.numel()), nccl_type(t.dtype), ncclAvg, comm_, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    void broadcast(Backend& backend, Tensor t, int root) override {
        backend.synchronize();
        NCCL_CHECK(ncclBroadcast(t.data, t.data, size_t(t.numel()), nccl_type(t.dtype), root, comm_, stream_));
        CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    // One broadcast per shard, grouped: NCCL's all-gather wants equal shards. An empty shard (more ranks than
    // elements) is left out on every rank alike: its address may lie one past the buffer, which NCCL's pointer checks
    // (NCCL_CHECK_POINTERS=1) may refuse.
    void all_gather(Backend& backend, Tensor t, const std::vector<int64_t>& bounds) override {
        backend.synchronize();
        auto* base = static_cast<char*>(t.data);
        const size_t es = dtype_size(t.dtype);
        NCCL_CHECK(ncclGroupStart());
        for (int r = 0; r < world(); r++) {
            char* shard = base + size_t(bounds[size_t(r)]) * es;
            const size_t n = size_t(bounds[size_t(r) + 1] - bounds[size_t(r)]);
            if (n > 0) NCCL_CHECK(ncclBroadcast(shard, shard, n, nccl_type(t.dtype), r, comm_, stream_));
        }
        NCCL_CHECK(ncclGroupEnd());
        CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    void all_gather(void* data, size_t element_bytes, const std::vector<int64_t>& bounds) override {
        host_.all_gather(data, element_bytes, bounds);
    }
    void all_reduce_sum(double* values, int n) override { host_.all_reduce_sum(values, n); }
    void broadcast(void* data, size_t bytes, int root) override { host_.broadcast(data, bytes, root); }
    void barrier() override { host_.barrier(); }
    [[noreturn]] void abort(int code) override {
        host_.abort(code);
        std::abort();  // not reached; nvcc's host pass does not see host_.abort's [[noreturn]]
    }

private:
    Communicator& host_;
    ncclComm_t comm_ = nullptr;
    cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host) {
    return std::make_unique<NcclCommunicator>(host);
}

}  // namespace sinklab
