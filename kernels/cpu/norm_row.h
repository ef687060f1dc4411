// RMSNorm of one contiguous row, forward and backward: the one implementation behind rmsnorm (rows of C)
// and headnorm / qknorm (rows of hd).
#pragma once
#include <cmath>
#include <cstdint>

namespace sinklab::cpu {

// out[n] = x * rstd * g, rstd = 1/sqrt(mean(x^2) + eps); returns rstd. out may alias x.
template <typename T> T rmsnorm_row_fwd(T* out, const T* x, const T* g, int64_t n, float eps) {
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < n; j++) ss += x[j] * x[j];
    const T rstd = T(1) / std::sqrt(ss / T(n) + T(eps));
#pragma omp simd
    for (int64_t j = 0; j < n; j++) out[j] = x[j] * rstd * g[j];
    return rstd;
}

// dx[n] = rstd * (g dout - x rstd^2 mean(g dout x)) (=, or += when kAccumulate); dg[n] += dout x rstd. dx may
// alias dout when it is written.
template <typename T, bool kAccumulate = false>
void rmsnorm_row_bwd(T* dx, T* dg, const T* dout, const T* x, const T* g, T rstd, int64_t n) {
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < n; j++) dot += g[j] * dout[j] * x[j];
    const T c = dot * rstd * rstd / T(n);
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        dg[j] += dout[j] * x[j] * rstd;
        const T d = rstd * (g[j] * dout[j] - x[j] * c);
        dx[j] = kAccumulate ? dx[j] + d : d;
    }
}

}  // namespace sinklab::cpu
