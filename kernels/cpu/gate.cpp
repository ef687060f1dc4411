// Gated attention output: out = x * sigmoid(logit), one logit per channel or per head.
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_kernels.h"

namespace sinklab::cpu {

// out, x [N, H, hd]; logit [N, H*hd] (per_channel) or [N, H]
template <typename T>
void gate_fwd(T* out, const T* x, const T* logit, int64_t N, int64_t H, int64_t hd, bool per_channel) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * H; r++) {
        const T* xr = x + r * hd;
        T* o = out + r * hd;
        if (per_channel) {
            const T* l = logit + r * hd;
#pragma omp simd
            for (int64_t j = 0; j < hd; j++) o[j] = xr[j] * sigmoid(l[j]);
        } else {
            const T sg = sigmoid(logit[r]);
#pragma omp simd
            for (int64_t j = 0; j < hd; j++) o[j] = xr[j] * sg;
        }
    }
}

// dx [N, H, hd] (=); dlogit like logit (=); dout [N, H, hd]
template <typename T>
void gate_bwd(T* dx, T* dlogit, const T* dout, const T* x, const T* logit, int64_t N, int64_t H, int64_t hd,
              bool per_channel) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * H; r++) {
        const T* xr = x + r * hd;
        const T* d = dout + r * hd;
        T* dxr = dx + r * hd;
        if (per_channel) {
            const T* l = logit + r * hd;
            T* dl = dlogit + r * hd;
#pragma omp simd
            for (int64_t j = 0; j < hd; j++) {
                const T sg = sigmoid(l[j]);
                dl[j] = d[j] * xr[j] * sg * (T(1) - sg);
                dxr[j] = d[j] * sg;
            }
        } else {
            const T sg = sigmoid(logit[r]);
            T dot = 0;
#pragma omp simd reduction(+ : dot)
            for (int64_t j = 0; j < hd; j++) {
                dot += d[j] * xr[j];
                dxr[j] = d[j] * sg;
            }
            dlogit[r] = dot * sg * (T(1) - sg);
        }
    }
}

#define SL_INSTANTIATE(T)                                                               \
    template void gate_fwd<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, bool); \
    template void gate_bwd<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, bool);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
