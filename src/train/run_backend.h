// The backend a run's config asks for, made the same way by train, eval and bench.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "config/config.h"
#include "dist/comm.h"

namespace sinklab {

// backend and precision.compute of `cfg`, on this rank's GPU (gpu_slot) or with this rank's share of the node's cores
// (run.threads when set), every rank calling it. Fails on every rank when the ranks made different backends (with
// backend: auto, a rank that finds no usable GPU would compute on the CPU beside GPU ranks). `note` gets a line for
// the run's log when backend: auto chose the CPU on a machine with an NVIDIA driver, else stays empty.
std::unique_ptr<Backend> make_run_backend(const Config& cfg, Communicator& comm, std::string& note);

// Which of the GPUs it sees a rank takes, modulo their number: its place among the ranks that see the same GPUs
// (`visible`, visible_gpus(): their UUIDs, so such ranks share a machine), every rank calling it. That is the local
// rank where every rank sees all of its machine's GPUs, and 0 where each sees only its own (Slurm's --gpus-per-task);
// where ranks see one socket's GPUs each (Slurm's --gpu-bind=closest), it counts only the ranks of that socket, where
// the local rank would put two ranks of different sockets on one GPU.
int gpu_slot(Communicator& comm, uint64_t visible);

// Fails on every rank when a rank's `made` (its backend and compute dtype, "cuda (bf16)") is not rank 0's.
void require_same_backend(Communicator& comm, const std::string& made);

// Every rank of a train or eval must compute one model: a rank that resolved another config (other files or --set
// options) fails them all, before collectives whose sizes would differ between the ranks.
void require_same_config(Communicator& comm, const Config& cfg);

// What made a file of results, for metrics.h5 and eval.h5 alike: sinklab_version, git_rev, backend, device and
// created (UTC, ISO 8601).
std::vector<std::pair<std::string, std::string>> provenance_attrs(const Backend& backend);

// That note, for a run of `backend_key` on `made` ("cpu", "cuda") where the driver's device node is `driver_node`.
std::string auto_backend_note(const std::string& backend_key, const std::string& made, const std::string& driver_node);

}  // namespace sinklab
