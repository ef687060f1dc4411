#include "dist/comm.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <thread>

#include "core/checksum.h"
#include "core/process.h"

namespace sinklab {

#ifdef SINKLAB_HAVE_MPI
// dist/mpi_comm_mpi.cpp: the Mpi communicator when this process is one of several ranks, else nullptr.
std::unique_ptr<Communicator> make_mpi_communicator_if_launched();
// dist/mpi_comm_mpi.cpp: the ranks an MPI launcher (mpirun, mpiexec: Open MPI's, PMI's) started, 1 when none did;
// from their environment variables, without starting MPI.
int mpi_launcher_ranks();
#endif

void SingleCommunicator::abort(int code) { std::exit(code); }

std::unique_ptr<Communicator> make_communicator() {
#ifdef SINKLAB_HAVE_MPI
    if (auto mpi = make_mpi_communicator_if_launched()) return mpi;
#endif
    return std::make_unique<SingleCommunicator>();
}

namespace {

// Destroyed at exit, after main returns: that is where MPI is finalized.
std::unique_ptr<Communicator>& process_slot() {
    static std::unique_ptr<Communicator> comm;
    return comm;
}

// How long a failing rank other than 0 waits for rank 0 to report (and end the job) first, and for each rank before
// it but rank 0.
constexpr auto kReportGrace = std::chrono::milliseconds(1500);
constexpr auto kReportStagger = std::chrono::milliseconds(200);

}  // namespace

Communicator& process_communicator() {
    auto& slot = process_slot();
    if (!slot) slot = make_communicator();
    return *slot;
}

namespace {

std::string parent_process_name() {
    std::ifstream comm_file(fmt::format("/proc/{}/comm", ::getppid()));
    std::string parent;
    std::getline(comm_file, parent);
    return parent;
}

int env_int(const char* name) {
    const char* v = std::getenv(name);
    return v && *v ? std::atoi(v) : 0;
}

#ifdef SINKLAB_HAVE_MPI
// True when an MPI launcher started this process itself: processes that a rank starts (the corpus build's prepare, a
// wrapper script's compare) inherit the launcher's variables too, and must neither start MPI nor be refused.
bool started_by_mpi_launcher() {
    static const std::set<std::string> kLaunchers = {"mpirun",  "mpiexec", "orterun", "orted",
                                                     "prterun", "prted",   "hydra_pmi_proxy"};
    return kLaunchers.contains(parent_process_name());
}
#endif

// The tasks of the srun step that started this process itself, else 1. slurmstepd is also the parent of a batch
// script, but Slurm gives the batch step no task count.
int srun_step_tasks() {
    return parent_process_name() == "slurmstepd" ? std::max(1, env_int("SLURM_STEP_NUM_TASKS")) : 1;
}

// The rank that a launcher gave this process itself (mpirun's, mpiexec's, srun's tasks), read before MPI starts; 0
// where none did.
int launcher_rank() {
    if (srun_step_tasks() > 1) return env_int("SLURM_PROCID");
#ifdef SINKLAB_HAVE_MPI
    if (started_by_mpi_launcher())
        return std::max({env_int("OMPI_COMM_WORLD_RANK"), env_int("PMI_RANK"), env_int("PMIX_RANK"),
                         env_int("MV2_COMM_WORLD_RANK")});
#endif
    return 0;
}

}  // namespace

void require_single_process(const std::string& command) {
    // srun numbers its tasks itself (PMIx, its MPI plugin, names no size before MPI starts): task 0 says why, the
    // others end without a word, after it has had time to (srun may kill the step when a task fails).
    const int srun_tasks = srun_step_tasks();
    if (srun_tasks > 1 && launcher_rank() != 0) {
        std::this_thread::sleep_for(kReportGrace);
        std::exit(1);
    }
    SL_REQUIRE(srun_tasks == 1,
               "sinklab {} runs as one process, but this is one of {} tasks that srun started, each of which would "
               "run all of it; start it without srun (train and eval are the commands that run on several ranks)",
               command, srun_tasks);
#ifdef SINKLAB_HAVE_MPI
    // MPI starts only in a rank, so that the ranks end as one job with one message (exit_with_error).
    const int world = mpi_launcher_ranks() > 1 && started_by_mpi_launcher() ? process_communicator().world() : 1;
#else
    const int world = 1;  // copies started by a launcher cannot tell
#endif
    SL_REQUIRE(world == 1,
               "sinklab {} runs as one process, but this is one of {} ranks that each would run all of it; start it "
               "without mpirun (train and eval are the commands that run on several ranks)",
               command, world);
}

#ifdef SINKLAB_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host);
#endif

Communicator& device_communicator(Communicator& host, Backend& backend) {
#ifdef SINKLAB_HAVE_NCCL
    if (backend.name() == "cuda" && host.world() > 1) {
        // Made once: NCCL's communicator belongs to the process, like MPI's, and is destroyed at exit.
        static std::unique_ptr<Communicator> nccl = make_nccl_communicator(host);
        return *nccl;
    }
#endif
    (void)backend;
    return host;
}

namespace {

// `stuck`: another thread of this process is stuck, maybe holding stdout's lock (a blocked pipe or terminal), or in
// a library whose exit handlers would wait for it: the line goes straight to stderr's file descriptor, and the
// process ends without exit handlers.
[[noreturn]] void report_and_exit(const std::string& message, bool stuck) {
    // A reader of stdout that went away must not end the process before the error is said.
    drop_signal(SIGPIPE);
    // What the command printed first comes first where both streams go to one file (stdout, buffered there, would
    // follow the error).
    if (!stuck) std::fflush(stdout);
    auto say = [stuck](const std::string& line) {
        if (stuck) {
            [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
        } else {
            std::fputs(line.c_str(), stderr);
            std::fflush(stderr);
        }
    };
    Communicator* comm = process_slot().get();
    if (!comm || comm->world() == 1) {
        say(fmt::format("sinklab: error: {}\n", message));
        if (stuck) std::_Exit(1);
        std::exit(1);
    }
    // Rank 0 reports first; when it cannot (it is the stuck rank), the others follow in rank order, so that the
    // first to report usually ends the job (MPI_Abort) before the next does.
    if (comm->rank() != 0) std::this_thread::sleep_for(kReportGrace + std::min(comm->rank() - 1, 20) * kReportStagger);
    say(fmt::format("sinklab: error: rank {} of {}: {}\n", comm->rank(), comm->world(), message));
    // From a thread other than MPI's (the hang watchdog's) this is outside MPI_THREAD_SINGLE's contract, but Open MPI
    // and MPICH end the job there as from the main thread.
    comm->abort(1);
    std::_Exit(1);  // not reached: tells the compiler what the virtual [[noreturn]] abort() already promises
}

}  // namespace

void exit_with_error(const std::string& message) { report_and_exit(message, false); }

void exit_with_usage_error(const std::string& message) {
    if (launcher_rank() == 0)
        std::fputs(fmt::format("sinklab: error: {}\n", message).c_str(), stderr);
    else
        std::this_thread::sleep_for(kReportGrace);  // a launcher may end the job at the first rank that fails
    std::exit(2);  // the usual exit status of a usage error
}

void exit_with_error_past_a_stuck_thread(const std::string& message) { report_and_exit(message, true); }

std::string broadcast_string(Communicator& comm, std::string text, int root) {
    uint64_t n = text.size();
    comm.broadcast(&n, sizeof n, root);
    text.resize(n);
    comm.broadcast(text.data(), n, root);
    return text;
}

std::vector<int> ranks_differing_from_root(Communicator& comm, uint64_t value) {
    uint64_t root = value;
    comm.broadcast(&root, sizeof root, 0);
    std::vector<double> differs(size_t(comm.world()), 0.0);
    differs[size_t(comm.rank())] = value != root ? 1.0 : 0.0;
    comm.all_reduce_sum(differs.data(), comm.world());
    std::vector<int> ranks;
    for (int r = 0; r < comm.world(); r++)
        if (differs[size_t(r)] != 0.0) ranks.push_back(r);
    return ranks;
}

std::vector<uint64_t> gather_from_every_rank(Communicator& comm, const uint64_t* values, size_t n) {
    const size_t world = size_t(comm.world());
    std::vector<uint64_t> all(world * n);  // [world, n]
    std::copy(values, values + n, all.begin() + std::ptrdiff_t(size_t(comm.rank()) * n));
    std::vector<int64_t> bounds(world + 1);
    for (size_t r = 0; r <= world; r++) bounds[r] = int64_t(r * n);
    comm.all_gather(all.data(), sizeof(uint64_t), bounds);
    return all;
}

std::vector<int> ranks_on_this_kernel_with(Communicator& comm, uint64_t value) {
    std::string boot_id;
    std::getline(std::ifstream("/proc/sys/kernel/random/boot_id"), boot_id);
    const uint64_t mine[2] = {checksum64(boot_id.data(), boot_id.size()), value};
    const std::vector<uint64_t> keys = gather_from_every_rank(comm, mine, 2);  // [world, 2]
    if (boot_id.empty()) return {comm.rank()};  // after the gather, which every rank takes part in
    std::vector<int> ranks;
    for (int r = 0; r < comm.world(); r++)
        if (keys[2 * size_t(r)] == mine[0] && keys[2 * size_t(r) + 1] == mine[1]) ranks.push_back(r);
    return ranks;
}

int default_threads_per_rank(const Communicator& comm) {
    const int node_cores = int(std::thread::hardware_concurrency());
    cpu_set_t set;
    const int allowed = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : node_cores;
    return std::max(1, std::min(allowed, node_cores / std::max(1, comm.local_size())));
}

}  // namespace sinklab
