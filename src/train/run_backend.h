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

// backend and precision.compute of `cfg`, on this rank's GPU (its local rank) or with this rank's share of the
// node's cores (run.threads when set). `note` gets a line for the run's log when backend: auto chose the CPU on a
// machine with an NVIDIA driver, else stays empty.
std::unique_ptr<Backend> make_run_backend(const Config& cfg, const Communicator& comm, std::string& note);

// Every rank of a train or eval must compute one model: a rank that resolved another config (other files or --set
// options) fails them all, before collectives whose sizes would differ between the ranks.
void require_same_config(Communicator& comm, const Config& cfg);

// What made a file of results, for metrics.h5 and eval.h5 alike: sinklab_version, git_rev, backend, device and
// created (UTC, ISO 8601).
std::vector<std::pair<std::string, std::string>> provenance_attrs(const Backend& backend);

// That note, for a run of `backend_key` on `made` ("cpu", "cuda") where the driver's device node is `driver_node`.
std::string auto_backend_note(const std::string& backend_key, const std::string& made, const std::string& driver_node);

}  // namespace sinklab
