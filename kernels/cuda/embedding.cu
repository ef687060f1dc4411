// Token embedding. The backward sorts the rows by id (a stable radix sort), then one block per distinct id sums its
// rows in a fixed order: the gradient of a frequent token is the same sum every run, with no float atomics.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

template <typename T, bool kVecIO>
__global__ void embedding_fwd_kernel(T* out, const int32_t* ids, const T* wte, int64_t N, int64_t V, int64_t C) {
    constexpr int VW = kVecIO ? kVec<T> : 1;
    int64_t n = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
    if (n >= N) return;
    int lane = threadIdx.x % 32;
    int64_t id = ids[n];
    T* o = out + n * C;  // [C]
    if (id < 0 || id >= V) {
        for (int64_t j = lane; j < C; j += 32) o[j] = from_float<T>(__int_as_float(0x7fffffff));
        return;
    }
    const T* w = wte + id * C;  // [C]
    for (int64_t j = lane * VW; j < C; j += 32 * VW) {
        if constexpr (kVecIO) store_pack(o + j, load_pack(w + j));
        else o[j] = w[j];
    }
}

// Block i handles the run of equal ids that starts at sorted position i; other blocks exit at once. A frequent
// token's rows are many (the space byte is 15% of English text: 7,500 of 48 x 1024 rows), and a thread summing
// them all would wait for each load in turn, 23,000 times for that token at 768 channels. So the block's warps take
// them in turn, warp w rows w, w + kWarps, ..., each summing its own in order with several loads in flight, and
// then the block adds the warps' sums in warp order.
template <typename T, int VW>
__global__ void embedding_bwd_kernel(float* dwte, const int32_t* sorted_ids, const int32_t* rows, const T* dout,
                                     int64_t N, int64_t V, int64_t C) {
    __shared__ float part[kWarps][32 * VW];  // [warp, column of the slice]
    __shared__ int64_t run_end;
    const int64_t i = blockIdx.x;
    const int32_t id = sorted_ids[i];
    if ((i > 0 && sorted_ids[i - 1] == id) || id < 0 || id >= V) return;
    if (threadIdx.x == 0) {  // the ids are sorted: the run ends at the first larger one, found by steps that double
        int64_t lo = i + 1, step = 1;  // (1 or 2 loads for most ids, which are rare) and then halve
        while (lo + step - 1 < N && sorted_ids[lo + step - 1] == id) lo += step, step *= 2;
        int64_t hi = lo + step - 1 < N ? lo + step - 1 : N;
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (sorted_ids[mid] == id) lo = mid + 1;
            else hi = mid;
        }
        run_end = lo;
    }
    __syncthreads();
    const int64_t end = run_end;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    for (int64_t c0 = 0; c0 < C; c0 += 32 * VW) {  // slices of 32 * VW columns
        const int64_t c = c0 + lane * VW;           // C is a multiple of VW
        float acc[VW] = {};
        if (c < C) {
#pragma unroll 4
            for (int64_t j = i + warp; j < end; j += kWarps) {
                float x[VW];
                load_f32<VW>(dout + int64_t(rows[j]) * C + c, x);
#pragma unroll
                for (int e = 0; e < VW; e++) acc[e] += x[e];
            }
        }
#pragma unroll
        for (int e = 0; e < VW; e++) part[warp][lane * VW + e] = acc[e];
        __syncthreads();
        for (int k = threadIdx.x; k < 32 * VW && c0 + k < C; k += kThreads) {
            float sum = 0.f;
#pragma unroll
            for (int w = 0; w < kWarps; w++) sum += part[w][k];
            dwte[int64_t(id) * C + c0 + k] += sum;
        }
        __syncthreads();
    }
}

__global__ void iota_kernel(int32_t* x, int64_t n) {
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = int32_t(i);
}

size_t sort_temp_bytes(int64_t N) {
    size_t bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const int32_t*>(nullptr),
                                               static_cast<int32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                               static_cast<int32_t*>(nullptr), N));
    return bytes;
}

}  // namespace

template <typename T>
void embedding_fwd(T* out, const int32_t* ids, const T* wte, int64_t N, int64_t V, int64_t C, cudaStream_t st) {
    if (N == 0) return;
    dim3 grid(unsigned(ceil_div(N, kWarps)));
    if (vec_ok<T>(C, out, wte))
        CUDA_LAUNCH(embedding_fwd_kernel<T, true>, grid, kThreads, 0, st, out, ids, wte, N, V, C);
    else
        CUDA_LAUNCH(embedding_fwd_kernel<T, false>, grid, kThreads, 0, st, out, ids, wte, N, V, C);
}

// sorted ids [N], rows [N], sorted rows [N], then the sort's own temporary storage.
size_t embedding_bwd_scratch(int64_t N) { return 3 * align256(size_t(N) * sizeof(int32_t)) + sort_temp_bytes(N); }

template <typename T>
void embedding_bwd(float* dwte, const int32_t* ids, const T* dout, int64_t N, int64_t V, int64_t C,
                   Scratch scratch, cudaStream_t st) {
    if (N == 0) return;
    SL_ASSERT(N < (int64_t(1) << 31), "embedding_bwd: {} rows do not fit int32 row indices", N);
    char* p = scratch.take<char>(embedding_bwd_scratch(N), "embedding_bwd");
    size_t slot = align256(size_t(N) * sizeof(int32_t));
    auto* sorted_ids = reinterpret_cast<int32_t*>(p);
    auto* rows = reinterpret_cast<int32_t*>(p + slot);
    auto* sorted_rows = reinterpret_cast<int32_t*>(p + 2 * slot);
    size_t temp_bytes = sort_temp_bytes(N);
    CUDA_LAUNCH(iota_kernel, unsigned(ceil_div(N, kThreads)), kThreads, 0, st, rows, N);
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(p + 3 * slot, temp_bytes, ids, sorted_ids, rows, sorted_rows, N, 0,
                                               int(sizeof(int32_t) * 8), st));
    if (vec_ok<T>(C, dout))
        CUDA_LAUNCH(embedding_bwd_kernel<T, kVec<T>>, unsigned(N), kThreads, 0, st, dwte, sorted_ids, sorted_rows,
                    dout, N, V, C);
    else
        CUDA_LAUNCH(embedding_bwd_kernel<T, 1>, unsigned(N), kThreads, 0, st, dwte, sorted_ids, sorted_rows, dout, N,
                    V, C);
}

#define SL_INSTANTIATE(T)                                                                                    \
    template void embedding_fwd<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t, cudaStream_t); \
    template void embedding_bwd<T>(float*, const int32_t*, const T*, int64_t, int64_t, int64_t, Scratch,     \
                                   cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
