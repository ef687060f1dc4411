// AdamW on f32 weights with f32 moments, plus the narrow copy of the weights; the deterministic sum of squares
// behind the global gradient norm.
#include <cmath>

#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kSumBlocks = 512;  // fixed, so the partial sums (and their order) never depend on the device

// A counter-based hash (splitmix64's finalizer): independent random bits per (seed, element).
__device__ __forceinline__ uint32_t hash_bits(uint64_t seed, uint64_t i) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return uint32_t(z ^ (z >> 31));
}

// Rounds up in magnitude with probability (dropped bits) / 2^16, so the expected bf16 value is x.
__device__ __forceinline__ bf16 round_stochastic(float x, uint32_t bits) {
    uint32_t u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return __float2bfloat16_rn(x);  // inf and NaN stay what they are
    u += bits & 0xffffu;
    return __ushort_as_bfloat16(uint16_t(u >> 16));
}

template <typename P> __device__ __forceinline__ P narrow(float x, bool stochastic, uint64_t seed, int64_t i);
template <> __device__ __forceinline__ float narrow<float>(float x, bool, uint64_t, int64_t) { return x; }
template <> __device__ __forceinline__ bf16 narrow<bf16>(float x, bool stochastic, uint64_t seed, int64_t i) {
    return stochastic ? round_stochastic(x, hash_bits(seed, uint64_t(i))) : __float2bfloat16_rn(x);
}

struct AdamWConsts {
    float lr, beta1, beta2, eps, decay, grad_scale;
    float step_size;   // lr / (1 - beta1^t)
    float bc2_sqrt;    // sqrt(1 - beta2^t)
    bool stochastic;
    uint64_t seed;
};

// PyTorch's AdamW step: decoupled decay first, then the bias-corrected Adam update.
template <typename P>
__global__ void adamw_kernel(float* w, P* copy, float* m, float* v, const float* g, int64_t n, AdamWConsts c) {
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i] * c.grad_scale;
    float mi = c.beta1 * m[i] + (1.f - c.beta1) * gi;
    float vi = c.beta2 * v[i] + (1.f - c.beta2) * gi * gi;
    float wi = w[i] * (1.f - c.lr * c.decay);
    wi -= c.step_size * mi / (sqrtf(vi) / c.bc2_sqrt + c.eps);
    m[i] = mi;
    v[i] = vi;
    w[i] = wi;
    if (copy) copy[i] = narrow<P>(wi, c.stochastic, c.seed, i);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) sum_squares_kernel(const T* g, int64_t n, double* partial) {
    double acc = 0.0;
    for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(kSumBlocks) * kThreads) {
        double x = to_double(g[i]);
        acc += x * x;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

}  // namespace

template <typename P>
void adamw(float* w, P* copy, float* m, float* v, const float* g, int64_t n, const AdamWStep& h, cudaStream_t st) {
    // Step t from 1: the bias corrections divide by 1 - beta^t.
    SL_ASSERT(n >= 0 && h.t >= 1, "adamw of {} elements at step {}", n, h.t);
    if (n == 0) return;
    AdamWConsts c{h.lr,
                  h.beta1,
                  h.beta2,
                  h.eps,
                  h.weight_decay,
                  h.grad_scale,
                  float(double(h.lr) / (1.0 - std::pow(double(h.beta1), double(h.t)))),
                  float(std::sqrt(1.0 - std::pow(double(h.beta2), double(h.t)))),
                  h.stochastic_round,
                  h.seed};
    CUDA_LAUNCH(adamw_kernel<P>, unsigned(ceil_div(n, kThreads)), kThreads, 0, st, w, copy, m, v, g, n, c);
}

size_t sum_squares_scratch() { return kSumBlocks * sizeof(double); }

template <typename T>
double sum_squares(const T* g, int64_t n, double* scratch, double* host_partials, cudaStream_t st) {
    SL_ASSERT(n >= 0, "sum_squares of {} elements", n);
    if (n == 0) return 0.0;
    CUDA_LAUNCH(sum_squares_kernel<T>, kSumBlocks, kThreads, 0, st, g, n, scratch);
    CUDA_CHECK(cudaMemcpyAsync(host_partials, scratch, kSumBlocks * sizeof(double), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    double sum = 0.0;
    for (int b = 0; b < kSumBlocks; b++) sum += host_partials[b];
    return sum;
}

template void adamw<float>(float*, float*, float*, float*, const float*, int64_t, const AdamWStep&, cudaStream_t);
template void adamw<bf16>(float*, bf16*, float*, float*, const float*, int64_t, const AdamWStep&, cudaStream_t);
template double sum_squares<float>(const float*, int64_t, double*, double*, cudaStream_t);
template double sum_squares<bf16>(const bf16*, int64_t, double*, double*, cudaStream_t);

}  // namespace sinklab::cuda
