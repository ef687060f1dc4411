// tests/emu's stand-in for kernels/cuda/launch.cuh: a launch queues the grid's run in the emulator on its stream.
#pragma once
#include <fmt/format.h>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/launch_smem.cuh"

namespace sinklab::cuda {

template <typename... Params, typename... Args>
void launch_kernel(const char* file, int line, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t st, Args... args) {
    allow_dynamic_smem(kernel, smem, file, line);
    emu::check_launch(grid, block, smem);
    emu::check_dynamic_smem_allowed(reinterpret_cast<const void*>(kernel), smem);
    emu::enqueue(st, [=] {
        try {
            emu::run_grid(grid, block, smem, [&] { kernel(args...); });
        } catch (const Error& e) {
            throw Error(fmt::format("{} (launched at {}:{})", e.what(), file, line));
        }
    });
}

template <typename T> T* dynamic_smem() { return reinterpret_cast<T*>(emu::dynamic_smem()); }

}  // namespace sinklab::cuda

#define CUDA_LAUNCH(...) ::sinklab::cuda::launch_kernel(__FILE__, __LINE__, __VA_ARGS__)
