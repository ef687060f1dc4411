// Variance amplification (an intervention): scales row k of every sequence about the mean of its first Tm rows
// (all of them, those up to k, or none: about zero).
#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"

namespace sinklab::cpu {

// out, x [B, Tn, D]; out may alias x. mu [D] is the mean of rows [0, Tm) of each sequence, 0 when Tm = 0.
template <typename T>
void amplify_fwd(T* out, const T* x, int64_t B, int64_t Tn, int64_t D, int k, float lambda, int64_t Tm) {
    const T lam = T(lambda);
#pragma omp parallel
    {
        std::vector<T> mu(static_cast<size_t>(D));  // [D] mean over rows [0, Tm) of one sequence
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; b++) {
            const T* xb = x + b * Tn * D;
            T* ob = out + b * Tn * D;
            std::fill(mu.begin(), mu.end(), T(0));
            if (Tm > 0) {
                for (int64_t t = 0; t < Tm; t++)
#pragma omp simd
                    for (int64_t c = 0; c < D; c++) mu[c] += xb[t * D + c];
                for (int64_t c = 0; c < D; c++) mu[c] /= T(Tm);
            }
            // Row k is written last: when out aliases x the mean above has already read it.
            if (ob != xb) std::copy(xb, xb + Tn * D, ob);
            const T* xk = xb + k * D;
            T* ok = ob + k * D;
#pragma omp simd
            for (int64_t c = 0; c < D; c++) ok[c] = mu[c] + lam * (xk[c] - mu[c]);
        }
    }
}

// dx, dout [B, Tn, D]: dx = dout except row k, lambda dout_k (the mean is held constant)
template <typename T> void amplify_bwd(T* dx, const T* dout, int64_t B, int64_t Tn, int64_t D, int k, float lambda) {
    const T lam = T(lambda);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++) {
        const T* db = dout + b * Tn * D;
        T* xb = dx + b * Tn * D;
        if (xb != db) std::copy(db, db + Tn * D, xb);
#pragma omp simd
        for (int64_t c = 0; c < D; c++) xb[k * D + c] = lam * db[k * D + c];
    }
}

#define SL_INSTANTIATE(T)                                                                       \
    template void amplify_fwd<T>(T*, const T*, int64_t, int64_t, int64_t, int, float, int64_t); \
    template void amplify_bwd<T>(T*, const T*, int64_t, int64_t, int64_t, int, float);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
