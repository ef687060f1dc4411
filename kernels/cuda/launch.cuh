// Kernel launches and dynamic shared memory, each in one place. tests/emu provides a header of the same name that
// runs the grid on the CPU.
#pragma once
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/launch_smem.cuh"

namespace sinklab::cuda {

// kernel<<<grid, block, smem, st>>>(args...), its dynamic shared memory allowed first, then the launch's check,
// which names the caller's file:line (see CUDA_LAUNCH). cudaGetLastError also returns the fault of an earlier kernel
// on the device, which the message allows for.
template <typename... Params, typename... Args>
void launch_kernel(const char* file, int line, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                   cudaStream_t st, Args... args) {
    allow_dynamic_smem(kernel, smem, file, line);
    kernel<<<grid, block, smem, st>>>(args...);
    check_cuda(cudaGetLastError(), "this kernel launch (or an earlier kernel)", file, line);
}

// The block's dynamic shared memory (the smem bytes of its launch), 16-byte aligned.
template <typename T> __device__ __forceinline__ T* dynamic_smem() {
    extern __shared__ __align__(16) unsigned char dynamic_smem_bytes[];
    return reinterpret_cast<T*>(dynamic_smem_bytes);
}

}  // namespace sinklab::cuda

// CUDA_LAUNCH(kernel, grid, block, smem, stream, args...)
#define CUDA_LAUNCH(...) ::sinklab::cuda::launch_kernel(__FILE__, __LINE__, __VA_ARGS__)
