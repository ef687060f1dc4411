// The MPI communicator: host buffers through MPI_Allreduce / MPI_Bcast. Backend memory that the host cannot
// address (a GPU's) is staged through Backend::read/write; the NCCL communicator replaces that on GPUs.
// The C API only: CMake links MPI::MPI_C, not the deprecated C++ bindings mpi.h would otherwise pull in.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/check.h"
#include "dist/comm.h"

namespace sinklab {

namespace {

[[noreturn]] void mpi_fail(int code, const char* call, const char* file, int line) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    fail("MPI call {} failed at {}:{}: {}", call, file, line, std::string(text, size_t(len)));
}

#define MPI_CHECK(call)                                               \
    do {                                                              \
        const int mpi_rc_ = (call);                                   \
        if (mpi_rc_ != MPI_SUCCESS) mpi_fail(mpi_rc_, #call, __FILE__, __LINE__); \
    } while (0)

// MPI counts are int: big buffers go in pieces of at most this many elements.
constexpr int64_t kMaxCount = INT_MAX / 2;

MPI_Datatype mpi_type(DType t) {
    switch (t) {
        case DType::F32: return MPI_FLOAT;
        case DType::F64: return MPI_DOUBLE;
        case DType::I32: return MPI_INT;
        case DType::BF16: break;
    }
    fail_internal(__FILE__, __LINE__, fmt::format("no MPI reduction for {} buffers", dtype_name(t)));
}

int env_int(const char* name) {
    const char* v = std::getenv(name);
    return v && *v ? std::atoi(v) : 0;
}

class MpiCommunicator final : public Communicator {
public:
    // Initializes MPI unless something else did; finalizes it at destruction only if it initialized it.
    MpiCommunicator() {
        int ready = 0;
        MPI_CHECK(MPI_Initialized(&ready));
        if (!ready) {
            MPI_CHECK(MPI_Init(nullptr, nullptr));
            owns_mpi_ = true;
        }
        // Errors come back to MPI_CHECK (and its message) instead of ending the process silently.
        MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
        MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_));
        MPI_Comm node;
        MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
        MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
        MPI_CHECK(MPI_Comm_size(node, &local_size_));
        MPI_CHECK(MPI_Comm_free(&node));
    }

    ~MpiCommunicator() override {
        int done = 0;
        MPI_Finalized(&done);
        if (owns_mpi_ && !done) MPI_Finalize();
    }

    std::string name() const override { return "mpi"; }
    int rank() const override { return rank_; }
    int world() const override { return world_; }
    int local_rank() const override { return local_rank_; }
    int local_size() const override { return local_size_; }

    void all_reduce_mean(Backend& backend, Tensor t) override {
        if (backend.host_memory()) {
            sum_in_place(t.data, t.numel(), t.dtype);
        } else {
            staging_.resize(size_t(t.numel()));  // f64: exact for f32 and f64 buffers
            backend.read(staging_.data(), DType::F64, t);
            sum_in_place(staging_.data(), t.numel(), DType::F64);
            backend.write(t, staging_.data(), DType::F64);
        }
        backend.scale(t, 1.f / float(world_));
    }

    void broadcast(Backend& backend, Tensor t, int root) override {
        if (backend.host_memory()) {
            broadcast(t.data, t.bytes(), root);
            return;
        }
        std::vector<char> host(t.bytes());
        if (rank_ == root) backend.read(host.data(), t.dtype, t);
        broadcast(host.data(), host.size(), root);
        if (rank_ != root) backend.write(t, host.data(), t.dtype);
    }

    void all_gather(Backend& backend, Tensor t, const std::vector<int64_t>& bounds) override {
        SL_ASSERT(bounds.back() == t.numel(), "all_gather bounds end at {} for {} elements", bounds.back(), t.numel());
        if (backend.host_memory()) {
            all_gather(t.data, dtype_size(t.dtype), bounds);
            return;
        }
        std::vector<char> host(t.bytes());
        backend.read(host.data(), t.dtype, t);
        all_gather(host.data(), dtype_size(t.dtype), bounds);
        backend.write(t, host.data(), t.dtype);
    }

    void all_gather(void* data, size_t element_bytes, const std::vector<int64_t>& bounds) override {
        SL_ASSERT(int(bounds.size()) == world_ + 1, "all_gather bounds for {} ranks", bounds.size() - 1);
        // Elements as 2-byte or 4-byte units, whatever their type (nothing is added up).
        const size_t unit = element_bytes % 4 == 0 ? 4 : 2;
        const int64_t per = int64_t(element_bytes / unit);
        std::vector<int> counts(static_cast<size_t>(world_)), displs(static_cast<size_t>(world_));
        for (int r = 0; r < world_; r++) {
            const int64_t at = bounds[size_t(r)] * per, n = (bounds[size_t(r) + 1] - bounds[size_t(r)]) * per;
            SL_REQUIRE(at + n <= INT_MAX, "all_gather of {} elements: more than MPI's int counts address",
                       bounds.back());
            displs[size_t(r)] = int(at);
            counts[size_t(r)] = int(n);
        }
        MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, counts.data(), displs.data(),
                                 unit == 4 ? MPI_UINT32_T : MPI_UINT16_T, MPI_COMM_WORLD));
    }

    void all_reduce_sum(double* values, int n) override {
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    }

    void broadcast(void* data, size_t bytes, int root) override {
        auto* p = static_cast<char*>(data);
        for (size_t at = 0; at < bytes; at += size_t(kMaxCount)) {
            const int n = int(std::min<size_t>(bytes - at, size_t(kMaxCount)));
            MPI_CHECK(MPI_Bcast(p + at, n, MPI_BYTE, root, MPI_COMM_WORLD));
        }
    }

    void barrier() override { MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD)); }

    [[noreturn]] void abort(int code) override {
        MPI_Abort(MPI_COMM_WORLD, code);
        std::_Exit(code);  // MPI_Abort does not return; this keeps the promise if it ever did
    }

private:
    void sum_in_place(void* data, int64_t n, DType t) {
        auto* p = static_cast<char*>(data);
        for (int64_t at = 0; at < n; at += kMaxCount) {
            const int count = int(std::min(n - at, kMaxCount));
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p + size_t(at) * dtype_size(t), count, mpi_type(t), MPI_SUM,
                                    MPI_COMM_WORLD));
        }
    }

    int rank_ = 0, world_ = 1, local_rank_ = 0, local_size_ = 1;
    bool owns_mpi_ = false;
    // all_reduce_mean's host copy of a device buffer (the gradients, each step), kept rather than made each time.
    std::vector<double> staging_;
};

}  // namespace

int mpi_launcher_ranks() {
    return std::max({1, env_int("OMPI_COMM_WORLD_SIZE"), env_int("PMI_SIZE"), env_int("MV2_COMM_WORLD_SIZE")});
}

std::unique_ptr<Communicator> make_mpi_communicator_if_launched() {
    int ready = 0;
    MPI_CHECK(MPI_Initialized(&ready));
    if (ready) {
        int world = 1;
        MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world));
        return world > 1 ? std::make_unique<MpiCommunicator>() : nullptr;
    }
    // The launchers' own variables: Open MPI's mpirun, PMI (MPICH/Intel MPI hydra, srun --mpi=pmi2) and PMIx
    // (srun --mpi=pmix, which names no size); srun's task count catches an srun that started several tasks
    // without an MPI plugin, each of which would otherwise think it is the only rank.
    const int launched = mpi_launcher_ranks();
    const int srun_tasks = env_int("SLURM_STEP_NUM_TASKS");
    const bool pmix = std::getenv("PMIX_RANK") != nullptr;
    if (launched <= 1 && srun_tasks <= 1 && !pmix) return nullptr;
    auto comm = std::make_unique<MpiCommunicator>();
    SL_REQUIRE(srun_tasks <= 1 || comm->world() == srun_tasks,
               "srun started {} tasks, but MPI sees {} rank(s): srun needs an MPI plugin, e.g. srun --mpi=pmix "
               "(see srun --mpi=list)",
               srun_tasks, comm->world());
    return comm;
}

}  // namespace sinklab
