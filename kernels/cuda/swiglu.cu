// SwiGLU on the fused [a | b] projection: out = silu(a) * b.
#include "kernels/cuda/cuda_kernels.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per VW consecutive elements of a row of out [N, F] (VW = 16 bytes when rows allow it).
template <typename T, int VW>
__global__ void swiglu_fwd_kernel(T* out, const T* ab, int64_t N, int64_t F) {
    int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, per_row = F / VW;
    if (item >= N * per_row) return;
    int64_t n = item / per_row, f = item % per_row * VW;
    const T* a = ab + n * 2 * F + f;  // [VW], and b = a + F
    float av[VW], bv[VW], o[VW];
    load_f32(a, av);
    load_f32(a + F, bv);
    for (int e = 0; e < VW; e++) o[e] = av[e] / (1.f + expf(-av[e])) * bv[e];
    store_f32(out + n * F + f, o);
}

// da = dout b silu'(a), silu'(a) = s (1 + a (1 - s)); db = dout silu(a).
template <typename T, int VW>
__global__ void swiglu_bwd_kernel(T* dab, const T* dout, const T* ab, int64_t N, int64_t F) {
    int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, per_row = F / VW;
    if (item >= N * per_row) return;
    int64_t n = item / per_row, f = item % per_row * VW;
    const T* a = ab + n * 2 * F + f;  // [VW], and b = a + F
    T* da = dab + n * 2 * F + f;       // [VW], and db = da + F
    float av[VW], bv[VW], dy[VW], ga[VW], gb[VW];
    load_f32(a, av);
    load_f32(a + F, bv);
    load_f32(dout + n * F + f, dy);
    for (int e = 0; e < VW; e++) {
        float s = 1.f / (1.f + expf(-av[e]));
        ga[e] = dy[e] * bv[e] * s * (1.f + av[e] * (1.f - s));
        gb[e] = dy[e] * av[e] * s;
    }
    store_f32(da, ga);
    store_f32(da + F, gb);
}

}  // namespace

template <typename T> void swiglu_fwd(T* out, const T* ab, int64_t N, int64_t F, cudaStream_t st) {
    if (N * F == 0) return;
    constexpr int VW = kVec<T>;
    if (vec_ok<T>(F, out, ab))
        swiglu_fwd_kernel<T, VW><<<unsigned(ceil_div(N * F / VW, kThreads)), kThreads, 0, st>>>(out, ab, N, F);
    else
        swiglu_fwd_kernel<T, 1><<<unsigned(ceil_div(N * F, kThreads)), kThreads, 0, st>>>(out, ab, N, F);
    CUDA_CHECK_LAUNCH();
}

template <typename T> void swiglu_bwd(T* dab, const T* dout, const T* ab, int64_t N, int64_t F, cudaStream_t st) {
    if (N * F == 0) return;
    constexpr int VW = kVec<T>;
    if (vec_ok<T>(F, dab, dout, ab))
        swiglu_bwd_kernel<T, VW><<<unsigned(ceil_div(N * F / VW, kThreads)), kThreads, 0, st>>>(dab, dout, ab, N, F);
    else
        swiglu_bwd_kernel<T, 1><<<unsigned(ceil_div(N * F, kThreads)), kThreads, 0, st>>>(dab, dout, ab, N, F);
    CUDA_CHECK_LAUNCH();
}

#define SL_INSTANTIATE(T)                                                             \
    template void swiglu_fwd<T>(T*, const T*, int64_t, int64_t, cudaStream_t);        \
    template void swiglu_bwd<T>(T*, const T*, const T*, int64_t, int64_t, cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
