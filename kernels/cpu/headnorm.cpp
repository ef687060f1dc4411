// Head-wise RMSNorm (HeadNorm, over hd of each head of the attention output) and QK-norm (over hd of each
// q and k head of the fused qkv buffer). Both normalize rows of hd with the shared per-row helper.
#include <algorithm>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/norm_row.h"

namespace sinklab::cpu {

// out, x [N, nh, hd]; rstd [N, nh]; g [nh, hd] (per_head) or [hd]
template <typename T>
void headnorm_fwd(T* out, T* rstd, const T* x, const T* g, int64_t N, int64_t nh, int64_t hd, bool per_head,
                  float eps) {
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < nh; h++) {
            const int64_t r = n * nh + h;
            rstd[r] = T(rmsnorm_row_fwd(out + r * hd, x + r * hd, g + (per_head ? h * hd : 0), hd, eps));
        }
}

// dx, dout, x [N, nh, hd] (dx =); dg like g (+=); rowdot [B, nh, Tn] (=, when given)
template <typename T>
void headnorm_bwd(T* dx, T* dg, const T* dout, const T* x, const T* g, const T* rstd, int64_t N, int64_t nh,
                  int64_t hd, bool per_head, T* rowdot, int64_t Tn) {
    rows_with_partials(dg, per_head ? nh * hd : hd, N, [&](int64_t r0, int64_t r1, T* dg_acc) {
        for (int64_t n = r0; n < r1; n++)
            for (int64_t h = 0; h < nh; h++) {
                const int64_t r = n * nh + h, go = per_head ? h * hd : 0;
                rmsnorm_row_bwd(dx + r * hd, dg_acc + go, dout + r * hd, x + r * hd, g + go, T(rstd[r]), hd);
                if (!rowdot) continue;
                T dot = 0;
                for (int64_t j = 0; j < hd; j++) dot += dx[r * hd + j] * x[r * hd + j];
                rowdot[(n / Tn * nh + h) * Tn + n % Tn] = dot;
            }
    });
}

// out, in [N, W] with W = (H + 2 Hkv) hd; rstd [N, H + Hkv]; gq, gk [hd]
template <typename T>
void qknorm_fwd(T* out, T* rstd, const T* in, const T* gq, const T* gk, const AttnSpec& s, float eps) {
    const int64_t N = int64_t(s.B) * s.T, W = s.qkv_width(), hd = s.hd, nqk = s.H + s.Hkv;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        for (int64_t h = 0; h < nqk; h++)
            rstd[n * nqk + h] =
                T(rmsnorm_row_fwd(out + n * W + h * hd, in + n * W + h * hd, h < s.H ? gq : gk, hd, eps));
        std::copy(in + n * W + nqk * hd, in + (n + 1) * W, out + n * W + nqk * hd);
    }
}

// din, dout, in [N, W] (din =, v part copied from dout); dgq, dgk [hd] (+=)
template <typename T>
void qknorm_bwd(T* din, T* dgq, T* dgk, const T* dout, const T* in, const T* gq, const T* gk, const T* rstd,
                const AttnSpec& s) {
    const int64_t N = int64_t(s.B) * s.T, W = s.qkv_width(), hd = s.hd, nqk = s.H + s.Hkv;
    std::vector<T> dg(size_t(2 * hd), T(0));  // [dgq | dgk] of this call
    rows_with_partials(dg.data(), 2 * hd, N, [&](int64_t r0, int64_t r1, T* dg_acc) {
        for (int64_t n = r0; n < r1; n++) {
            for (int64_t h = 0; h < nqk; h++) {
                const int64_t o = n * W + h * hd;
                const bool q = h < s.H;
                rmsnorm_row_bwd(din + o, dg_acc + (q ? 0 : hd), dout + o, in + o, q ? gq : gk, T(rstd[n * nqk + h]),
                                hd);
            }
            std::copy(dout + n * W + nqk * hd, dout + (n + 1) * W, din + n * W + nqk * hd);
        }
    });
    for (int64_t j = 0; j < hd; j++) {
        dgq[j] += dg[j];
        dgk[j] += dg[hd + j];
    }
}

#define SL_INSTANTIATE(T)                                                                                        \
    template void headnorm_fwd<T>(T*, T*, const T*, const T*, int64_t, int64_t, int64_t, bool, float);       \
    template void headnorm_bwd<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, \
                                  bool, T*, int64_t);                                                            \
    template void qknorm_fwd<T>(T*, T*, const T*, const T*, const T*, const AttnSpec&, float);               \
    template void qknorm_bwd<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, const AttnSpec&);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
