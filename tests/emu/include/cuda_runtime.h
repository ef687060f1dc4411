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

inline void __syncthreads() { sinklab::emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { sinklab::emu::sync_warp(); }
template <typename T> T __shfl_xor_sync(unsigned, T v, int lane_mask, int = 32) {
    return sinklab::emu::shfl_xor(v, lane_mask);
}
template <typename T> T __shfl_sync(unsigned, T v, int src_lane, int = 32) {
    return sinklab::emu::shfl_idx(v, src_lane);
}
inline float __int_as_float(int v) {
    float f;
    __builtin_memcpy(&f, &v, 4);
    return f;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

enum cudaError_t { cudaSuccess = 0 };
struct CUstream_st;
using cudaStream_t = CUstream_st*;
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorName(cudaError_t) { return "cudaSuccess"; }
inline const char* cudaGetErrorString(cudaError_t) { return "no error"; }
