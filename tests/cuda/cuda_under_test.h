// The CUDA backend the tests of tests/cuda run on: the GPU's, or, in sinklab_emu_tests (which compiles these files
// again with SINKLAB_EMU), the CUDA backend built against the CPU emulator of tests/emu, on every machine.
#pragma once
#include <memory>

#include "backend/backend.h"

namespace sinklab {

#ifdef SINKLAB_EMU
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& opt);  // src/backend/cuda_backend.cu, emulated
#endif

namespace test {

inline bool cuda_under_test() {
#ifdef SINKLAB_EMU
    return true;
#else
    return cuda_available();
#endif
}

inline std::unique_ptr<Backend> make_cuda_under_test(BackendOptions opt) {
    opt.kind = "cuda";
#ifdef SINKLAB_EMU
    return make_cuda_backend(opt);
#else
    return make_backend(opt);
#endif
}

}  // namespace test
}  // namespace sinklab
