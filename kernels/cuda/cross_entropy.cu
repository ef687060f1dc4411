// Fused cross-entropy: one block per row of logits [N, V]. Pass 1 keeps a running (max, sum of exp) per
// thread, merged over the block; pass 2 writes dlogits = scale (softmax - onehot). dlogits may alias logits:
// every read of pass 1 (the target's logit included) happens before the block-wide merge, and in pass 2
// each thread writes only the elements it has just read.
// A row of up to kStagedBytes in 16-byte chunks is read from memory once: each thread copies its chunks into
// shared memory (cp.async) and both passes read them there, each thread only its own, so no barrier is needed.
// Read twice instead, the second read mostly misses L2: the ~500 rows in flight, 100 KiB each at V = 50304 in bf16,
// outgrow it. That read was a third of the op's memory traffic (4.9 GB a step at 48 x 1024 tokens).
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mma.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 512;
// Two blocks share a multiprocessor's 228 KiB of shared memory.
constexpr int64_t kStagedBytes = 112 * 1024;
constexpr float kLog2e = 1.4426950408889634f;

// Running log-sum-exp in base 2: the row's values are x * log2(e); sum = sum of 2^(v - max).
struct Lse2 {
    float max = -INFINITY, sum = 0.f;
};

__device__ __forceinline__ Lse2 merge(Lse2 a, Lse2 b) {
    float m = fmaxf(a.max, b.max);
    if (m == -INFINITY) return a;
    return Lse2{m, a.sum * exp2f(a.max - m) + b.sum * exp2f(b.max - m)};
}

__device__ Lse2 block_merge(Lse2 x) {
    __shared__ float part_max[kThreads / 32], part_sum[kThreads / 32];
    for (int o = 16; o > 0; o >>= 1)
        x = merge(x, Lse2{__shfl_xor_sync(0xffffffffu, x.max, o), __shfl_xor_sync(0xffffffffu, x.sum, o)});
    int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) part_max[warp] = x.max, part_sum[warp] = x.sum;
    __syncthreads();
    Lse2 r;
    for (int w = 0; w < kThreads / 32; w++) r = merge(r, Lse2{part_max[w], part_sum[w]});  // same order everywhere
    return r;
}

// kStaged: VW is a 16-byte chunk and the row fits in kStagedBytes of dynamic shared memory.
template <typename T, int VW, bool kStaged>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_kernel(float* loss, T* dlogits, const T* logits, const int32_t* targets, int64_t V, float scale) {
    int64_t n = blockIdx.x;
    const T* x = logits + n * V;                  // [V]
    T* dx = dlogits ? dlogits + n * V : nullptr;  // [V]
    int64_t target = targets[n];
    if (target < 0 || target >= V) {
        float fill = target < 0 ? 0.f : __int_as_float(0x7fffffff);
        if (threadIdx.x == 0) loss[n] = fill;
        if (dx)
            for (int64_t j = threadIdx.x; j < V; j += kThreads) dx[j] = from_float<T>(fill);
        return;
    }
    const T* src = x;  // [V], where both passes read the row
    if constexpr (kStaged) {
        T* staged = dynamic_smem<T>();  // [V]
        for (int64_t j = int64_t(threadIdx.x) * VW; j < V; j += int64_t(kThreads) * VW)
            cp_async16(staged + j, x + j, true);
        cp_async_commit();
        cp_async_wait<0>();
        src = staged;
    }
    float x_target = to_float(x[target]);
    Lse2 acc;
    for (int64_t j = int64_t(threadIdx.x) * VW; j < V; j += int64_t(kThreads) * VW) {
        float v[VW];
        load_f32(src + j, v);
        Lse2 part;
        for (int e = 0; e < VW; e++) part.max = fmaxf(part.max, v[e] * kLog2e);
        if (part.max == -INFINITY) continue;
        for (int e = 0; e < VW; e++) part.sum += exp2f(v[e] * kLog2e - part.max);
        acc = merge(acc, part);
    }
    Lse2 row = block_merge(acc);
    float lse2 = row.max + log2f(row.sum);  // log-sum-exp in base 2
    if (threadIdx.x == 0) loss[n] = lse2 / kLog2e - x_target;
    if (!dx) return;
    for (int64_t j = int64_t(threadIdx.x) * VW; j < V; j += int64_t(kThreads) * VW) {
        float v[VW];
        load_f32(src + j, v);
        for (int e = 0; e < VW; e++) v[e] = scale * (exp2f(v[e] * kLog2e - lse2) - (j + e == target ? 1.f : 0.f));
        store_f32(dx + j, v);
    }
}

}  // namespace

template <typename T>
void cross_entropy(float* loss, T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V, float scale,
                   cudaStream_t st) {
    if (N == 0) return;
    SL_ASSERT(N < (int64_t(1) << 31), "cross_entropy: {} rows", N);
    const int64_t row_bytes = V * int64_t(sizeof(T));
    if (!vec_ok<T>(V, logits, dlogits))
        CUDA_LAUNCH(cross_entropy_kernel<T, 1, false>, unsigned(N), kThreads, 0, st, loss, dlogits, logits, targets, V,
                    scale);
    else if (row_bytes <= kStagedBytes)
        CUDA_LAUNCH(cross_entropy_kernel<T, kVec<T>, true>, unsigned(N), kThreads, size_t(row_bytes), st, loss,
                    dlogits, logits, targets, V, scale);
    else
        CUDA_LAUNCH(cross_entropy_kernel<T, kVec<T>, false>, unsigned(N), kThreads, 0, st, loss, dlogits, logits,
                    targets, V, scale);
}

template void cross_entropy<float>(float*, float*, const float*, const int32_t*, int64_t, int64_t, float, cudaStream_t);
template void cross_entropy<bf16>(float*, bf16*, const bf16*, const int32_t*, int64_t, int64_t, float, cudaStream_t);

}  // namespace sinklab::cuda
