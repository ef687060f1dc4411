// AdamW exactly as torch.optim.AdamW, and the reproducible sum of squares behind gradient clipping.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"

namespace sinklab::cpu {

// p, m, v, g [n]; p, m, v updated in place
template <typename T> void adamw(T* p, T* m, T* v, const T* g, int64_t n, const AdamWStep& h) {
    // Scalars in double, then the per-element operations in PyTorch's order.
    const double bc1 = 1.0 - std::pow(double(h.beta1), double(h.t));
    const double bc2 = 1.0 - std::pow(double(h.beta2), double(h.t));
    const T decay = T(1.0 - double(h.lr) * double(h.weight_decay));
    const T step = T(double(h.lr) / bc1);
    const T sqrt_bc2 = T(std::sqrt(bc2));
    const T b1 = T(h.beta1), b2 = T(h.beta2), gs = T(h.grad_scale), eps = T(h.eps);
    const T one_b1 = T(1.0 - double(h.beta1)), one_b2 = T(1.0 - double(h.beta2));
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const T gi = g[i] * gs;
        p[i] *= decay;
        m[i] = m[i] * b1 + one_b1 * gi;
        v[i] = v[i] * b2 + one_b2 * gi * gi;
        p[i] -= step * (m[i] / (std::sqrt(v[i]) / sqrt_bc2 + eps));
    }
}

// sum of g^2 in double: fixed chunks summed in index order, so the result never depends on the thread count
template <typename T> double sum_squares(const T* g, int64_t n) {
    constexpr int64_t kChunk = 1 << 14;
    const int64_t nchunks = (n + kChunk - 1) / kChunk;
    std::vector<double> partial(static_cast<size_t>(nchunks));
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t i1 = std::min(n, (c + 1) * kChunk);
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = c * kChunk; i < i1; i++) s += double(g[i]) * double(g[i]);
        partial[size_t(c)] = s;
    }
    double total = 0;
    for (double s : partial) total += s;
    return total;
}

#define SL_INSTANTIATE(T)                                                    \
    template void adamw<T>(T*, T*, T*, const T*, int64_t, const AdamWStep&); \
    template double sum_squares<T>(const T*, int64_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
