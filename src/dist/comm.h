// How ranks talk: Single (one process), Mpi (host buffers, MPI_Allreduce; dist/mpi_comm_mpi.cpp), and Nccl
// (GPU buffers; dist/nccl_comm_nccl.cu). The trainer only sees this interface.
//
// The NCCL communicator is built from the process's Mpi communicator (which broadcasts the NCCL unique id from
// rank 0) once a CUDA backend exists (device_communicator below), and implements the two Backend-tensor
// collectives on device memory; the host collectives (all_reduce_sum, broadcast of host bytes, barrier,
// abort) stay on MPI.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace sinklab {

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual std::string name() const = 0;
    virtual int rank() const = 0;
    virtual int world() const = 0;
    virtual int local_rank() const = 0;  // rank among the processes of this node (picks the GPU)
    virtual int local_size() const = 0;  // processes of this job on this node

    // Averages a flat buffer in backend memory over all ranks, in place; every rank gets the same bits.
    virtual void all_reduce_mean(Backend& backend, Tensor t) = 0;
    // Copies a buffer in backend memory from rank `root` to every rank.
    virtual void broadcast(Backend& backend, Tensor t, int root) = 0;
    // t is a flat buffer in backend memory of which rank r holds the current elements [bounds[r], bounds[r+1]);
    // afterwards every rank holds all of them. bounds has world() + 1 entries, from 0 to t.numel().
    virtual void all_gather(Backend& backend, Tensor t, const std::vector<int64_t>& bounds) = 0;
    // The same for a host buffer of elements of element_bytes (2, 4 or 8) bytes.
    virtual void all_gather(void* data, size_t element_bytes, const std::vector<int64_t>& bounds) = 0;
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
    int local_size() const override { return 1; }
    void all_reduce_mean(Backend&, Tensor) override {}
    void broadcast(Backend&, Tensor, int) override {}
    void all_gather(Backend&, Tensor, const std::vector<int64_t>&) override {}
    void all_gather(void*, size_t, const std::vector<int64_t>&) override {}
    void all_reduce_sum(double*, int) override {}
    void broadcast(void*, size_t, int) override {}
    void barrier() override {}
    [[noreturn]] void abort(int code) override;
};

// A new communicator: Mpi when this process is one of several ranks (started by mpirun, mpiexec or srun, or
// MPI already initialized with more than one rank), else Single: a plain run never initializes MPI.
std::unique_ptr<Communicator> make_communicator();

// The communicator of this process, made by make_communicator() on first use and kept until the process
// exits (MPI can be initialized only once per process; it is finalized at exit).
Communicator& process_communicator();

// For the commands that run as one process (all but train and eval): fails where this process is one of several
// ranks, each of which would run the whole command (and race the others for its output).
void require_single_process(const std::string& command);

// Ends the process after a usage error (its command line), found before MPI starts, with exit status 2, printing
// "sinklab: error: MESSAGE": every rank of mpirun or srun parses the same command line, and only the launcher's rank
// 0 says what is wrong; the others end without a word, after it has had time to.
[[noreturn]] void exit_with_usage_error(const std::string& message);

// The communicator for collectives on `backend`'s buffers: NCCL when the backend is CUDA, there are several
// ranks and NCCL was built in; else `host` itself (MPI stages GPU buffers through the host). The result lives
// as long as the process.
Communicator& device_communicator(Communicator& host, Backend& backend);

// Ends the process after a fatal error with exit status 1, printing "sinklab: error: MESSAGE" once per job.
// With several ranks every rank ends (MPI_Abort), so that none waits forever for a failed one: rank 0 reports
// at once; another rank first gives rank 0 a moment to report the same error (every rank fails alike on a bad
// config), then reports it with its rank number.
[[noreturn]] void exit_with_error(const std::string& message);

// exit_with_error from a thread that watches another, stuck one: the line goes straight to stderr (the stuck thread
// may hold stdout's lock), and a process alone ends without running destructors or exit handlers, any of which could
// wait on what holds the stuck thread (a file on a stalled file system).
[[noreturn]] void exit_with_error_past_a_stuck_thread(const std::string& message);

// `text` of rank `root`, on every rank; every rank calls it.
std::string broadcast_string(Communicator& comm, std::string text, int root);

// The ranks whose `value` differs from rank 0's (empty when all agree); every rank gets the same list.
std::vector<int> ranks_differing_from_root(Communicator& comm, uint64_t value);

// Every rank's `n` values (n the same on every rank), in rank order: [world, n]; every rank calls it.
std::vector<uint64_t> gather_from_every_rank(Communicator& comm, const uint64_t* values, size_t n);

// The ranks under this process's kernel (its boot id: containers of one machine share it, machines that share a
// host name do not) whose `value` equals this rank's, in rank order, this rank among them; only this rank where the
// boot id cannot be read. Every rank calls it.
std::vector<int> ranks_on_this_kernel_with(Communicator& comm, uint64_t value);

// CPU threads for one rank when run.threads is 0: the node's cores shared among its ranks, and no more than
// the cores this process may run on (mpirun and srun bind ranks to cores).
int default_threads_per_rank(const Communicator& comm);

}  // namespace sinklab
