// The sink-metric reductions against known answers (hand-built attention, planted outliers, uniform attention
// over i.i.d. values) and against explicit attention matrices.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "test_util.h"

namespace sinklab::test {
namespace {

struct Buf {
    Backend& be;
    Tensor t;
    Buf(Backend& b, DType d, std::initializer_list<int64_t> dims) : be(b), t(nullptr, d, dims) {
        t.data = be.alloc(t.bytes());
    }
    ~Buf() { be.release(t.data); }
    void set(const std::vector<double>& v) { be.write(t, v.data(), DType::F64); }
    std::vector<double> get() const {
        std::vector<double> v(size_t(t.numel()));
        be.read(v.data(), DType::F64, t);
        return v;
    }
};


std::vector<double> normal(size_t n, uint64_t seed, double sd = 1.0) {
    sinklab::Rng r(seed, 1);
    std::vector<double> v(n);
    for (double& x : v) x = r.normal() * sd;
    return v;
}

// Every query row i >= 1 puts exactly w on key 0: with k_0 = (1, 0, ...), every other key 0 and
// q_i = (c_i, 0, ...), row i's weight on key 0 is e^{s c_i} / (e^{s c_i} + i), so c_i = log(w i / (1 - w)) / s.
TEST(SinkOps, AttentionMassOnKeyZeroIsTheBuiltInWeight) {
    auto be = make_cpu_backend(DType::F64, 1);
    const int B = 2, T = 12, H = 2, hd = 4;
    const AttnSpec s = attn_spec(B, T, H, H, hd);
    const double w = 0.37;
    std::vector<double> qkv(size_t(B) * T * s.qkv_width(), 0.0);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            qkv[(size_t(b) * T) * s.qkv_width() + (H + h) * hd] = 1.0;  // k_0 of kv head h
            for (int i = 1; i < T; i++)
                qkv[(size_t(b) * T + i) * s.qkv_width() + h * hd] = std::log(w * i / (1 - w)) / s.scale;
        }
    Buf x(*be, DType::F64, {B, T, s.qkv_width()}), o(*be, DType::F64, {B, T, H, hd}), lse(*be, DType::F64, {B, H, T}),
        mass(*be, DType::F32, {H, 2});
    x.set(qkv);
    be->attention_fwd(o.t, lse.t, x.t, Tensor(), s);
    be->attn_mass(mass.t, x.t, lse.t, {0, 5}, s);
    const std::vector<double> m = mass.get();
    // Key 0 is seen by every row: row 0 puts all of its weight there, rows 1..T-1 put w.
    for (int h = 0; h < H; h++) EXPECT_NEAR(m[h * 2], (1.0 + (T - 1) * w) / T, 1e-6) << h;
    // Key 5 (a zero key) gets the rest of each row's mass spread over its other keys: 1 from row 5 (which sees
    // 0..5) minus w, shared by its 5 zero keys, and so on; the same formula, summed by hand.
    double key5 = 0;
    for (int i = 5; i < T; i++) key5 += (1 - w) / i;
    for (int h = 0; h < H; h++) EXPECT_NEAR(m[h * 2 + 1], key5 / (T - 5), 1e-6) << h;
}

// attn_mass and attn_map from the saved log-sum-exp equal the same numbers read off explicit attention
// matrices, for every score kind, GQA and isolated rows.
TEST(SinkOps, MassFromLseEqualsTheExplicitMatrix) {
    for (AttnScore score : {AttnScore::Softmax, AttnScore::SinkLogit, AttnScore::OffByOne, AttnScore::Sigmoid}) {
        auto be = make_cpu_backend(DType::F64, 2);
        const int B = 3, T = 70, H = 4, Hkv = 2, hd = 8;
        AttnSpec s = attn_spec(B, T, H, Hkv, hd);
        s.score = score;
        s.sigmoid_bias = -1.0f;
        s.n_isolate = 2;
        s.isolate[0] = 9;
        s.isolate[1] = 30;
        const int W = s.qkv_width();
        const std::vector<double> qkv = normal(size_t(B) * T * W, 3, 1.5), sink = normal(H, 4);
        Buf x(*be, DType::F64, {B, T, W}), o(*be, DType::F64, {B, T, H, hd}), lse(*be, DType::F64, {B, H, T}),
            sk(*be, DType::F64, {H});
        x.set(qkv);
        sk.set(sink);
        be->attention_fwd(o.t, lse.t, x.t, score == AttnScore::SinkLogit ? sk.t : Tensor(), s);

        // The explicit weights A[b][h][i][j].
        auto A = [&](int b, int h, int i, int j) {
            const bool iso = i == 9 || i == 30;
            auto visible = [&](int jj) { return iso ? jj == i : jj <= i; };
            if (!visible(j)) return 0.0;
            auto z = [&](int jj) {
                double d = 0;
                for (int c = 0; c < hd; c++)
                    d += qkv[(size_t(b) * T + i) * W + h * hd + c] *
                         qkv[(size_t(b) * T + jj) * W + (H + h / 2) * hd + c];
                return d * s.scale;
            };
            if (score == AttnScore::Sigmoid) return 1.0 / (1.0 + std::exp(-(z(j) - 1.0)));
            double denom = score == AttnScore::SinkLogit ? std::exp(sink[h]) : score == AttnScore::OffByOne ? 1.0 : 0.0;
            for (int jj = 0; jj < T; jj++)
                if (visible(jj)) denom += std::exp(z(jj));
            return std::exp(z(j)) / denom;
        };
        const std::vector<int> pos = {0, 9, 31, 69};
        Buf mass(*be, DType::F32, {H, int64_t(pos.size())}), map(*be, DType::F32, {64, 64});
        be->attn_mass(mass.t, x.t, lse.t, pos, s);
        be->attn_map(map.t, x.t, lse.t, s);
        const std::vector<double> m = mass.get(), mp = map.get();
        for (int h = 0; h < H; h++)
            for (size_t k = 0; k < pos.size(); k++) {
                const int p = pos[k];
                double sum = 0;
                int n = 0;
                for (int b = 0; b < B; b++)
                    for (int i = p; i < T; i++)
                        if (i == p || (i != 9 && i != 30)) sum += A(b, h, i, p), n++;
                EXPECT_NEAR(m[h * pos.size() + k], sum / n, 1e-6) << int(score) << " h " << h << " p " << p;
            }
        for (int i = 0; i < 64; i += 7)
            for (int j = 0; j < 64; j += 3) {
                double want = 0;
                for (int h = 0; h < H; h++) want += A(0, h, i, j) / H;
                EXPECT_NEAR(mp[i * 64 + j], want, 1e-6) << int(score) << " map " << i << "," << j;
            }
    }
}

// An isolated row puts all of its weight on itself: its own position's mass includes a one-hot row.
TEST(SinkOps, IsolatedRowIsOneHot) {
    auto be = make_cpu_backend(DType::F64, 1);
    AttnSpec s = attn_spec(1, 16, 2, 2, 4);
    s.n_isolate = 1;
    s.isolate[0] = 7;
    Buf x(*be, DType::F64, {1, 16, s.qkv_width()}), o(*be, DType::F64, {1, 16, 2, 4}), lse(*be, DType::F64, {1, 2, 16}),
        map(*be, DType::F32, {16, 16});
    x.set(normal(size_t(16) * s.qkv_width(), 8));
    be->attention_fwd(o.t, lse.t, x.t, Tensor(), s);
    be->attn_map(map.t, x.t, lse.t, s);
    const std::vector<double> m = map.get();
    for (int j = 0; j < 16; j++) EXPECT_NEAR(m[7 * 16 + j], j == 7 ? 1.0 : 0.0, 1e-6) << j;
}

// Uniform attention (q = 0) over i.i.d. N(0,1) values: position t's output averages t+1 values, so its
// channel std falls like 1/sqrt(t+1) (the variance discrepancy of causal aggregation).
TEST(SinkOps, UniformAttentionStdFallsLikeInverseSqrt) {
    auto be = make_cpu_backend(DType::F64, 2);
    const int B = 8, T = 32, H = 8, hd = 64;
    const AttnSpec s = attn_spec(B, T, H, H, hd);
    std::vector<double> qkv = normal(size_t(B) * T * s.qkv_width(), 11);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            std::fill_n(qkv.begin() + (size_t(b) * T + t) * s.qkv_width(), H * hd, 0.0);  // q = 0
    Buf x(*be, DType::F64, {B, T, s.qkv_width()}), o(*be, DType::F64, {B, T, H, hd}), lse(*be, DType::F64, {B, H, T}),
        st(*be, DType::F32, {T});
    x.set(qkv);
    be->attention_fwd(o.t, lse.t, x.t, Tensor(), s);
    be->position_std(st.t, o.t.view({B, T, H * hd}));
    const std::vector<double> sd = st.get();
    // B x 512 channels per position: the estimate is within a few percent of sigma / sqrt(t+1).
    for (int t = 0; t < T; t++) EXPECT_NEAR(sd[t] * std::sqrt(t + 1.0), 1.0, 0.06) << t;
    EXPECT_GT(sd[0] / sd[T - 1], 4.5);  // sqrt(32) = 5.7
}

// One planted outlier channel at token 0: dominance = 50 / mean|x_0| by hand; the residual-stream ratios too (the
// norm ratio from the rstd an RMSNorm of x saves).
TEST(SinkOps, PlantedOutlierGivesTheHandComputedRatios) {
    auto be = make_cpu_backend(DType::F32, 1);
    const int B = 3, T = 5, D = 40;
    const float eps = 1e-2f;  // large, so that forgetting to take it out of rstd shows
    std::vector<double> x(size_t(B) * T * D);
    sinklab::Rng r(2, 2);
    for (double& v : x) v = r.uniform() < 0.5 ? -1.0 : 1.0;  // |x| = 1 everywhere ...
    for (int b = 0; b < B; b++) x[size_t(b) * T * D + 17] = -50.0;  // ... but channel 17 of token 0
    Buf xt(*be, DType::F32, {B, T, D}), st(*be, DType::F32, {3}), mm(*be, DType::F32, {2}),
        normed(*be, DType::F32, {B * T, D}), g(*be, DType::F32, {D}), rstd(*be, DType::F32, {B, T}),
        ratio(*be, DType::F32, {1});
    xt.set(x);
    g.set(std::vector<double>(D, 1.0));
    be->token0_stats(st.t, xt.t);
    be->abs_max_median(mm.t.view({1, 2}), {xt.t.rows(0, 1).view({T, D})});
    be->rmsnorm_fwd(normed.t, rstd.t.view({B * T}), xt.t.view({B * T, D}), g.t, eps);
    be->token0_norm_ratio(ratio.t, rstd.t, eps);
    const std::vector<double> s = st.get(), m = mm.get();
    EXPECT_NEAR(s[0], 50.0 / ((D - 1 + 50.0) / D), 1e-4);                             // dominance
    EXPECT_EQ(s[1], 50.0);                                                           // max |x| at token 0
    EXPECT_EQ(s[2], 17.0);                                                           // its channel
    EXPECT_NEAR(ratio.get()[0], std::sqrt(D - 1 + 2500.0) / std::sqrt(double(D)), 1e-4);  // ||h_0|| / ||h_t||
    EXPECT_EQ(m[0], 50.0);
    EXPECT_EQ(m[1], 1.0);  // massive = 50
}

// Every reduction against a naive formula on random data, in f32 and f64.
TEST(SinkOps, ReductionsMatchNaiveFormulas) {
    for (DType dt : {DType::F32, DType::F64}) {
        auto be = make_cpu_backend(dt, 2);
        const int B = 4, T = 9, D = 33;
        const std::vector<double> x = normal(size_t(B) * T * D, 5);
        const float eps = 0.3f;
        const std::vector<double> rs = normal(size_t(B) * T, 6, 0.4);
        Buf xt(*be, dt, {B, T, D}), st(*be, DType::F32, {3}), ps(*be, DType::F32, {6}), mm(*be, DType::F32, {B, 2});
        Buf rstd(*be, dt, {B, T}), ratio(*be, DType::F32, {1});
        xt.set(x);
        std::vector<double> rstd_in;  // rstd of rows whose mean square is 0.5 + |r|: 1/rstd^2 - eps = 0.5 + |r|
        for (double v : rs) rstd_in.push_back(1.0 / std::sqrt(0.5 + std::abs(v) + eps));
        rstd.set(rstd_in);
        be->token0_stats(st.t, xt.t);
        be->token0_norm_ratio(ratio.t, rstd.t, eps);
        be->position_std(ps.t, xt.t);
        std::vector<Tensor> sequences;  // the median of each sequence's [T, D] rows, in one call
        for (int b = B - 1; b >= 0; b--) sequences.push_back(xt.t.rows(b, 1).view({T, D}));
        be->abs_max_median(mm.t, sequences);
        const std::vector<double> s = st.get(), p = ps.get(), m = mm.get();
        auto row = [&](int b, int t) { return x.begin() + (size_t(b) * T + t) * D; };
        double dom = 0, mx0 = 0, n0 = 0, nr = 0;
        int arg = 0;
        for (int b = 0; b < B; b++) {
            double mx = 0, sa = 0;
            int a = 0;
            for (int d = 0; d < D; d++) {
                const double v = std::abs(row(b, 0)[d]);
                if (v > mx) mx = v, a = d;
                sa += v;
            }
            dom += mx / (sa / D);
            if (mx > mx0) mx0 = mx, arg = a;
            for (int t = 0; t < T; t++) (t == 0 ? n0 : nr) += std::sqrt(0.5 + std::abs(rs[size_t(b) * T + t]));
        }
        EXPECT_NEAR(s[0], dom / B, 1e-5 * dom);
        EXPECT_NEAR(s[1], mx0, 1e-5);
        EXPECT_EQ(s[2], arg);
        EXPECT_NEAR(ratio.get()[0], (n0 / B) / (nr / (B * (T - 1))), 1e-5);
        for (int t = 0; t < 6; t++) {
            double acc = 0;
            for (int b = 0; b < B; b++) {
                double mean = 0, var = 0;
                for (int d = 0; d < D; d++) mean += row(b, t)[d] / D;
                for (int d = 0; d < D; d++) var += (row(b, t)[d] - mean) * (row(b, t)[d] - mean) / D;
                acc += std::sqrt(var);
            }
            EXPECT_NEAR(p[t], acc / B, 1e-5) << t;
        }
        for (int b = 0; b < B; b++) {
            std::vector<double> a;
            for (int i = 0; i < T * D; i++) a.push_back(std::abs(row(b, 0)[i]));
            std::sort(a.begin(), a.end());
            const size_t k = size_t(B - 1 - b);  // the order of `sequences`
            EXPECT_NEAR(m[2 * k], a.back(), 1e-6) << b;
            EXPECT_NEAR(m[2 * k + 1], a[(a.size() - 1) / 2], 1e-6) << b;
        }
    }
}

}  // namespace
}  // namespace sinklab::test
