// Sink-metric reductions: small outputs from one forward pass's activations, accumulated in double.
// Attention weights are rebuilt from the saved row log-sum-exp, one query-key pair at a time: no T x T matrix.
#include <algorithm>
#include <bit>
#include <type_traits>
#include <cmath>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_kernels.h"

namespace sinklab::cpu {

namespace {

// The attention's weight from the scaled score z of a row and a key it sees, and the row's log-sum-exp, in U.
template <typename U> U score_weight(U z, U lse, const AttnSpec& s) {
    return s.score == AttnScore::Sigmoid ? sigmoid(z + U(s.sigmoid_bias)) : exp_v(z - lse);
}

// Weight query row i of sequence b, head h puts on key j (which it sees), in double.
template <typename T>
double weight(const T* qkv, const T* lse, const AttnSpec& s, int64_t b, int64_t h, int64_t i, int64_t j) {
    const int64_t W = s.qkv_width(), hd = s.hd, kv = h / (s.H / s.Hkv);
    const T* q = qkv + (b * s.T + i) * W + h * hd;
    const T* k = qkv + (b * s.T + j) * W + (s.H + kv) * hd;
    double z = 0;
    for (int64_t d = 0; d < hd; d++) z += double(q[d]) * double(k[d]);
    return score_weight(z * s.scale, double(lse[(b * s.H + h) * s.T + i]), s);
}

bool sees(const AttnSpec& s, int64_t i, int64_t j) { return i == j || (i > j && !s.isolated(int(i))); }

}  // namespace

// Rows are visited in order, each qkv row read once for every head and tracked key (the access that stays
// cheap when the activations are no longer in cache); per-block partial sums keep the result independent of
// the thread count.
template <typename T>
void attn_mass(float* out, const T* qkv, const T* lse, const int* positions, int P, const AttnSpec& s) {
    constexpr int64_t kBlock = 64;  // query rows per partial sum
    const int64_t W = s.qkv_width(), hd = s.hd, H = s.H, rep = s.H / s.Hkv, rows = int64_t(s.B) * s.T;
    const int64_t nblocks = (rows + kBlock - 1) / kBlock;
    std::vector<double> part(size_t(nblocks * H * P), 0.0);
    std::vector<int64_t> count(size_t(P), 0);
    for (int k = 0; k < P; k++)
        for (int64_t i = positions[k]; i < s.T; i++) count[k] += sees(s, i, positions[k]) ? s.B : 0;
#pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        double* acc = part.data() + blk * H * P;
        for (int64_t r = blk * kBlock; r < std::min(rows, (blk + 1) * kBlock); r++) {
            const int64_t b = r / s.T, i = r % s.T;
            for (int k = 0; k < P; k++) {
                const int64_t p = positions[k];
                if (i < p || !sees(s, i, p)) continue;
                const T* krow = qkv + (b * s.T + p) * W + H * hd;
                for (int64_t h = 0; h < H; h++) {
                    const T* q = qkv + r * W + h * hd;
                    const T* kk = krow + (h / rep) * hd;
                    T z = 0;
#pragma omp simd reduction(+ : z)
                    for (int64_t d = 0; d < hd; d++) z += q[d] * kk[d];
                    // The attention kernel's own exp, in T; the sums are double.
                    acc[h * P + k] += score_weight(z * T(s.scale), lse[(b * H + h) * s.T + i], s);
                }
            }
        }
    }
    for (int64_t h = 0; h < H; h++)
        for (int k = 0; k < P; k++) {
            double sum = 0;
            for (int64_t blk = 0; blk < nblocks; blk++) sum += part[size_t((blk * H + h) * P + k)];
            out[h * P + k] = float(sum / double(count[k]));
        }
}

template <typename T> void attn_map(float* out, int64_t Q, const T* qkv, const T* lse, const AttnSpec& s) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < Q; i++)
        for (int64_t j = 0; j < Q; j++) {
            double sum = 0;
            if (sees(s, i, j))
                for (int64_t h = 0; h < s.H; h++) sum += weight(qkv, lse, s, 0, h, i, j);
            out[i * Q + j] = float(sum / s.H);
        }
}

template <typename T> void position_std(float* out, int64_t Tp, const T* x, int64_t B, int64_t Tn, int64_t D) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < Tp; t++) {
        double acc = 0;
        for (int64_t b = 0; b < B; b++) {
            const T* row = x + (b * Tn + t) * D;
            double s1 = 0, s2 = 0;
            for (int64_t d = 0; d < D; d++) s1 += double(row[d]), s2 += double(row[d]) * double(row[d]);
            const double mean = s1 / D;
            acc += std::sqrt(std::max(0.0, s2 / D - mean * mean));
        }
        out[t] = float(acc / B);
    }
}

template <typename T> void token0_stats(float* out, const T* x, int64_t B, int64_t Tn, int64_t D) {
    double dominance = 0, max0 = -1;
    int64_t top = 0;
    for (int64_t b = 0; b < B; b++) {
        const T* row = x + b * Tn * D;  // [D]
        double mx = 0, sum_abs = 0;
        int64_t arg = 0;
        for (int64_t d = 0; d < D; d++) {
            const double a = std::abs(double(row[d]));
            if (a > mx) mx = a, arg = d;
            sum_abs += a;
        }
        dominance += sum_abs == 0 ? 0.0 : mx / (sum_abs / D);  // NaN states give NaN, not 0
        if (mx > max0) max0 = mx, top = arg;
    }
    out[0] = float(dominance / B);
    out[1] = float(max0);
    out[2] = float(top);
}

template <typename T> void token0_norm_ratio(float* out, const T* rstd, int64_t B, int64_t Tn, float eps) {
    // ||x_bt|| / sqrt(D); the clamp keeps rounding from taking an all-zero row's norm below 0.
    auto norm = [eps](T r) { return std::sqrt(std::max(0.0, 1.0 / (double(r) * double(r)) - double(eps))); };
    double norm0 = 0, rest = 0;
    for (int64_t b = 0; b < B; b++) {
        norm0 += norm(rstd[b * Tn]);
        for (int64_t t = 1; t < Tn; t++) rest += norm(rstd[b * Tn + t]);
    }
    out[0] = Tn > 1 && rest > 0 ? float((norm0 / B) / (rest / double(B * (Tn - 1)))) : 0.f;
}

// The median by a radix select on the bits of |x| (for non-negative floats, integer order is float order): a
// histogram of the top 16 bits finds the bucket holding the median, and only that bucket is sorted. One pass
// instead of nth_element's several over the whole row block.
template <typename T> void abs_max_median(float* out, const T* x, int64_t n) {
    using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    constexpr int kShift = int(8 * sizeof(T)) - 16;
    std::vector<uint32_t> hist(size_t(1) << 16, 0);
    T mx = 0;
    for (int64_t i = 0; i < n; i++) {
        const T a = std::abs(x[i]);
        mx = std::max(mx, a);
        hist[std::bit_cast<Bits>(a) >> kShift]++;
    }
    const int64_t rank = (n - 1) / 2;
    int64_t before = 0;
    size_t bucket = 0;
    while (before + hist[bucket] <= rank) before += hist[bucket++];
    std::vector<T> in_bucket;
    in_bucket.reserve(hist[bucket]);
    for (int64_t i = 0; i < n; i++) {
        const T a = std::abs(x[i]);
        if ((std::bit_cast<Bits>(a) >> kShift) == bucket) in_bucket.push_back(a);
    }
    const auto mid = in_bucket.begin() + (rank - before);
    std::nth_element(in_bucket.begin(), mid, in_bucket.end());
    out[0] = float(mx);
    out[1] = float(*mid);
}

#define SL_INSTANTIATE(T)                                                                                  \
    template void attn_mass<T>(float*, const T*, const T*, const int*, int, const AttnSpec&);              \
    template void attn_map<T>(float*, int64_t, const T*, const T*, const AttnSpec&);                       \
    template void position_std<T>(float*, int64_t, const T*, int64_t, int64_t, int64_t);                   \
    template void token0_stats<T>(float*, const T*, int64_t, int64_t, int64_t);                            \
    template void token0_norm_ratio<T>(float*, const T*, int64_t, int64_t, float);                         \
    template void abs_max_median<T>(float*, const T*, int64_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)

}  // namespace sinklab::cpu
