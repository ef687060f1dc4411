// nccl.h's stand-in over MPI_COMM_WORLD. All-reduce sums in MPI's order (bf16 in f32, rounded back once) and then
// divides for ncclAvg. Real NCCL sums in its ring's or tree's order, rounds bf16 at each hop and scales by 1/N before
// summing floats: its results may differ from these in the last bits (every rank still gets the same ones), so tests
// compare with values exact in either order.
// The C API only, as src/dist/mpi_comm_mpi.cpp uses it.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <nccl.h>

#include <cstring>
#include <vector>

#include "core/dtype.h"

struct ncclComm {
    int rank, nranks;
};

namespace {

size_t element_bytes(ncclDataType_t t) {
    switch (t) {
        case ncclInt32: return 4;
        case ncclFloat32: return 4;
        case ncclFloat64: return 8;
        case ncclBfloat16: return 2;
    }
    return 0;
}

template <typename T> void reduce(const void* send, void* recv, size_t n, MPI_Datatype type, int divide_by) {
    std::vector<T> v(n);
    std::memcpy(v.data(), send, n * sizeof(T));
    MPI_Allreduce(MPI_IN_PLACE, v.data(), int(n), type, MPI_SUM, MPI_COMM_WORLD);
    for (T& x : v) x = divide_by > 1 ? x / T(divide_by) : x;
    std::memcpy(recv, v.data(), n * sizeof(T));
}

}  // namespace

const char* ncclGetErrorString(ncclResult_t r) { return r == ncclSuccess ? "no error" : "invalid argument"; }

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
    std::memset(id->internal, 7, sizeof id->internal);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
    for (char c : id.internal)
        if (c != 7) return ncclInvalidArgument;  // the id did not travel from rank 0
    int world = 0, me = -1;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (world != nranks || me != rank) return ncclInvalidArgument;
    *comm = new ncclComm{rank, nranks};
    return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t) { return ncclSuccess; }

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
    delete comm;
    return ncclSuccess;
}

// Collectives are queued on their stream (tests/emu/emu.h): each rank carries them out when it waits for it.
ncclResult_t ncclAllReduce(const void* send, void* recv, size_t n, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t st) {
    const int divide_by = op == ncclAvg ? comm->nranks : 1;
    sinklab::emu::enqueue(st, [=] {
        switch (type) {
            case ncclInt32: reduce<int>(send, recv, n, MPI_INT, divide_by); break;
            case ncclFloat32: reduce<float>(send, recv, n, MPI_FLOAT, divide_by); break;
            case ncclFloat64: reduce<double>(send, recv, n, MPI_DOUBLE, divide_by); break;
            case ncclBfloat16: {
                std::vector<float> f(n);
                const auto* s = static_cast<const uint16_t*>(send);
                for (size_t i = 0; i < n; i++) f[i] = sinklab::bf16_bits_to_float(s[i]);
                reduce<float>(f.data(), f.data(), n, MPI_FLOAT, divide_by);
                auto* r = static_cast<uint16_t*>(recv);
                for (size_t i = 0; i < n; i++) r[i] = sinklab::float_to_bf16_bits(f[i]);
                break;
            }
        }
    });
    return ncclSuccess;
}

ncclResult_t ncclBroadcast(const void* send, void* recv, size_t n, ncclDataType_t type, int root, ncclComm_t comm,
                           cudaStream_t st) {
    if (root < 0 || root >= comm->nranks) return ncclInvalidArgument;
    const size_t bytes = n * element_bytes(type);
    const bool copy = comm->rank == root && recv != send;
    sinklab::emu::enqueue(st, [=] {
        if (copy) std::memmove(recv, send, bytes);
        MPI_Bcast(recv, int(bytes), MPI_BYTE, root, MPI_COMM_WORLD);
    });
    return ncclSuccess;
}

ncclResult_t ncclGroupStart() { return ncclSuccess; }
ncclResult_t ncclGroupEnd() { return ncclSuccess; }
