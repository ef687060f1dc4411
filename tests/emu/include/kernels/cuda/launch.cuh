// tests/emu's stand-in for kernels/cuda/launch.cuh: a launch queues the grid's run in the emulator on its stream.
#pragma once
#include <fmt/format.h>

#include "kernels/cuda/common.cuh"

namespace sinklab::cuda {

template <typename... Params, typename... Args>
void launch_kernel(const char* file, int line, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t st, Args... args) {
    emu::check_launch(grid, block, smem);
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
