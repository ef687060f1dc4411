#include "train/run_backend.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>

#include "core/build_info.h"
#include "core/check.h"
#include "core/checksum.h"
#include "core/utc_time.h"

namespace sinklab {

std::unique_ptr<Backend> make_run_backend(const Config& cfg, Communicator& comm, std::string& note) {
    BackendOptions bo;
    bo.kind = cfg.backend;
    bo.cuda_compute = cfg.precision.compute == "fp32" ? DType::F32 : DType::BF16;
    bo.threads = cfg.run.threads > 0 ? cfg.run.threads : default_threads_per_rank(comm);
    // Every rank has the same config here (require_same_config), so all or none take part in gpu_slot's collective.
    if (cfg.backend != "cpu") bo.device = gpu_slot(comm, visible_gpus());
    std::unique_ptr<Backend> backend = make_backend(bo);
    require_same_backend(comm, fmt::format("{} ({})", backend->name(), dtype_name(backend->compute_dtype())));
    note = auto_backend_note(cfg.backend, backend->name(), "/dev/nvidiactl");
    return backend;
}

int gpu_slot(Communicator& comm, uint64_t visible) {
    const std::vector<uint64_t> all = gather_from_every_rank(comm, &visible, 1);  // [world]
    return int(std::count(all.begin(), all.begin() + comm.rank(), visible));
}

void require_same_backend(Communicator& comm, const std::string& made) {
    const std::vector<int> differ = ranks_differing_from_root(comm, checksum64(made.data(), made.size()));
    if (differ.empty()) return;
    fail("rank(s) {} made another backend than rank 0's {}: with backend: auto, a rank that finds no usable GPU "
         "computes on the CPU; give every rank a GPU, or set backend: cpu (or cuda, to fail where none is)",
         fmt::join(differ, ", "), broadcast_string(comm, made, 0));
}

void require_same_config(Communicator& comm, const Config& cfg) {
    const std::vector<int> differ = ranks_differing_from_root(comm, config_hash(cfg));
    SL_REQUIRE(differ.empty(),
               "rank(s) {} resolved another config than rank 0 (config hash); start every rank with the same "
               "config file and --set options",
               fmt::join(differ, ", "));
}

std::vector<std::pair<std::string, std::string>> provenance_attrs(const Backend& backend) {
    return {{"sinklab_version", SINKLAB_VERSION},
            {"git_rev", git_rev()},
            {"backend", backend.name()},
            {"device", backend.device_name()},
            {"created", utc_now_iso8601()}};
}

std::string auto_backend_note(const std::string& backend_key, const std::string& made, const std::string& driver_node) {
    // Without a GPU the CPU is what auto means; with a driver's device node it is more likely a driver older than
    // this build's CUDA, or a build without CUDA, which would otherwise show only as a slow run.
    std::error_code ec;
    if (backend_key != "auto" || made != "cpu" || !std::filesystem::exists(driver_node, ec)) return "";
    return fmt::format("backend: auto runs on the CPU although this machine has an NVIDIA driver ({}): {}; set "
                       "backend: cuda to make that an error",
                       driver_node, cuda_unavailable_reason());
}

}  // namespace sinklab
