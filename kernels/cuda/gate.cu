// Gated attention output: out = x * sigmoid(logit), the logit per channel or per head.
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per element of x [N, H, hd]; the logit of element e is e (per channel) or e / hd (per head).
template <typename T>
__global__ void gate_fwd_kernel(T* out, const T* x, const T* logit, int64_t n, int hd, bool per_channel) {
    int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= n) return;
    float s = sigmoid(to_float(logit[per_channel ? e : e / hd]));
    out[e] = from_float<T>(to_float(x[e]) * s);
}

template <typename T>
__global__ void gate_bwd_channel_kernel(T* dx, T* dlogit, const T* dout, const T* x, const T* logit, int64_t n) {
    int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (e >= n) return;
    float s = sigmoid(to_float(logit[e])), dy = to_float(dout[e]);
    dlogit[e] = from_float<T>(dy * to_float(x[e]) * s * (1.f - s));
    dx[e] = from_float<T>(dy * s);
}

// One warp per (row, head): dlogit = s (1 - s) sum_d dout x.
template <typename T>
__global__ void gate_bwd_head_kernel(T* dx, T* dlogit, const T* dout, const T* x, const T* logit, int64_t NH, int hd) {
    int64_t nh = int64_t(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32;
    if (nh >= NH) return;
    int lane = threadIdx.x % 32;
    float s = sigmoid(to_float(logit[nh]));
    float dot = 0.f;
    for (int d = lane; d < hd; d += 32) {
        int64_t e = nh * hd + d;
        float dy = to_float(dout[e]);
        dot += dy * to_float(x[e]);
        dx[e] = from_float<T>(dy * s);
    }
    dot = warp_sum(dot);
    if (lane == 0) dlogit[nh] = from_float<T>(dot * s * (1.f - s));
}

}  // namespace

template <typename T>
void gate_fwd(T* out, const T* x, const T* logit, int64_t N, int64_t H, int64_t hd, bool per_channel,
              cudaStream_t st) {
    SL_ASSERT(N >= 0 && H >= 1 && hd >= 1 && hd <= INT32_MAX, "gate_fwd: {} rows x {} heads x {}", N, H, hd);
    int64_t n = N * H * hd;
    if (n == 0) return;
    CUDA_LAUNCH(gate_fwd_kernel<T>, unsigned(ceil_div(n, kThreads)), kThreads, 0, st, out, x, logit, n, int(hd),
                per_channel);
}

template <typename T>
void gate_bwd(T* dx, T* dlogit, const T* dout, const T* x, const T* logit, int64_t N, int64_t H, int64_t hd,
              bool per_channel, cudaStream_t st) {
    SL_ASSERT(N >= 0 && H >= 1 && hd >= 1 && hd <= INT32_MAX, "gate_bwd: {} rows x {} heads x {}", N, H, hd);
    int64_t n = N * H * hd;
    if (n == 0) return;
    if (per_channel)
        CUDA_LAUNCH(gate_bwd_channel_kernel<T>, unsigned(ceil_div(n, kThreads)), kThreads, 0, st, dx, dlogit, dout, x,
                    logit, n);
    else
        CUDA_LAUNCH(gate_bwd_head_kernel<T>, unsigned(ceil_div(N * H, kThreads / 32)), kThreads, 0, st, dx, dlogit,
                    dout, x, logit, N * H, int(hd));
}

#define SL_INSTANTIATE(T)                                                                                 \
    template void gate_fwd<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, bool, cudaStream_t);     \
    template void gate_bwd<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, bool,      \
                              cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
