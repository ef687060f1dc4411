// How ranks talk: Single (one process), Mpi (CPU buffers, MPI_Allreduce), Nccl (GPU buffers, its id
// broadcast over MPI). The trainer only sees this interface.
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"

namespace sinklab {

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual std::string name() const = 0;
    virtual int rank() const = 0;
    virtual int world() const = 0;
    virtual int local_rank() const = 0;  // rank among the processes of this node (picks the GPU)

    // Averages a flat buffer in backend memory over all ranks, in place.
    virtual void all_reduce_mean(Backend& backend, Tensor t) = 0;
    // Sums n host doubles over all ranks; every rank gets the result.
    virtual void all_reduce_sum(double* values, int n) = 0;
    // Copies `bytes` host bytes from rank `root` to every rank.
    virtual void broadcast(void* data, size_t bytes, int root) = 0;
    virtual void barrier() = 0;
    // Ends every rank now (a failing rank calls this so that no other rank waits forever).
    [[noreturn]] virtual void abort(int code) = 0;
};

class SingleCommunicator final : public Communicator {
public:
    std::string name() const override { return "single"; }
    int rank() const override { return 0; }
    int world() const override { return 1; }
    int local_rank() const override { return 0; }
    void all_reduce_mean(Backend&, Tensor) override {}
    void all_reduce_sum(double*, int) override {}
    void broadcast(void*, size_t, int) override {}
    void barrier() override {}
    [[noreturn]] void abort(int code) override;
};

// The communicator for this process: MPI when launched under mpirun with more than one rank (and built
// with MPI), else Single.
std::unique_ptr<Communicator> make_communicator();

}  // namespace sinklab
