// Stands in for the CUDA runtime header when kernels/cuda is compiled as C++ for tests/emu: the CUDA keywords,
// the thread coordinates and the device built-ins the kernels use, run by the emulator.
#pragma once
#include <cmath>
#include <cstdint>

#include "emu.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) alignas(n)
// One block runs at a time, so a function-local static is the block's shared variable.
#define __shared__ static

#define threadIdx (::sinklab::emu::thread_idx())
#define blockIdx (::sinklab::emu::block_idx())
#define blockDim (::sinklab::emu::block_dim())
#define gridDim (::sinklab::emu::grid_dim())

struct alignas(16) int4 {
    int x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};

inline void __syncthreads() { sinklab::emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { sinklab::emu::sync_warp(); }
template <typename T> T __shfl_xor_sync(unsigned, T v, int lane_mask, int = 32) {
    return sinklab::emu::shfl<sinklab::emu::Shfl::Xor>(v, lane_mask);
}
template <typename T> T __shfl_sync(unsigned, T v, int src_lane, int = 32) {
    return sinklab::emu::shfl<sinklab::emu::Shfl::Idx>(v, src_lane);
}
template <typename T> T __shfl_up_sync(unsigned, T v, unsigned delta, int = 32) {
    return sinklab::emu::shfl<sinklab::emu::Shfl::Up>(v, int(delta));
}
inline float __int_as_float(int v) { return __builtin_bit_cast(float, v); }
inline float __uint_as_float(unsigned v) { return __builtin_bit_cast(float, v); }
inline unsigned __float_as_uint(float v) { return __builtin_bit_cast(unsigned, v); }
// Fibers switch only at barriers and warp collectives, so a read-modify-write is atomic here.
template <typename T> T atomicAdd(T* p, T v) {
    const T old = *p;
    *p = old + v;
    return old;
}
template <typename T> T atomicMax(T* p, T v) {
    const T old = *p;
    *p = old < v ? v : old;
    return old;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// ---- the runtime API, on host memory --------------------------------------------------------------------------
// One emulated device, an H200 (sm_90) whose memory is capped (sinklab::emu::kDeviceBytes) so that out-of-memory
// paths run; allocations start as NaN bytes (0xff), as unwritten device memory would hold garbage.
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorNotReady = 600,
};
enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice };
constexpr unsigned cudaStreamNonBlocking = 1;
struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;
struct cudaUUID_t {
    char bytes[16];
};
struct cudaDeviceProp {
    char name[256];
    cudaUUID_t uuid;
    int major, minor, multiProcessorCount;
    size_t totalGlobalMem;
};
struct cudaFuncAttributes {
    int numRegs, maxThreadsPerBlock;
    size_t sharedSizeBytes, localSizeBytes;
};

cudaError_t cudaGetLastError();
const char* cudaGetErrorName(cudaError_t e);
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
// The runtime's typed overloads.
template <typename T> cudaError_t cudaMalloc(T** p, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
template <typename T> cudaError_t cudaMallocHost(T** p, size_t bytes) {
    return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t st = nullptr);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t st = nullptr);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* st, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t st);
cudaError_t cudaStreamSynchronize(cudaStream_t st);
cudaError_t cudaEventCreate(cudaEvent_t* ev);
cudaError_t cudaEventDestroy(cudaEvent_t ev);
cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t st = nullptr);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
template <typename F> cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
    return sinklab::emu::set_dynamic_smem_allowed(reinterpret_cast<const void*>(kernel), value) ? cudaSuccess
                                                                                               : cudaErrorInvalidValue;
}
template <typename F> cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, F*) {
    *attr = cudaFuncAttributes{32, 1024, 0, 0};
    return cudaSuccess;
}
