// Variance amplification of row k of each sequence. Each thread owns one channel of one sequence: it reads
// the whole column (for the mean) before writing any of it, so out may alias x without a race.
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void amplify_fwd_kernel(T* out, const T* x, int64_t Tn, int64_t D, int k, float lambda, int64_t Tm) {
    int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, b = blockIdx.y;
    if (c >= D) return;
    const T* xs = x + b * Tn * D + c;  // column c of sequence b, stride D
    T* os = out + b * Tn * D + c;
    float mu = 0.f;
    if (Tm > 0) {
        for (int64_t t = 0; t < Tm; t++) mu += to_float(xs[t * D]);
        mu /= float(Tm);
    }
    float xk = to_float(xs[k * D]);
    if (out != x)
        for (int64_t t = 0; t < Tn; t++) os[t * D] = xs[t * D];
    os[k * D] = from_float<T>(mu + lambda * (xk - mu));
}

// dx = dout, row k scaled by lambda (the mean carries no gradient).
template <typename T>
__global__ void amplify_bwd_kernel(T* dx, const T* dout, int64_t n, int64_t TD, int64_t D, int k, float lambda) {
    int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= n) return;
    bool row_k = (e % TD) / D == k;
    dx[e] = row_k ? from_float<T>(lambda * to_float(dout[e])) : dout[e];
}

}  // namespace

template <typename T>
void amplify_fwd(T* out, const T* x, int64_t B, int64_t Tn, int64_t D, int k, float lambda, int64_t Tm,
                 cudaStream_t st) {
    if (B * Tn * D == 0) return;
    SL_ASSERT(k >= 0 && k < Tn && Tm >= 0 && Tm <= Tn, "amplify_fwd: row {} of {}, mean of {} rows", k, Tn, Tm);
    dim3 grid(unsigned(ceil_div(D, kThreads)), unsigned(B));
    CUDA_LAUNCH(amplify_fwd_kernel<T>, grid, kThreads, 0, st, out, x, Tn, D, k, lambda, Tm);
}

template <typename T>
void amplify_bwd(T* dx, const T* dout, int64_t B, int64_t Tn, int64_t D, int k, float lambda, cudaStream_t st) {
    int64_t n = B * Tn * D;
    if (n == 0) return;
    SL_ASSERT(k >= 0 && k < Tn, "amplify_bwd: row {} of {}", k, Tn);
    CUDA_LAUNCH(amplify_bwd_kernel<T>, unsigned(ceil_div(n, kThreads)), kThreads, 0, st, dx, dout, n, Tn * D, D, k,
                lambda);
}

#define SL_INSTANTIATE(T)                                                                                     \
    template void amplify_fwd<T>(T*, const T*, int64_t, int64_t, int64_t, int, float, int64_t, cudaStream_t); \
    template void amplify_bwd<T>(T*, const T*, int64_t, int64_t, int64_t, int, float, cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
