// Shared device code for kernels/cuda: error checks, element access for T = float or bf16, 16-byte vector
// access, and warp/block reductions.
#pragma once
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/check.h"
#include "kernels/cuda/align.h"

namespace sinklab::cuda {

using bf16 = __nv_bfloat16;

// A failed CUDA or cuBLAS call is a broken invariant or an unusable device: it throws sinklab::Error naming
// the call, the library's reason, and our file:line.
inline void check_cuda(cudaError_t e, const char* call, const char* file, int line) {
    if (e != cudaSuccess)
        fail_internal(file, line, fmt::format("{} failed: {} ({})", call, cudaGetErrorName(e), cudaGetErrorString(e)));
}
inline void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS)
        fail_internal(file, line,
                      fmt::format("{} failed: {} ({})", call, cublasLtGetStatusName(s), cublasLtGetStatusString(s)));
}

// Temporary device memory lent to a launcher: `bytes` usable bytes at `data`. take() checks what the launcher needs
// against them, so that a short buffer is an error instead of writes past its end.
struct Scratch {
    void* data = nullptr;
    size_t bytes = 0;
    template <typename P = void> P* take(size_t need, const char* launcher) const {
        SL_ASSERT(need <= bytes, "{}: {} bytes of scratch where it needs {}", launcher, bytes, need);
        return static_cast<P*>(data);
    }
};

}  // namespace sinklab::cuda

#define CUDA_CHECK(call) ::sinklab::cuda::check_cuda((call), #call, __FILE__, __LINE__)
#define CUBLAS_CHECK(call) ::sinklab::cuda::check_cublas((call), #call, __FILE__, __LINE__)

namespace sinklab::cuda {

// ---- element access: kernels compute in f32 whatever they store --------------------------------------
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_float<bf16>(float x) { return __float2bfloat16_rn(x); }

// With the accurate expf; the attention kernels' fast one is sigmoid2 (attention.cu). The double one is the sink
// metrics'.
__device__ __forceinline__ float sigmoid(float z) { return 1.f / (1.f + expf(-z)); }
__device__ __forceinline__ double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

// f64 appears otherwise only in conversions (host data, CPU-side checks); these go through double exactly.
__device__ __forceinline__ double to_double(float x) { return x; }
__device__ __forceinline__ double to_double(double x) { return x; }
__device__ __forceinline__ double to_double(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_double(double x);
template <> __device__ __forceinline__ float from_double<float>(double x) { return float(x); }
template <> __device__ __forceinline__ double from_double<double>(double x) { return x; }
// Through f32, as the host's float_to_bf16_bits(float(x)) rounds: a value written from the host through either
// backend gets the same bits (direct f64 -> bf16 rounding differs on about 1 value in 2^17).
template <> __device__ __forceinline__ bf16 from_double<bf16>(double x) { return __float2bfloat16_rn(float(x)); }

// ---- 16-byte vector access ------------------------------------------------------------------------
template <typename T> inline constexpr int kVec = int(16 / sizeof(T));  // elements per 16-byte access

template <typename T> struct alignas(16) Pack {
    T v[kVec<T>];
};

template <typename T> __device__ __forceinline__ Pack<T> load_pack(const T* p) {
    Pack<T> r;
    *reinterpret_cast<int4*>(&r) = *reinterpret_cast<const int4*>(p);
    return r;
}
template <typename T> __device__ __forceinline__ void store_pack(T* p, const Pack<T>& x) {
    *reinterpret_cast<int4*>(p) = *reinterpret_cast<const int4*>(&x);
}

// VW consecutive elements as f32: one 16-byte access when VW == kVec<T> (the caller checked alignment), else
// element by element.
template <int VW, typename T> __device__ __forceinline__ void load_f32(const T* p, float (&out)[VW]) {
    if constexpr (VW == kVec<T>) {
        Pack<T> q = load_pack(p);
        for (int e = 0; e < VW; e++) out[e] = to_float(q.v[e]);
    } else {
        for (int e = 0; e < VW; e++) out[e] = to_float(p[e]);
    }
}
template <int VW, typename T> __device__ __forceinline__ void store_f32(T* p, const float (&in)[VW]) {
    if constexpr (VW == kVec<T>) {
        Pack<T> q;
        for (int e = 0; e < VW; e++) q.v[e] = from_float<T>(in[e]);
        store_pack(p, q);
    } else {
        for (int e = 0; e < VW; e++) p[e] = from_float<T>(in[e]);
    }
}

// Host side: whether rows of `row` elements starting at these pointers can all be read 16 bytes at a time.
template <typename T> bool vec_ok(int64_t row) { return row % kVec<T> == 0; }
template <typename T, typename... P> bool vec_ok(int64_t row, const T* p, const P*... rest) {
    return (reinterpret_cast<uintptr_t>(p) % 16 == 0) && vec_ok<T>(row, rest...);
}

// ---- reductions -----------------------------------------------------------------------------------
template <typename A> __device__ __forceinline__ A warp_sum(A x) {
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
// Sum over aligned groups of `lanes` lanes (a power of two), returned to each lane of the group; every lane of the
// warp must call it.
__device__ __forceinline__ float group_sum(float x, int lanes) {
    for (int o = lanes / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}
__device__ __forceinline__ float warp_max(float x) {
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}

// Sum over the block, returned to every thread. Every thread of the block must call it; blockDim.x is a
// multiple of 32. The order of additions is fixed, so the result is reproducible.
template <typename A> __device__ A block_sum(A x) {
    __shared__ A part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    x = warp_sum(x);
    __syncthreads();  // part[] may still be read by a previous call
    if (lane == 0) part[warp] = x;
    __syncthreads();
    x = lane < nwarps ? part[lane] : A(0);
    return warp_sum(x);
}

// Max over the block, returned to every thread; the same rules as block_sum.
__device__ __forceinline__ float block_max(float x) {
    __shared__ float part[32];
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0) part[warp] = x;
    __syncthreads();
    x = lane < nwarps ? part[lane] : -INFINITY;
    return warp_max(x);
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
// Lanes per row of n elements read vw at a time: the power of two that covers the row, at most a warp.
inline int lanes_for(int64_t n, int vw) {
    int lanes = 1;
    while (lanes < 32 && lanes * vw < n) lanes *= 2;
    return lanes;
}

}  // namespace sinklab::cuda
