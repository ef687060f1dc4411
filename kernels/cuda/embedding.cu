// Token embedding. The backward sorts the rows by id (a stable radix sort), then one block per distinct id
// sums its rows in order: the gradient of a frequent token is the same sum every run, with no float atomics.
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

// Block i handles the run of equal ids that starts at sorted position i; other blocks exit at once.
template <typename T>
__global__ void embedding_bwd_kernel(float* dwte, const int32_t* sorted_ids, const int32_t* rows, const T* dout,
                                     int64_t N, int64_t V, int64_t C) {
    int64_t i = blockIdx.x;
    int32_t id = sorted_ids[i];
    if ((i > 0 && sorted_ids[i - 1] == id) || id < 0 || id >= V) return;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = 0.f;
        for (int64_t j = i; j < N && sorted_ids[j] == id; j++) acc += to_float(dout[int64_t(rows[j]) * C + c]);
        dwte[int64_t(id) * C + c] += acc;
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
void embedding_bwd(float* dwte, const int32_t* ids, const T* dout, int64_t N, int64_t V, int64_t C, void* scratch,
                   cudaStream_t st) {
    if (N == 0) return;
    SL_ASSERT(N < (int64_t(1) << 31), "embedding_bwd: {} rows do not fit int32 row indices", N);
    char* p = static_cast<char*>(scratch);
    size_t slot = align256(size_t(N) * sizeof(int32_t));
    auto* sorted_ids = reinterpret_cast<int32_t*>(p);
    auto* rows = reinterpret_cast<int32_t*>(p + slot);
    auto* sorted_rows = reinterpret_cast<int32_t*>(p + 2 * slot);
    size_t temp_bytes = sort_temp_bytes(N);
    CUDA_LAUNCH(iota_kernel, unsigned(ceil_div(N, kThreads)), kThreads, 0, st, rows, N);
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(p + 3 * slot, temp_bytes, ids, sorted_ids, rows, sorted_rows, N, 0,
                                               int(sizeof(int32_t) * 8), st));
    CUDA_LAUNCH(embedding_bwd_kernel<T>, unsigned(N), kThreads, 0, st, dwte, sorted_ids, sorted_rows, dout, N, V, C);
}

#define SL_INSTANTIATE(T)                                                                                    \
    template void embedding_fwd<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t, cudaStream_t); \
    template void embedding_bwd<T>(float*, const int32_t*, const T*, int64_t, int64_t, int64_t, void*,      \
                                   cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
