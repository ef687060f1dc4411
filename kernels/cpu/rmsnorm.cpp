// RMSNorm over the channels of each row.
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/norm_row.h"

namespace sinklab::cpu {

// out, x [N, C]; rstd [N]; g [C]
template <typename T> void rmsnorm_fwd(T* out, T* rstd, const T* x, const T* g, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) rstd[n] = T(rmsnorm_row_fwd(out + n * C, x + n * C, g, C, eps));
}

// dx [N, C] (=, or += with accumulate), dout, x [N, C]; dg [C] +=
template <typename T>
void rmsnorm_bwd(T* dx, T* dg, const T* dout, const T* x, const T* g, const T* rstd, int64_t N, int64_t C,
                 bool accumulate) {
    rows_with_partials(dg, C, N, [&](int64_t r0, int64_t r1, T* dg_acc) {
        for (int64_t n = r0; n < r1; n++) {
            if (accumulate)
                rmsnorm_row_bwd<T, true>(dx + n * C, dg_acc, dout + n * C, x + n * C, g, T(rstd[n]), C);
            else
                rmsnorm_row_bwd<T, false>(dx + n * C, dg_acc, dout + n * C, x + n * C, g, T(rstd[n]), C);
        }
    });
}

#define SL_INSTANTIATE(T)                                                                  \
    template void rmsnorm_fwd<T>(T*, T*, const T*, const T*, int64_t, int64_t, float); \
    template void rmsnorm_bwd<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t, bool);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
