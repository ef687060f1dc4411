// A kernel's dynamic shared memory allowance, shared by kernels/cuda/launch.cuh and tests/emu's stand-in for it, so
// that the emulator runs the same opt-in the GPU does (and refuses a launch beyond what was opted into).
#pragma once
#include <cstddef>
#include <mutex>
#include <unordered_map>

#include "kernels/cuda/common.cuh"

namespace sinklab::cuda {

// Before a kernel's launch asks for more dynamic shared memory than it was allowed so far, raise its allowance
// (cudaFuncSetAttribute). Any amount, not only past 48 KiB: without it CUDA allows 48 KiB less the kernel's static
// shared memory, so cross-entropy's 48 KiB bf16 row at a vocabulary of 24576 would fail beside its 128 static bytes.
// Kept per kernel so that each raise is one call, not one a launch. Function attributes are the current device's:
// one device per process here.
template <typename Kernel> void allow_dynamic_smem(Kernel* kernel, size_t smem, const char* file, int line) {
    if (smem == 0) return;
    static std::mutex mutex;
    static std::unordered_map<const void*, size_t> allowed;  // kernel -> bytes
    const std::lock_guard lock(mutex);
    size_t& now = allowed[reinterpret_cast<const void*>(kernel)];
    if (smem <= now) return;
    check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
               "cudaFuncSetAttribute", file, line);
    now = smem;
}

}  // namespace sinklab::cuda
