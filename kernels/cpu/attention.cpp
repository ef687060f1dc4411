// Causal attention on the fused qkv buffer, forward and backward, without a T x T buffer: the forward keeps
// each query row's log-sum-exp and the backward recomputes the weights from it.
//
// Both directions work on blocks of kR query rows of one head at a time, so that the two products per block
// are small register-tiled GEMMs: scores against keys packed transposed (Kt [hd][keys], vectorized over
// keys), and weighted sums of rows packed with hd padded to whole vectors (V, K, dK, dV [keys][HDp]).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_kernels.h"

// Without AVX-512 (-DSINKLAB_NATIVE=OFF builds) GCC notes that 64-byte vectors pass differently than under it; these
// helpers are internal to this file, so no call crosses that ABI.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace sinklab::cpu {
namespace {

// 64 bytes of T (an AVX-512 register; the compiler splits it on narrower machines), unaligned.
template <typename T> struct VecOf { typedef T type __attribute__((vector_size(64), aligned(sizeof(T)))); };
template <typename T> using Vec = typename VecOf<T>::type;
template <typename T> constexpr int64_t kLanes = 64 / sizeof(T);
template <typename T> constexpr int64_t kChunk = 4 * kLanes<T>;  // key columns per register tile of scores
constexpr int kR = 4;                                            // query rows per block

template <typename T> Vec<T> load(const T* p) {
    Vec<T> v;
    std::memcpy(&v, p, sizeof(v));
    return v;
}
template <typename T> void store(T* p, Vec<T> v) { std::memcpy(p, &v, sizeof(v)); }

// z[r][j0 + j] = sum_d a[r][d] Bt[d][j0 + j] for r < kR, j < NC vectors: the accumulators stay in registers.
template <typename T, int NC>
void scores_tile(T* z, int64_t ldz, const T* a, int64_t lda, const T* Bt, int64_t ld, int64_t hd, int64_t j0) {
    constexpr int64_t L = kLanes<T>;
    Vec<T> acc[kR][NC] = {};
    for (int64_t d = 0; d < hd; d++) {
        Vec<T> b[NC];
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) b[c] = load(Bt + d * ld + j0 + c * L);
#pragma GCC unroll 4
        for (int r = 0; r < kR; r++) {
            const T ar = a[r * lda + d];
#pragma GCC unroll 4
            for (int c = 0; c < NC; c++) acc[r][c] += ar * b[c];
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < kR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NC; c++) store(z + r * ldz + j0 + c * L, acc[r][c]);
}

// z[r][j] = sum_d a[r][d] Bt[d][j] for r < kR and j < round_up(n, lanes): a [kR][lda], Bt [hd][ld] (zero
// padded up to ld), z [kR][ldz]. Wide tiles first, then one vector at a time so that little past n is computed.
template <typename T>
void scores(T* z, int64_t ldz, const T* a, int64_t lda, const T* Bt, int64_t ld, int64_t hd, int64_t n) {
    int64_t j0 = 0;
    for (; j0 + kChunk<T> <= n; j0 += kChunk<T>) scores_tile<T, 4>(z, ldz, a, lda, Bt, ld, hd, j0);
    for (; j0 < n; j0 += kLanes<T>) scores_tile<T, 1>(z, ldz, a, lda, Bt, ld, hd, j0);
}

// out[r] = sum_{j<n} w[r][j] B[j] for r < kR: w [kR][ldw], B [n][NV lanes], out [kR][NV lanes].
template <typename T, int NV> void weighted_sum(T* out, const T* w, int64_t ldw, const T* B, int64_t n) {
    constexpr int64_t L = kLanes<T>;
    Vec<T> acc[kR][NV] = {};
    for (int64_t j = 0; j < n; j++) {
        Vec<T> b[NV];
#pragma GCC unroll 16
        for (int v = 0; v < NV; v++) b[v] = load(B + j * NV * L + v * L);
#pragma GCC unroll 4
        for (int r = 0; r < kR; r++) {
            const T wr = w[r * ldw + j];
#pragma GCC unroll 16
            for (int v = 0; v < NV; v++) acc[r][v] += wr * b[v];
        }
    }
    for (int r = 0; r < kR; r++)
        for (int v = 0; v < NV; v++) store(out + (r * NV + v) * L, acc[r][v]);
}

// dst[j] += sum_r w[r][j] src[r] for j < n: w [kR][ldw], src [kR][NV lanes], dst [n][NV lanes].
template <typename T, int NV> void accumulate_rows(T* dst, const T* w, int64_t ldw, const T* src, int64_t n) {
    constexpr int64_t L = kLanes<T>;
    Vec<T> s[kR][NV];
    for (int r = 0; r < kR; r++)
        for (int v = 0; v < NV; v++) s[r][v] = load(src + (r * NV + v) * L);
    for (int64_t j = 0; j < n; j++) {
        Vec<T> acc[NV];
#pragma GCC unroll 16
        for (int v = 0; v < NV; v++) acc[v] = load(dst + j * NV * L + v * L);
#pragma GCC unroll 4
        for (int r = 0; r < kR; r++) {
            const T wr = w[r * ldw + j];
#pragma GCC unroll 16
            for (int v = 0; v < NV; v++) acc[v] += wr * s[r][v];
        }
#pragma GCC unroll 16
        for (int v = 0; v < NV; v++) store(dst + j * NV * L + v * L, acc[v]);
    }
}

// The keys query row t may see: [t, t] when isolated, else [0, t].
inline int64_t first_key(const AttnSpec& s, int64_t t) { return s.isolated(int(t)) ? t : 0; }

// Zeroes row[j] for j in [0, n) outside [j0, j1].
template <typename T> void mask_outside(T* row, int64_t j0, int64_t j1, int64_t n) {
    std::fill(row, row + j0, T(0));
    if (j1 + 1 < n) std::fill(row + j1 + 1, row + n, T(0));
}

// Where one sequence's rows and one kv group's heads live in qkv [B, Tn, W].
struct Layout {
    int64_t Tn, W, hd, H, Hkv, rep;
    explicit Layout(const AttnSpec& s) : Tn(s.T), W(s.qkv_width()), hd(s.hd), H(s.H), Hkv(s.Hkv), rep(s.H / s.Hkv) {}
    int64_t row(int64_t b, int64_t t) const { return (b * Tn + t) * W; }
    int64_t q(int64_t h) const { return h * hd; }
    int64_t k(int64_t g) const { return (H + g) * hd; }
    int64_t v(int64_t g) const { return (H + Hkv + g) * hd; }
};

// Packs rows [0, n) of head slice `off` of sequence b: transposed into Xt [hd][ld] (columns [n, ld) zeroed),
// and/or row-wise into Xp [n][HDp] (lanes [hd, HDp) zeroed). Either output may be null.
template <typename T>
void pack(T* Xt, int64_t ld, T* Xp, int64_t HDp, const T* qkv, const Layout& ly, int64_t b, int64_t off, int64_t n) {
    const int64_t hd = ly.hd;
    const T* x = qkv + ly.row(b, 0) + off;  // row j at x + j * W
    if (Xt) {
        // In blocks of one vector of rows, d outer: the stores stay contiguous and the rows read stay in L1.
        for (int64_t j0 = 0; j0 < n; j0 += kLanes<T>) {
            const int64_t j1 = std::min(n, j0 + kLanes<T>);
            for (int64_t d = 0; d < hd; d++)
                for (int64_t j = j0; j < j1; j++) Xt[d * ld + j] = x[j * ly.W + d];
        }
        for (int64_t d = 0; d < hd; d++) std::fill(Xt + d * ld + n, Xt + (d + 1) * ld, T(0));
    }
    if (Xp)
        for (int64_t j = 0; j < n; j++) {
            std::copy(x + j * ly.W, x + j * ly.W + hd, Xp + j * HDp);
            std::fill(Xp + j * HDp + hd, Xp + (j + 1) * HDp, T(0));
        }
}

// Copies rows t .. t+kR-1 of one head into a [kR][HDp] tile, times f, lanes past hd zeroed: row i of the
// head starts at x + i * stride. Rows past t_end repeat row t_end - 1 (computed, then ignored).
template <typename T>
void load_tile(T* tile, int64_t HDp, const T* x, int64_t stride, int64_t hd, int64_t t, int64_t t_end, T f) {
    for (int r = 0; r < kR; r++) {
        const T* xr = x + std::min(t + r, t_end - 1) * stride;
        for (int64_t d = 0; d < hd; d++) tile[r * HDp + d] = xr[d] * f;
        std::fill(tile + r * HDp + hd, tile + (r + 1) * HDp, T(0));
    }
}

// Turns row z[0, n) of scores into weights in place (zero outside the visible keys [j0, j1]). Returns the
// factor the weighted sum of values still needs and writes the row's log-sum-exp.
template <typename T>
T weights_fwd(T* z, int64_t j0, int64_t j1, int64_t n, const AttnSpec& s, const T* sink, int64_t h, T* lse) {
    mask_outside(z, j0, j1, n);
    if (s.score == AttnScore::Sigmoid) {
        const T bias = T(s.sigmoid_bias);
#pragma omp simd
        for (int64_t j = j0; j <= j1; j++) z[j] = sigmoid(z[j] + bias);
        *lse = T(0);
        return T(1);
    }
    const bool has_sink = s.score != AttnScore::Softmax;
    const T sl = s.score == AttnScore::SinkLogit ? sink[h] : T(0);
    const T mx = has_sink ? std::max(sl, max_of(z + j0, j1 - j0 + 1)) : max_of(z + j0, j1 - j0 + 1);
    T sum = has_sink ? exp_v(sl - mx) : T(0);
#pragma omp simd reduction(+ : sum)
    for (int64_t j = j0; j <= j1; j++) {
        z[j] = exp_v(z[j] - mx);
        sum += z[j];
    }
    *lse = T(mx + std::log(sum));
    return T(1) / sum;
}

template <typename T, int NV> void attention_fwd_nv(T* o, T* lse, const T* qkv, const T* sink, const AttnSpec& s) {
    const Layout ly(s);
    const int64_t Tn = s.T, hd = s.hd, HDp = NV * kLanes<T>, ld = round_up(Tn, kChunk<T>);
    const int64_t ntasks = int64_t(s.B) * s.Hkv;
#pragma omp parallel
    {
        T* Kt = thread_scratch<T>(size_t(hd * ld + Tn * HDp + kR * ld + 2 * kR * HDp));  // [hd][ld]
        T* Vp = Kt + hd * ld;                                                            // [Tn][HDp]
        T* z = Vp + Tn * HDp;                                                            // [kR][ld]
        T* qt = z + kR * ld;                                                             // [kR][HDp]
        T* ot = qt + kR * HDp;                                                           // [kR][HDp]
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < ntasks; task++) {
            const int64_t b = task / s.Hkv, g = task % s.Hkv;
            pack(Kt, ld, static_cast<T*>(nullptr), 0, qkv, ly, b, ly.k(g), Tn);
            pack(static_cast<T*>(nullptr), 0, Vp, HDp, qkv, ly, b, ly.v(g), Tn);
            for (int64_t h = g * ly.rep; h < (g + 1) * ly.rep; h++)
                for (int64_t t = 0; t < Tn; t += kR) {
                    const int64_t n = std::min(t + kR, Tn);  // keys any row of the block may see
                    load_tile(qt, HDp, qkv + ly.row(b, 0) + ly.q(h), ly.W, hd, t, Tn, T(s.scale));
                    scores(z, ld, qt, HDp, Kt, ld, hd, n);
                    T norm[kR];
                    T row_lse[kR];
                    for (int r = 0; r < kR; r++) {
                        const int64_t tr = std::min(t + r, Tn - 1);
                        norm[r] = weights_fwd(z + r * ld, first_key(s, tr), tr, n, s, sink, h, &row_lse[r]);
                    }
                    weighted_sum<T, NV>(ot, z, ld, Vp, n);
                    for (int r = 0; r < kR && t + r < Tn; r++) {
                        T* orow = o + ((b * Tn + t + r) * s.H + h) * hd;
                        for (int64_t d = 0; d < hd; d++) orow[d] = ot[r * HDp + d] * norm[r];
                        lse[(b * s.H + h) * Tn + t + r] = row_lse[r];
                    }
                }
        }
    }
}

template <typename T, int NV>
void attention_bwd_nv(T* dqkv, T* dsink, const T* dout, const T* o, const T* lse, const T* qkv, const T* sink,
                      const AttnSpec& s, const T* rowdot) {
    const Layout ly(s);
    const int64_t Tn = s.T, hd = s.hd, HDp = NV * kLanes<T>, ld = round_up(Tn, kChunk<T>);
    const int64_t ntasks = int64_t(s.B) * s.Hkv;
    std::vector<double> dsink_part(size_t(s.B) * s.H, 0.0);  // [B, H], summed over b in order below
#pragma omp parallel
    {
        T* Kt = thread_scratch<T>(size_t(2 * hd * ld + 3 * Tn * HDp + 2 * kR * ld + 3 * kR * HDp));  // [hd][ld]
        T* Vt = Kt + hd * ld;                                                                        // [hd][ld]
        T* Kp = Vt + hd * ld;                                                                        // [Tn][HDp]
        T* dK = Kp + Tn * HDp;                                                                       // [Tn][HDp]
        T* dV = dK + Tn * HDp;                                                                       // [Tn][HDp]
        T* P = dV + Tn * HDp;                                                                        // [kR][ld] weights
        T* dZ = P + kR * ld;                                                                         // [kR][ld] dL/dz
        T* qt = dZ + kR * ld;    // [kR][HDp] scale * q
        T* gt = qt + kR * HDp;   // [kR][HDp] dout
        T* dqt = gt + kR * HDp;  // [kR][HDp]
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < ntasks; task++) {
            const int64_t b = task / s.Hkv, g = task % s.Hkv;
            pack(Kt, ld, Kp, HDp, qkv, ly, b, ly.k(g), Tn);
            pack(Vt, ld, static_cast<T*>(nullptr), 0, qkv, ly, b, ly.v(g), Tn);
            std::fill(dK, dK + 2 * Tn * HDp, T(0));
            for (int64_t h = g * ly.rep; h < (g + 1) * ly.rep; h++) {
                const T sl = s.score == AttnScore::SinkLogit ? sink[h] : T(0);
                double dsink_h = 0;
                for (int64_t t = 0; t < Tn; t += kR) {
                    const int64_t n = std::min(t + kR, Tn);
                    load_tile(qt, HDp, qkv + ly.row(b, 0) + ly.q(h), ly.W, hd, t, Tn, T(s.scale));
                    load_tile(gt, HDp, dout + (b * Tn * s.H + h) * hd, s.H * hd, hd, t, Tn, T(1));
                    scores(P, ld, qt, HDp, Kt, ld, hd, n);
                    scores(dZ, ld, gt, HDp, Vt, ld, hd, n);
                    for (int r = 0; r < kR; r++) {
                        T* p = P + r * ld;
                        T* dz = dZ + r * ld;
                        const int64_t tr = t + r;
                        if (tr >= Tn) {  // a repeated row: it must add nothing to dK, dV
                            std::fill(p, p + n, T(0));
                            std::fill(dz, dz + n, T(0));
                            continue;
                        }
                        const int64_t j0 = first_key(s, tr);
                        mask_outside(p, j0, tr, n);
                        mask_outside(dz, j0, tr, n);
                        if (s.score == AttnScore::Sigmoid) {
                            const T bias = T(s.sigmoid_bias);
#pragma omp simd
                            for (int64_t j = j0; j <= tr; j++) {
                                p[j] = sigmoid(p[j] + bias);
                                dz[j] *= p[j] * (T(1) - p[j]);
                            }
                            continue;
                        }
                        // D = sum_j p_j dp_j = dout . o
                        T D = 0;
                        if (rowdot) {
                            D = rowdot[(b * s.H + h) * Tn + tr];
                        } else {
                            const T* orow = o + ((b * Tn + tr) * s.H + h) * hd;
                            for (int64_t d = 0; d < hd; d++) D += gt[r * HDp + d] * orow[d];
                        }
                        const T row_lse = T(lse[(b * s.H + h) * Tn + tr]);
#pragma omp simd
                        for (int64_t j = j0; j <= tr; j++) {
                            p[j] = exp_v(p[j] - row_lse);
                            dz[j] = p[j] * (dz[j] - D);
                        }
                        if (s.score == AttnScore::SinkLogit) dsink_h -= double(exp_v(sl - row_lse) * D);
                    }
                    // dq = scale sum_j dz_j k_j; dk_j += dz_j (scale q); dv_j += p_j dout
                    weighted_sum<T, NV>(dqt, dZ, ld, Kp, n);
                    for (int r = 0; r < kR && t + r < Tn; r++) {
                        T* dq = dqkv + ly.row(b, t + r) + ly.q(h);
                        for (int64_t d = 0; d < hd; d++) dq[d] = dqt[r * HDp + d] * T(s.scale);
                    }
                    accumulate_rows<T, NV>(dK, dZ, ld, qt, n);
                    accumulate_rows<T, NV>(dV, P, ld, gt, n);
                }
                dsink_part[size_t(b * s.H + h)] = dsink_h;
            }
            for (int64_t j = 0; j < Tn; j++) {
                std::copy(dK + j * HDp, dK + j * HDp + hd, dqkv + ly.row(b, j) + ly.k(g));
                std::copy(dV + j * HDp, dV + j * HDp + hd, dqkv + ly.row(b, j) + ly.v(g));
            }
        }
    }
    if (s.score == AttnScore::SinkLogit)
        for (int64_t h = 0; h < s.H; h++)
            for (int64_t b = 0; b < s.B; b++) dsink[h] += T(dsink_part[size_t(b * s.H + h)]);
}

constexpr int64_t kMaxHeadDim = AttnSpec::kMaxHeadDim;

// Calls f with the number of vectors NV (a power of two) that holds one head of hd values: each NV is its own
// instantiation with the per-head accumulators in registers.
template <typename T, typename F> void with_head_vectors(int64_t hd, F&& f) {
    SL_REQUIRE(hd <= kMaxHeadDim,
               "head_dim {} is larger than the CPU attention kernel's limit of {}: raise model.n_head or lower "
               "model.d_model",
               hd, kMaxHeadDim);
    static_assert(kMaxHeadDim <= 16 * kLanes<double>);
    const int64_t nv = (hd + kLanes<T> - 1) / kLanes<T>;
    if (nv <= 1) return f(std::integral_constant<int, 1>{});
    if (nv <= 2) return f(std::integral_constant<int, 2>{});
    if (nv <= 4) return f(std::integral_constant<int, 4>{});
    if constexpr (kMaxHeadDim > 4 * kLanes<T>) {
        if (nv <= 8) return f(std::integral_constant<int, 8>{});
    }
    if constexpr (kMaxHeadDim > 8 * kLanes<T>) f(std::integral_constant<int, 16>{});
}

}  // namespace

// o [B, Tn, H, hd]; lse [B, H, Tn]; qkv [B, Tn, W]; sink [H] (SinkLogit only)
template <typename T> void attention_fwd(T* o, T* lse, const T* qkv, const T* sink, const AttnSpec& s) {
    with_head_vectors<T>(s.hd, [&](auto nv) { attention_fwd_nv<T, decltype(nv)::value>(o, lse, qkv, sink, s); });
}

// dqkv [B, Tn, W] (=); dsink [H] (+=, SinkLogit only); dout, o [B, Tn, H, hd]; rowdot [B, H, Tn] (optional)
template <typename T>
void attention_bwd(T* dqkv, T* dsink, const T* dout, const T* o, const T* lse, const T* qkv, const T* sink,
                   const AttnSpec& s, const T* rowdot) {
    with_head_vectors<T>(s.hd, [&](auto nv) {
        attention_bwd_nv<T, decltype(nv)::value>(dqkv, dsink, dout, o, lse, qkv, sink, s, rowdot);
    });
}

#define SL_INSTANTIATE(T)                                                                                     \
    template void attention_fwd<T>(T*, T*, const T*, const T*, const AttnSpec&);                              \
    template void attention_bwd<T>(T*, T*, const T*, const T*, const T*, const T*, const T*, const AttnSpec&, \
                                   const T*);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
