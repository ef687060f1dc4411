// Chooses the backend a run asked for. The one place that knows which backends were built.
#include "backend/backend.h"

#include <algorithm>

#include "core/checksum.h"

namespace sinklab {

#ifdef SINKLAB_HAVE_CUDA
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& opt);
bool cuda_device_present();
std::string cuda_device_error();
uint64_t cuda_visible_gpus();
bool cuda_available() { return cuda_device_present(); }
std::string cuda_unavailable_reason() { return cuda_device_error(); }
uint64_t visible_gpus() { return cuda_available() ? cuda_visible_gpus() : 0; }
#else
bool cuda_available() { return false; }
std::string cuda_unavailable_reason() { return "this sinklab was built without CUDA (-DSINKLAB_CUDA=ON needs nvcc)"; }
uint64_t visible_gpus() { return 0; }
#endif

uint64_t gpu_set_id(std::vector<std::array<unsigned char, 16>> uuids) {
    if (uuids.empty()) return 0;
    std::sort(uuids.begin(), uuids.end());
    return checksum64(uuids.data(), uuids.size() * sizeof(uuids[0]));
}

std::unique_ptr<Backend> make_backend(const BackendOptions& opt) {
    if (opt.kind == "cpu") return make_cpu_backend(DType::F32, opt.threads);
#ifdef SINKLAB_HAVE_CUDA
    if (opt.kind == "cuda" || (opt.kind == "auto" && cuda_available())) {
        SL_REQUIRE(cuda_available(),
                   "backend: cuda was asked for, but no usable GPU was found; use backend: cpu or auto");
        use_host_threads(opt.threads);
        return make_cuda_backend(opt);
    }
#else
    SL_REQUIRE(opt.kind != "cuda",
               "backend: cuda was asked for, but this sinklab was built without CUDA; rebuild with "
               "-DSINKLAB_CUDA=ON on a machine with nvcc, or use backend: cpu");
#endif
    SL_REQUIRE(opt.kind == "auto" || opt.kind == "cuda", "backend: unknown value '{}' (use auto, cpu or cuda)",
               opt.kind);
    return make_cpu_backend(DType::F32, opt.threads);
}

}  // namespace sinklab
