// Residual add and in-place scaling.
#include "kernels/cpu/cpu_kernels.h"

namespace sinklab::cpu {

// out = a + b over n elements; out may alias a or b
template <typename T> void add(T* out, const T* a, const T* b, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

// x *= s over n elements
template <typename T> void scale(T* x, float s, int64_t n) {
    const T f = T(s);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] *= f;
}

#define SL_INSTANTIATE(T)                                  \
    template void add<T>(T*, const T*, const T*, int64_t); \
    template void scale<T>(T*, float, int64_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
