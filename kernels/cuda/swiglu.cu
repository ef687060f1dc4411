// SwiGLU on the fused [a | b] projection: out = silu(a) * b.
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per VW consecutive elements of a row of out [N, F] (VW = 16 bytes when rows allow it). With kRestMax,
// each block also folds max |out| (in f32, before rounding), over its rows of tokens t > 0, into *rest_max (zeroed by
// the launcher): one atomic per block, on the bits, which order as unsigned integers for non-negative floats.
template <typename T, int VW, bool kRestMax>
__global__ void swiglu_fwd_kernel(T* out, const T* ab, int64_t N, int64_t F, float* rest_max, int Tn) {
    const int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, per_row = F / VW;
    float mx = 0.f;
    if (item < N * per_row) {
        const int64_t n = item / per_row, f = item % per_row * VW;
        const T* a = ab + n * 2 * F + f;  // [VW], and b = a + F
        float av[VW], bv[VW], o[VW];
        load_f32(a, av);
        load_f32(a + F, bv);
        for (int e = 0; e < VW; e++) o[e] = av[e] / (1.f + expf(-av[e])) * bv[e];
        store_f32(out + n * F + f, o);
        if (kRestMax && n % Tn != 0)
            for (int e = 0; e < VW; e++) mx = fmaxf(mx, fabsf(o[e]));
    }
    if constexpr (kRestMax) {
        mx = block_max(mx);
        if (threadIdx.x == 0) atomicMax(reinterpret_cast<unsigned*>(rest_max), __float_as_uint(mx));
    }
}

template <typename T, int VW>
void launch_swiglu_fwd(T* out, const T* ab, int64_t N, int64_t F, float* rest_max, int Tn, cudaStream_t st) {
    const unsigned blocks = unsigned(ceil_div(N * F / VW, kThreads));
    if (rest_max)
        CUDA_LAUNCH(swiglu_fwd_kernel<T, VW, true>, blocks, kThreads, 0, st, out, ab, N, F, rest_max, Tn);
    else
        CUDA_LAUNCH(swiglu_fwd_kernel<T, VW, false>, blocks, kThreads, 0, st, out, ab, N, F, nullptr, 1);
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
        float s = sigmoid(av[e]);
        ga[e] = dy[e] * bv[e] * s * (1.f + av[e] * (1.f - s));
        gb[e] = dy[e] * av[e] * s;
    }
    store_f32(da, ga);
    store_f32(da + F, gb);
}

}  // namespace

template <typename T>
void swiglu_fwd(T* out, const T* ab, int64_t N, int64_t F, float* rest_max, int Tn, cudaStream_t st) {
    SL_ASSERT(!rest_max || Tn >= 1, "swiglu rest_max over rows of {} tokens", Tn);
    if (rest_max) CUDA_CHECK(cudaMemsetAsync(rest_max, 0, sizeof(float), st));
    if (N * F == 0) return;
    if (vec_ok<T>(F, out, ab))
        launch_swiglu_fwd<T, kVec<T>>(out, ab, N, F, rest_max, Tn, st);
    else
        launch_swiglu_fwd<T, 1>(out, ab, N, F, rest_max, Tn, st);
}

template <typename T> void swiglu_bwd(T* dab, const T* dout, const T* ab, int64_t N, int64_t F, cudaStream_t st) {
    if (N * F == 0) return;
    constexpr int VW = kVec<T>;
    if (vec_ok<T>(F, dab, dout, ab))
        CUDA_LAUNCH(swiglu_bwd_kernel<T, VW>, unsigned(ceil_div(N * F / VW, kThreads)), kThreads, 0, st, dab, dout,
                    ab, N, F);
    else
        CUDA_LAUNCH(swiglu_bwd_kernel<T, 1>, unsigned(ceil_div(N * F, kThreads)), kThreads, 0, st, dab, dout, ab, N, F);
}

#define SL_INSTANTIATE(T)                                                                   \
    template void swiglu_fwd<T>(T*, const T*, int64_t, int64_t, float*, int, cudaStream_t); \
    template void swiglu_bwd<T>(T*, const T*, const T*, int64_t, int64_t, cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
