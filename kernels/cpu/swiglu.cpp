// SwiGLU: out = silu(a) * b on the fused [a | b] projection.
#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_kernels.h"

namespace sinklab::cpu {

// out [N, F]; ab [N, 2F] = [a | b]
template <typename T> void swiglu_fwd(T* out, const T* ab, int64_t N, int64_t F, float* rest_max, int64_t Tn) {
    T mx = 0;
#pragma omp parallel for reduction(max : mx) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const T* a = ab + n * 2 * F;
        const T* b = a + F;
        T* o = out + n * F;
#pragma omp simd
        for (int64_t f = 0; f < F; f++) o[f] = a[f] * sigmoid(a[f]) * b[f];
        if (rest_max && n % Tn != 0)
            for (int64_t f = 0; f < F; f++) mx = std::max(mx, std::abs(o[f]));
    }
    if (rest_max) *rest_max = float(mx);
}

// dab [N, 2F] (=); dout [N, F]
template <typename T> void swiglu_bwd(T* dab, const T* dout, const T* ab, int64_t N, int64_t F) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const T* a = ab + n * 2 * F;
        const T* b = a + F;
        const T* d = dout + n * F;
        T* da = dab + n * 2 * F;
        T* db = da + F;
#pragma omp simd
        for (int64_t f = 0; f < F; f++) {
            const T sg = sigmoid(a[f]);
            // d silu(a)/da = sg (1 + a (1 - sg))
            da[f] = d[f] * b[f] * sg * (T(1) + a[f] * (T(1) - sg));
            db[f] = d[f] * a[f] * sg;
        }
    }
}

#define SL_INSTANTIATE(T)                                                         \
    template void swiglu_fwd<T>(T*, const T*, int64_t, int64_t, float*, int64_t); \
    template void swiglu_bwd<T>(T*, const T*, const T*, int64_t, int64_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
