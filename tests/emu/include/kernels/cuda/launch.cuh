// tests/emu's stand-in for kernels/cuda/launch.cuh: a launch queues the grid's run in the emulator on its stream.
#pragma once
#include <fmt/format.h>

#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/launch_smem.cuh"

namespace sinklab::cuda {

// A pointer argument a GPU could not dereference (host memory) fails the launch here, as the kernel would fault there.
template <typename A> void check_kernel_argument(const A& a, int index, const char* file, int line) {
    if constexpr (std::is_pointer_v<A>) {
        if (a && !emu::device_accessible(a) && !emu::host_pointers_allowed())
            throw Error(fmt::format("emu: argument {} of the kernel launched at {}:{} points to host memory, which a "
                                    "GPU cannot read",
                                    index, file, line));
    }
}

template <typename... Params, typename... Args>
void launch_kernel(const char* file, int line, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t st, Args... args) {
    int index = 0;
    (check_kernel_argument(args, index++, file, line), ...);
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
