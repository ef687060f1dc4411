// Device memory for the CUDA tests that call kernels or launchers directly, freed however a test ends (an emulator
// fault throws from a launch).
#pragma once
#include <cstddef>

#include "kernels/cuda/common.cuh"

namespace sinklab::test {

// n elements of T; with `byte`, every byte set to it on the null stream (0xff: NaNs, so an element a kernel never
// wrote fails).
template <typename T> struct DeviceArray {
    T* p = nullptr;
    explicit DeviceArray(size_t n) { CUDA_CHECK(cudaMalloc(&p, n * sizeof(T))); }
    DeviceArray(size_t n, int byte) : DeviceArray(n) { CUDA_CHECK(cudaMemsetAsync(p, byte, n * sizeof(T))); }
    ~DeviceArray() { cudaFree(p); }
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;
};

}  // namespace sinklab::test
