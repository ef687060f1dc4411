// Helpers shared by the CPU kernels: vectorizable exp, sigmoid and row max, per-thread scratch, and the
// row-parallel loop that sums per-thread partial parameter gradients in a fixed order.
#pragma once
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace sinklab::cpu {

// exp that GCC vectorizes inside `omp simd` loops (std::exp stays a scalar libm call without -ffast-math,
// and it dominates softmax/sigmoid loops). float: Cody-Waite reduction to |r| <= ln2/2 and a degree-7
// Taylor polynomial, about 1 ulp; exp(0) == 1 exactly; NaN propagates. double (gradient checks): std::exp.
inline float exp_v(float x) {
    float c = x < -87.f ? -87.f : x;
    c = c > 88.f ? 88.f : c;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a libm call.
    const float n = (c * 1.44269504088896341f + 12582912.f) - 12582912.f;
    const float r = (c - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
    float p = 1.f / 5040;
    p = p * r + 1.f / 720;
    p = p * r + 1.f / 120;
    p = p * r + 1.f / 24;
    p = p * r + 1.f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    const float e = std::bit_cast<float>(std::bit_cast<int32_t>(p) + (int32_t(n) << 23));
    return x == x ? e : x;
}
inline double exp_v(double x) { return std::exp(x); }

template <typename T> inline T sigmoid(T x) { return T(1) / (T(1) + exp_v(-x)); }

// max of x[0, n), n >= 1. Written with a comparison because GCC keeps std::max loops scalar.
template <typename T> T max_of(const T* x, int64_t n) {
    T m = x[0];
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Scratch owned by the calling thread that persists across calls (the OpenMP pool keeps its threads), so a
// training step allocates nothing once the first step has sized it. At least n elements, contents left over
// from earlier calls.
template <typename T> T* thread_scratch(size_t n) {
    static thread_local std::vector<T> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
}

// Runs body(r0, r1, acc) over N rows split into one contiguous range per thread, each thread with its own
// zeroed accumulator acc[width]; then adds the accumulators to dst (+=) in thread order. The result thus
// depends on the thread count only, never on scheduling.
template <typename T, typename Body> void rows_with_partials(T* dst, int64_t width, int64_t N, Body&& body) {
    const int max_threads = int(std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), N)));
    std::vector<T> partial(size_t(max_threads) * size_t(width), T(0));
    int used = 1;
#pragma omp parallel num_threads(max_threads)
    {
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
#pragma omp single
        used = nt;
        const int64_t r0 = N * id / nt, r1 = N * (id + 1) / nt;
        body(r0, r1, partial.data() + size_t(id) * size_t(width));
    }
    for (int id = 0; id < used; id++) {
        const T* acc = partial.data() + size_t(id) * size_t(width);
        for (int64_t j = 0; j < width; j++) dst[j] += acc[j];
    }
}

}  // namespace sinklab::cpu
