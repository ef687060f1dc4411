// Token embedding lookup and its scatter-add backward.
#include <algorithm>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_kernels.h"

namespace sinklab::cpu {
namespace {

// Model::forward tells the user of a bad id; this keeps a direct call from indexing out of bounds, before the
// parallel loops (an exception cannot leave an OpenMP region).
void check_ids(const int32_t* ids, int64_t N, int64_t V) {
    for (int64_t n = 0; n < N; n++)
        SL_ASSERT(ids[n] >= 0 && ids[n] < V, "id {} of row {} outside [0, {})", ids[n], n, V);
}

}  // namespace

// out [N, C]; ids [N]; wte [V, C]
template <typename T> void embedding_fwd(T* out, const int32_t* ids, const T* wte, int64_t N, int64_t V, int64_t C) {
    check_ids(ids, N, V);
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) std::copy(wte + ids[n] * C, wte + (ids[n] + 1) * C, out + n * C);
}

// dwte [V, C] +=; dout [N, C]. Threads own column blocks and visit the rows in order, so repeated ids need no
// atomics and every sum runs in row order whatever the thread count.
template <typename T> void embedding_bwd(T* dwte, const int32_t* ids, const T* dout, int64_t N, int64_t V, int64_t C) {
    check_ids(ids, N, V);
    constexpr int64_t kBlock = 64 / sizeof(T);  // one cache line of columns
    const int64_t nblocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        const int64_t c0 = blk * kBlock, c1 = std::min(C, c0 + kBlock);
        for (int64_t n = 0; n < N; n++) {
            T* dst = dwte + ids[n] * C;
            const T* src = dout + n * C;
#pragma omp simd
            for (int64_t c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}

#define SL_INSTANTIATE(T)                                                                    \
    template void embedding_fwd<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t); \
    template void embedding_bwd<T>(T*, const int32_t*, const T*, int64_t, int64_t, int64_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
