// Rotary position embedding on the q and k heads of the fused qkv buffer (interleaved adjacent pairs).
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"

namespace sinklab::cpu {

// qkv [B, Tn, W] in place: pair (x[2i], x[2i+1]) of every q and k head turns by (pos0 + t) theta^(-2i/hd);
// inverse turns by the negative angle (the backward, on dqkv). v heads are left alone.
template <typename T> void rope(T* qkv, const AttnSpec& s, float theta, int pos0, bool inverse) {
    const int64_t Tn = s.T, W = s.qkv_width(), hd = s.hd, half = hd / 2, nqk = s.H + s.Hkv;
#pragma omp parallel
    {
        std::vector<T> cs(static_cast<size_t>(hd));  // [half, 2] cos, sin of this position's angles
#pragma omp for schedule(static)
        for (int64_t t = 0; t < Tn; t++) {
            // Angles in double: (pos0 + t) * freq reaches thousands of radians at long contexts.
            for (int64_t i = 0; i < half; i++) {
                const double a = double(pos0 + t) * std::pow(double(theta), -2.0 * double(i) / double(hd));
                cs[2 * i] = T(std::cos(a));
                cs[2 * i + 1] = T(inverse ? -std::sin(a) : std::sin(a));
            }
            for (int64_t b = 0; b < s.B; b++) {
                T* row = qkv + (b * Tn + t) * W;
                for (int64_t h = 0; h < nqk; h++) {
                    T* x = row + h * hd;
#pragma omp simd
                    for (int64_t i = 0; i < half; i++) {
                        const T c = cs[2 * i], sn = cs[2 * i + 1], x0 = x[2 * i], x1 = x[2 * i + 1];
                        x[2 * i] = x0 * c - x1 * sn;
                        x[2 * i + 1] = x0 * sn + x1 * c;
                    }
                }
            }
        }
    }
}

#define SL_INSTANTIATE(T) template void rope<T>(T*, const AttnSpec&, float, int, bool);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
