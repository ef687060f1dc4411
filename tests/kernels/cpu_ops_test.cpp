// The CPU kernels against independent references: float64 central finite differences for every gradient,
// naive formula implementations for forward values, the float instantiation against the double one, and
// the write (=) / accumulate (+=) contract checked by pre-filling the outputs.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "kernels/cpu/common.h"
#include "kernels/cpu/cpu_kernels.h"
#include "test_util.h"

namespace sinklab {
namespace {

using test::all_close;
using test::cast;
using test::minus;
using test::numeric_grad;
using test::Rng;
using test::Vec;
using test::weighted_sum;

constexpr double kGradTol = 1e-6;  // analytic vs numeric gradient, relative
constexpr double kF32Tol = 1e-5;   // float instantiation vs double, relative
constexpr double kFill = 123.0;    // pre-fill of outputs that must be overwritten

// Runs a generic lambda `[&](auto z) { using T = decltype(z); ... }` in float and in double; it returns its outputs
// as double vectors (one, or a tuple of several), and each float output must stay within kF32Tol of the double one.
template <typename F> void expect_float_tracks_double(F&& run) {
    const auto got = run(float{}), want = run(double{});
    if constexpr (std::is_same_v<std::decay_t<decltype(got)>, Vec>) {
        EXPECT_TRUE(all_close(got, want, kF32Tol));
    } else {
        [&]<size_t... I>(std::index_sequence<I...>) {
            (..., [&] { EXPECT_TRUE(all_close(std::get<I>(got), std::get<I>(want), kF32Tol)) << "output " << I; }());
        }(std::make_index_sequence<std::tuple_size_v<std::decay_t<decltype(got)>>>{});
    }
}

// ------------------------------------------------------------------------------------------------ exp

TEST(CpuOps, ExpMatchesStdExpToTwoUlp) {
    for (int i = 0; i <= 200000; i++) {
        const float x = -87.f + 175.f * float(i) / 200000.f;
        const double want = std::exp(double(x));
        ASSERT_LE(std::fabs(double(cpu::exp_v(x)) - want), 1.2e-7 * want) << "x = " << x;
    }
    EXPECT_EQ(cpu::exp_v(0.f), 1.f);
    EXPECT_TRUE(std::isnan(cpu::exp_v(NAN)));
    EXPECT_LE(cpu::exp_v(-1000.f), 1e-37f);
    EXPECT_GE(cpu::exp_v(-1000.f), 0.f);
}

// ------------------------------------------------------------------------------------------------ embedding

TEST(CpuOps, EmbeddingGathersRowsAndScattersGradients) {
    const int64_t N = 11, V = 7, C = 19;
    Rng rng(1);
    const std::vector<int32_t> ids = rng.ints(N, 0, int32_t(V) - 1);  // 11 ids over 7 rows: repeats
    Vec wte = rng.vec(V * C), w = rng.vec(N * C), out(N * C);
    cpu::embedding_fwd(out.data(), ids.data(), wte.data(), N, V, C);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) ASSERT_EQ(out[n * C + c], wte[ids[n] * C + c]);

    const Vec num = numeric_grad(wte, [&] {
        cpu::embedding_fwd(out.data(), ids.data(), wte.data(), N, V, C);
        return weighted_sum(w, out.data());
    });
    const Vec base = rng.vec(V * C);
    Vec dwte = base;
    cpu::embedding_bwd(dwte.data(), ids.data(), w.data(), N, V, C);
    EXPECT_TRUE(all_close(minus(dwte, base), num, kGradTol));

    auto run = [&](auto z) {
        using T = decltype(z);
        std::vector<T> o(N * C), d(V * C, T(0));
        const auto wt = cast<T>(wte), wf = cast<T>(w);
        cpu::embedding_fwd(o.data(), ids.data(), wt.data(), N, V, C);
        cpu::embedding_bwd(d.data(), ids.data(), wf.data(), N, V, C);
        return std::pair(cast<double>(o), cast<double>(d));
    };
    expect_float_tracks_double(run);
}

TEST(CpuOps, EmbeddingRejectsIdsOutsideTheVocabulary) {
    const std::vector<int32_t> ids = {0, 3, 7};
    Vec wte(7 * 2), out(3 * 2);
    EXPECT_THROW(cpu::embedding_fwd(out.data(), ids.data(), wte.data(), 3, 7, 2), Error);
    EXPECT_THROW(cpu::embedding_bwd(wte.data(), ids.data(), out.data(), 3, 7, 2), Error);
}

// ------------------------------------------------------------------------------------------------ rmsnorm

TEST(CpuOps, RmsnormMatchesFormulaAndFiniteDifferences) {
    const int64_t N = 9, C = 37;
    const float eps = 1e-5f;
    Rng rng(2);
    Vec x = rng.vec(N * C), g = rng.vec(C, 0.5, 1.5), w = rng.vec(N * C), out(N * C);
    Vec rstd(N);
    cpu::rmsnorm_fwd(out.data(), rstd.data(), x.data(), g.data(), N, C, eps);
    Vec want(N * C), want_rstd(N), got_rstd = cast<double>(rstd);
    for (int64_t n = 0; n < N; n++) {
        double ms = 0;
        for (int64_t c = 0; c < C; c++) ms += x[n * C + c] * x[n * C + c] / double(C);
        want_rstd[n] = 1.0 / std::sqrt(ms + double(eps));
        for (int64_t c = 0; c < C; c++) want[n * C + c] = x[n * C + c] * want_rstd[n] * g[c];
    }
    EXPECT_TRUE(all_close(out, want, 1e-13));
    EXPECT_TRUE(all_close(got_rstd, want_rstd, 1e-7));

    auto loss = [&] {
        cpu::rmsnorm_fwd(out.data(), rstd.data(), x.data(), g.data(), N, C, eps);
        return weighted_sum(w, out.data());
    };
    const Vec num_dx = numeric_grad(x, loss), num_dg = numeric_grad(g, loss);
    loss();
    const Vec base = rng.vec(C);
    Vec dx(N * C, kFill), dg = base;
    cpu::rmsnorm_bwd(dx.data(), dg.data(), w.data(), x.data(), g.data(), rstd.data(), N, C);
    EXPECT_TRUE(all_close(dx, num_dx, kGradTol));
    EXPECT_TRUE(all_close(minus(dg, base), num_dg, kGradTol));

    auto run = [&](auto z) {
        using T = decltype(z);
        const auto xt = cast<T>(x), gt = cast<T>(g), wt = cast<T>(w);
        std::vector<T> o(N * C), d(N * C), dgt(C, T(0));
        std::vector<T> r(N);
        cpu::rmsnorm_fwd(o.data(), r.data(), xt.data(), gt.data(), N, C, eps);
        cpu::rmsnorm_bwd(d.data(), dgt.data(), wt.data(), xt.data(), gt.data(), r.data(), N, C);
        return std::tuple(cast<double>(o), cast<double>(d), cast<double>(dgt));
    };
    expect_float_tracks_double(run);
}

TEST(CpuOps, RmsnormBackwardAccumulatesIntoDx) {
    const int64_t N = 5, C = 23;
    Rng rng(12);
    const Vec x = rng.vec(N * C), g = rng.vec(C, 0.5, 1.5), w = rng.vec(N * C), base = rng.vec(N * C);
    Vec out(N * C), rstd(N), dg(C, 0.0), written(N * C, kFill);
    cpu::rmsnorm_fwd(out.data(), rstd.data(), x.data(), g.data(), N, C, 1e-5f);
    cpu::rmsnorm_bwd(written.data(), dg.data(), w.data(), x.data(), g.data(), rstd.data(), N, C);
    Vec added = base;
    cpu::rmsnorm_bwd(added.data(), dg.data(), w.data(), x.data(), g.data(), rstd.data(), N, C, true);
    EXPECT_TRUE(all_close(minus(added, base), written, 1e-13));
}

// ------------------------------------------------------------------------------------------------ matmul

// The OpenBLAS that runs the GEMMs is the build CMake chose: its OpenMP build, whose GEMMs take our OpenMP threads,
// not the pthreads build that the system's default libopenblas.so.0 (or a dependency's) could have brought instead.
TEST(CpuOps, MatmulRunsOnOpenBlasOpenMpBuild) {
    if (!SINKLAB_OPENBLAS_OPENMP) GTEST_SKIP() << "built against OpenBLAS's pthreads build (cmake warned)";
    EXPECT_EQ(openblas_get_parallel(), 2) << "0: sequential, 1: pthreads, 2: OpenMP";
}

TEST(CpuOps, MatmulAddsTheResidual) {
    const int64_t N = 6, I = 9, O = 5;
    Rng rng(13);
    const Vec x = rng.vec(N * I), W = rng.vec(O * I), res = rng.vec(N * O);
    Vec want(res);
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < I; i++) want[n * O + o] += x[n * I + i] * W[o * I + i];
    Vec out(N * O, kFill);
    cpu::matmul_fwd(out.data(), x.data(), W.data(), N, I, O, res.data());
    EXPECT_TRUE(all_close(out, want, 1e-13));
    Vec in_place = res;
    cpu::matmul_fwd(in_place.data(), x.data(), W.data(), N, I, O, in_place.data());
    EXPECT_TRUE(all_close(in_place, want, 1e-13));
}

TEST(CpuOps, MatmulMatchesLoopsAndFiniteDifferences) {
    const int64_t N = 7, I = 13, O = 11;
    Rng rng(3);
    Vec x = rng.vec(N * I), W = rng.vec(O * I), w = rng.vec(N * O), out(N * O);
    cpu::matmul_fwd(out.data(), x.data(), W.data(), N, I, O);
    Vec want(N * O, 0.0);
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < I; i++) want[n * O + o] += x[n * I + i] * W[o * I + i];
    EXPECT_TRUE(all_close(out, want, 1e-13));

    auto loss = [&] {
        cpu::matmul_fwd(out.data(), x.data(), W.data(), N, I, O);
        return weighted_sum(w, out.data());
    };
    const Vec num_dx = numeric_grad(x, loss), num_dW = numeric_grad(W, loss);
    const Vec base = rng.vec(O * I);
    Vec dx(N * I, kFill), dW = base;
    cpu::matmul_bwd(dx.data(), dW.data(), w.data(), x.data(), W.data(), N, I, O);
    EXPECT_TRUE(all_close(dx, num_dx, kGradTol));
    EXPECT_TRUE(all_close(minus(dW, base), num_dW, kGradTol));
    // Without dx only dW moves, and it accumulates again.
    cpu::matmul_bwd(static_cast<double*>(nullptr), dW.data(), w.data(), x.data(), W.data(), N, I, O);
    Vec twice = num_dW;
    for (double& v : twice) v *= 2;
    EXPECT_TRUE(all_close(minus(dW, base), twice, kGradTol));

    auto run = [&](auto z) {
        using T = decltype(z);
        const auto xt = cast<T>(x), Wt = cast<T>(W), wt = cast<T>(w);
        std::vector<T> o(N * O), d(N * I), dWt(O * I, T(0));
        cpu::matmul_fwd(o.data(), xt.data(), Wt.data(), N, I, O);
        cpu::matmul_bwd(d.data(), dWt.data(), wt.data(), xt.data(), Wt.data(), N, I, O);
        return std::tuple(cast<double>(o), cast<double>(d), cast<double>(dWt));
    };
    expect_float_tracks_double(run);
}

// ------------------------------------------------------------------------------------------------ rope

AttnSpec make_spec(int B, int T, int H, int Hkv, int hd) {
    AttnSpec s;
    s.B = B;
    s.T = T;
    s.H = H;
    s.Hkv = Hkv;
    s.hd = hd;
    s.scale = float(1.0 / std::sqrt(double(hd)));
    return s;
}

// Every pair (2i, 2i+1) of the q and k heads turned by (pos0 + t) theta^(-2i/hd), in double; v kept.
Vec naive_rope(const Vec& x, const AttnSpec& s, double theta, int64_t pos0) {
    const int64_t W = s.qkv_width();
    Vec y = x;
    for (int64_t b = 0; b < s.B; b++)
        for (int64_t t = 0; t < s.T; t++)
            for (int64_t h = 0; h < s.H + s.Hkv; h++)
                for (int64_t i = 0; i < s.hd / 2; i++) {
                    const int64_t at = (b * s.T + t) * W + h * s.hd + 2 * i;
                    const double a = double(pos0 + t) / std::pow(theta, 2.0 * double(i) / double(s.hd));
                    y[at] = x[at] * std::cos(a) - x[at + 1] * std::sin(a);
                    y[at + 1] = x[at] * std::sin(a) + x[at + 1] * std::cos(a);
                }
    return y;
}

TEST(CpuOps, RopeRotatesPairsOfQAndKOnly) {
    const AttnSpec s = make_spec(2, 5, 4, 2, 6);  // 3 pairs per head
    const int64_t N = int64_t(s.B) * s.T, W = s.qkv_width();
    const float theta = 500.f;
    const int pos0 = 3;
    Rng rng(4);
    Vec x = rng.vec(N * W), w = rng.vec(N * W);
    Vec y = x;
    cpu::rope(y.data(), s, theta, pos0, false);
    const Vec want = naive_rope(x, s, theta, pos0);
    EXPECT_TRUE(all_close(y, want, 1e-13));
    for (int64_t n = 0; n < N; n++)  // v: untouched, bit for bit
        for (int64_t j = (s.H + s.Hkv) * s.hd; j < W; j++) ASSERT_EQ(y[n * W + j], x[n * W + j]);
    Vec back = y;
    cpu::rope(back.data(), s, theta, pos0, true);
    EXPECT_TRUE(all_close(back, x, 1e-13));

    const Vec num = numeric_grad(x, [&] {
        y = x;
        cpu::rope(y.data(), s, theta, pos0, false);
        return weighted_sum(w, y.data());
    });
    Vec dx = w;
    cpu::rope(dx.data(), s, theta, pos0, true);
    EXPECT_TRUE(all_close(dx, num, kGradTol));

    auto run = [&](auto z) {
        using T = decltype(z);
        auto v = cast<T>(x);
        cpu::rope(v.data(), s, theta, pos0, false);
        return cast<double>(v);
    };
    expect_float_tracks_double(run);
}

TEST(CpuOps, RopeKeepsFloatAccuracyAtLongPositions) {
    // At a million positions a float angle is off by ~0.03 rad; the kernel's double angles are not.
    const AttnSpec s = make_spec(1, 3, 2, 1, 64);
    const int pos0 = 1000000;
    const std::vector<float> x = cast<float>(Rng(20).vec(size_t(s.T) * s.qkv_width()));
    std::vector<float> y = x;
    cpu::rope(y.data(), s, 10000.f, pos0, false);
    EXPECT_TRUE(all_close(cast<double>(y), naive_rope(cast<double>(x), s, 10000.0, pos0), kF32Tol));
}

// ------------------------------------------------------------------------------------------------ attention

bool sees(const AttnSpec& s, int t, int j) { return s.isolated(t) ? j == t : j <= t; }

// The reference: per (b, h) an explicit [T, T] matrix of weights, then o = A v.
void naive_attention(const AttnSpec& s, const Vec& qkv, const Vec& sink, Vec& o, Vec& lse) {
    const int W = s.qkv_width(), T = s.T, hd = s.hd, rep = s.H / s.Hkv;
    o.assign(size_t(s.B) * T * s.H * hd, 0.0);
    lse.assign(size_t(s.B) * s.H * T, 0.0);
    for (int b = 0; b < s.B; b++)
        for (int h = 0; h < s.H; h++) {
            const int g = h / rep;
            Vec A(size_t(T) * T, 0.0), z(T);
            for (int t = 0; t < T; t++) {
                const double* q = &qkv[size_t((b * T + t) * W + h * hd)];
                double mx = -INFINITY;
                for (int j = 0; j < T; j++) {
                    if (!sees(s, t, j)) continue;
                    const double* k = &qkv[size_t((b * T + j) * W + (s.H + g) * hd)];
                    z[j] = 0;
                    for (int d = 0; d < hd; d++) z[j] += q[d] * k[d];
                    z[j] *= s.scale;
                    mx = std::max(mx, z[j]);
                }
                if (s.score == AttnScore::Sigmoid) {
                    for (int j = 0; j < T; j++)
                        if (sees(s, t, j)) A[t * T + j] = 1.0 / (1.0 + std::exp(-(z[j] + s.sigmoid_bias)));
                    continue;
                }
                const bool has_sink = s.score != AttnScore::Softmax;
                const double sl = s.score == AttnScore::SinkLogit ? sink[h] : 0.0;
                if (has_sink) mx = std::max(mx, sl);
                double sum = has_sink ? std::exp(sl - mx) : 0.0;
                for (int j = 0; j < T; j++)
                    if (sees(s, t, j)) sum += std::exp(z[j] - mx);
                for (int j = 0; j < T; j++)
                    if (sees(s, t, j)) A[t * T + j] = std::exp(z[j] - mx) / sum;
                lse[size_t((b * s.H + h) * T + t)] = mx + std::log(sum);
            }
            for (int t = 0; t < T; t++)
                for (int j = 0; j < T; j++) {
                    const double* v = &qkv[size_t((b * T + j) * W + (s.H + s.Hkv + g) * hd)];
                    for (int d = 0; d < hd; d++) o[size_t(((b * T + t) * s.H + h) * hd + d)] += A[t * T + j] * v[d];
                }
        }
}

struct AttnResult {
    Vec o, lse, dqkv, dsink;
};

// Forward then backward with dout = w in precision T; dsink starts at dsink0.
template <typename T>
AttnResult run_attention(const AttnSpec& s, const Vec& qkv, const Vec& sink, const Vec& w, const Vec& dsink0) {
    const size_t n_o = size_t(s.B) * s.T * s.H * s.hd;
    const auto q = cast<T>(qkv), sk = cast<T>(sink), wt = cast<T>(w);
    std::vector<T> o(n_o), dqkv(qkv.size(), T(kFill)), ds = cast<T>(dsink0);
    std::vector<T> lse(size_t(s.B) * s.H * s.T);
    const T* sp = sink.empty() ? nullptr : sk.data();
    cpu::attention_fwd(o.data(), lse.data(), q.data(), sp, s);
    cpu::attention_bwd(dqkv.data(), ds.empty() ? nullptr : ds.data(), wt.data(), o.data(), lse.data(), q.data(), sp, s);
    return {cast<double>(o), cast<double>(lse), cast<double>(dqkv), cast<double>(ds)};
}

struct AttnCase {
    const char* name;
    AttnScore score;
    int B, T, H, Hkv, hd;
    std::vector<int> isolate;
};
void PrintTo(const AttnCase& c, std::ostream* os) { *os << c.name; }

class CpuOpsAttention : public ::testing::TestWithParam<AttnCase> {
protected:
    void SetUp() override {
        const AttnCase& c = GetParam();
        s = make_spec(c.B, c.T, c.H, c.Hkv, c.hd);
        s.score = c.score;
        s.sigmoid_bias = c.score == AttnScore::Sigmoid ? -1.5f : 0.f;
        s.n_isolate = int(c.isolate.size());
        for (size_t i = 0; i < c.isolate.size(); i++) s.isolate[i] = c.isolate[i];
        Rng rng(5 + uint64_t(c.T) * 7 + uint64_t(c.score));
        qkv = rng.vec(size_t(s.B) * s.T * s.qkv_width(), -1.5, 1.5);
        w = rng.vec(size_t(s.B) * s.T * s.H * s.hd);
        if (s.score == AttnScore::SinkLogit) {
            sink = rng.vec(s.H);
            dsink0 = rng.vec(s.H);
        }
    }
    AttnSpec s;
    Vec qkv, sink, w, dsink0;
};

TEST_P(CpuOpsAttention, ForwardMatchesExplicitWeightMatrix) {
    Vec want_o, want_lse;
    naive_attention(s, qkv, sink, want_o, want_lse);
    const AttnResult d = run_attention<double>(s, qkv, sink, w, dsink0);
    EXPECT_TRUE(all_close(d.o, want_o, 1e-12));
    EXPECT_TRUE(all_close(d.lse, want_lse, 1e-7, 1.0));
    const AttnResult f = run_attention<float>(s, qkv, sink, w, dsink0);
    EXPECT_TRUE(all_close(f.o, want_o, kF32Tol));
    EXPECT_TRUE(all_close(f.lse, want_lse, kF32Tol, 1.0));
}

TEST_P(CpuOpsAttention, GradientsMatchFiniteDifferences) {
    Vec o(size_t(s.B) * s.T * s.H * s.hd);
    Vec lse(size_t(s.B) * s.H * s.T);
    auto kernel_loss = [&] {
        cpu::attention_fwd(o.data(), lse.data(), qkv.data(), sink.empty() ? nullptr : sink.data(), s);
        return weighted_sum(w, o.data());
    };
    const Vec num_dqkv = numeric_grad(qkv, kernel_loss);
    const Vec num_dsink = numeric_grad(sink, kernel_loss);
    const AttnResult d = run_attention<double>(s, qkv, sink, w, dsink0);
    EXPECT_TRUE(all_close(d.dqkv, num_dqkv, kGradTol));
    if (!sink.empty()) {
        EXPECT_TRUE(all_close(minus(d.dsink, dsink0), num_dsink, kGradTol));
    }

    const AttnResult f = run_attention<float>(s, qkv, sink, w, dsink0);
    EXPECT_TRUE(all_close(f.dqkv, d.dqkv, kF32Tol));
    if (!sink.empty()) {
        EXPECT_TRUE(all_close(minus(f.dsink, dsink0), minus(d.dsink, dsink0), kF32Tol));
    }
}

// A caller's rowdot replaces the kernel's own D = dout.o. Equal to it, nothing changes. Off by delta[b, h, t], the
// softmax gradient P (dP - D) moves by -P delta: dv stays, dq_t moves by -scale delta_t sum_j P_tj k_j (the forward
// with k in place of v gives that sum) and dsink by sum over rows of exp(sink - lse) delta. Sigmoid ignores it.
TEST_P(CpuOpsAttention, GivenRowdotReplacesDoutDotO) {
    const int64_t W = s.qkv_width(), hd = s.hd, rows = int64_t(s.B) * s.H * s.T;
    const AttnResult plain = run_attention<double>(s, qkv, sink, w, dsink0);
    Vec exact(rows, 0.0);  // [B, H, T]
    for (int64_t b = 0; b < s.B; b++)
        for (int64_t t = 0; t < s.T; t++)
            for (int64_t h = 0; h < s.H; h++)
                for (int64_t d = 0; d < hd; d++) {
                    const int64_t i = ((b * s.T + t) * s.H + h) * hd + d;
                    exact[(b * s.H + h) * s.T + t] += w[i] * plain.o[i];
                }
    Rng rng(17);
    const Vec delta = rng.vec(rows);
    Vec shifted = exact;
    for (int64_t r = 0; r < rows; r++) shifted[r] += delta[r];
    auto backward = [&](const Vec& rowdot) {
        Vec dqkv(qkv.size(), kFill), ds = dsink0;
        cpu::attention_bwd(dqkv.data(), ds.empty() ? nullptr : ds.data(), w.data(), plain.o.data(), plain.lse.data(),
                           qkv.data(), sink.empty() ? nullptr : sink.data(), s, rowdot.data());
        return std::pair(dqkv, ds);
    };
    const auto [dqkv_exact, dsink_exact] = backward(exact);
    EXPECT_TRUE(all_close(dqkv_exact, plain.dqkv, 1e-12));
    EXPECT_TRUE(all_close(dsink_exact, plain.dsink, 1e-12));

    const auto [dqkv, dsink] = backward(shifted);
    if (s.score == AttnScore::Sigmoid) {
        EXPECT_EQ(dqkv, plain.dqkv);
        return;
    }
    Vec qkk = qkv;  // v heads replaced by the k heads
    const int64_t kv_width = int64_t(s.Hkv) * hd, k_at = int64_t(s.H) * hd, v_at = k_at + kv_width;
    for (int64_t n = 0; n < int64_t(s.B) * s.T; n++)
        std::copy_n(qkv.begin() + n * W + k_at, kv_width, qkk.begin() + n * W + v_at);
    const AttnResult pk = run_attention<double>(s, qkk, sink, w, dsink0);
    Vec want = plain.dqkv;
    for (int64_t b = 0; b < s.B; b++)
        for (int64_t t = 0; t < s.T; t++)
            for (int64_t h = 0; h < s.H; h++)
                for (int64_t d = 0; d < hd; d++)
                    want[(b * s.T + t) * W + h * hd + d] -= double(s.scale) * delta[(b * s.H + h) * s.T + t] *
                                                            pk.o[((b * s.T + t) * s.H + h) * hd + d];
    for (int64_t n = 0; n < int64_t(s.B) * s.T; n++)  // dq as predicted, dv unchanged, dk not checked
        std::copy_n(dqkv.begin() + n * W + k_at, kv_width, want.begin() + n * W + k_at);
    EXPECT_TRUE(all_close(dqkv, want, 1e-11));
    if (s.score == AttnScore::SinkLogit) {
        Vec want_ds = plain.dsink;
        for (int64_t b = 0; b < s.B; b++)
            for (int64_t h = 0; h < s.H; h++)
                for (int64_t t = 0; t < s.T; t++) {
                    const int64_t r = (b * s.H + h) * s.T + t;
                    want_ds[h] -= std::exp(sink[h] - plain.lse[r]) * delta[r];
                }
        EXPECT_TRUE(all_close(dsink, want_ds, 1e-11));
    }
}

TEST_P(CpuOpsAttention, RunsAreBitIdenticalAcrossRepeatsAndThreadCounts) {
    // Each (sequence, kv head) is one sequential task, so not even the thread count changes a bit.
    auto run = [&](int threads) {
        const test::OmpThreads scope(threads);
        return run_attention<float>(s, qkv, sink, w, dsink0);
    };
    const AttnResult a = run(2), b = run(2), c = run(1);
    for (const AttnResult* r : {&b, &c}) {
        EXPECT_EQ(a.o, r->o);
        EXPECT_EQ(a.lse, r->lse);
        EXPECT_EQ(a.dqkv, r->dqkv);
        EXPECT_EQ(a.dsink, r->dsink);
    }
}

// Small shapes for the finite differences. T = 67 and 70 span several score tiles (32 doubles, 64 floats) and
// end mid-tile and mid-block of query rows; hd from 2 to 72 takes every head layout (1 to 16 vectors, padded
// or not) of both precisions; 4 heads over 2 kv heads is GQA.
const AttnCase kAttnCases[] = {
    {"softmax", AttnScore::Softmax, 2, 9, 2, 2, 6, {}},
    {"softmax_gqa_isolated", AttnScore::Softmax, 2, 9, 4, 2, 6, {3, 8}},
    {"sink", AttnScore::SinkLogit, 2, 9, 2, 2, 6, {}},
    {"sink_gqa_isolated", AttnScore::SinkLogit, 2, 9, 4, 2, 6, {0, 5}},
    {"offbyone", AttnScore::OffByOne, 2, 9, 2, 2, 6, {}},
    {"offbyone_gqa_isolated", AttnScore::OffByOne, 1, 9, 4, 2, 6, {2, 3}},
    {"sigmoid", AttnScore::Sigmoid, 2, 9, 2, 2, 6, {}},
    {"sigmoid_gqa_isolated", AttnScore::Sigmoid, 1, 9, 4, 2, 6, {4}},
    {"softmax_long", AttnScore::Softmax, 1, 70, 2, 1, 4, {65}},
    {"sink_long", AttnScore::SinkLogit, 1, 67, 2, 1, 2, {}},
    {"softmax_hd16", AttnScore::Softmax, 1, 7, 2, 1, 16, {}},
    {"softmax_hd32", AttnScore::Softmax, 1, 5, 2, 1, 32, {}},
    {"softmax_hd40", AttnScore::Softmax, 1, 6, 2, 2, 40, {1}},
    {"sink_hd72", AttnScore::SinkLogit, 1, 5, 2, 1, 72, {2}},
};
INSTANTIATE_TEST_SUITE_P(CpuOps, CpuOpsAttention, ::testing::ValuesIn(kAttnCases),
                         [](const ::testing::TestParamInfo<AttnCase>& i) { return std::string(i.param.name); });

TEST(CpuOps, AttentionRejectsHeadsLargerThanItsLimit) {
    const AttnSpec s = make_spec(1, 2, 1, 1, 130);
    const Vec qkv(size_t(s.T) * s.qkv_width());
    Vec o(size_t(s.T) * s.hd);
    Vec lse(s.T);
    EXPECT_THROW(cpu::attention_fwd(o.data(), lse.data(), qkv.data(), static_cast<const double*>(nullptr), s), Error);
}

TEST(CpuOps, AttentionIsolatedRowReturnsItsOwnValue) {
    AttnSpec s = make_spec(2, 12, 4, 2, 8);
    s.n_isolate = 2;
    s.isolate[0] = 5;
    s.isolate[1] = 11;
    Rng rng(6);
    const Vec qkv = rng.vec(size_t(s.B) * s.T * s.qkv_width()), w = rng.vec(size_t(s.B) * s.T * s.H * s.hd);
    auto check = [&](auto z) {
        using T = decltype(z);
        const AttnResult r = run_attention<T>(s, qkv, {}, w, {});
        const auto q = cast<T>(qkv);  // v as the kernel sees it
        for (int b = 0; b < s.B; b++)
            for (int t : {5, 11})
                for (int h = 0; h < s.H; h++) {
                    const int g = h / (s.H / s.Hkv);
                    for (int d = 0; d < s.hd; d++)
                        EXPECT_EQ(r.o[size_t(((b * s.T + t) * s.H + h) * s.hd + d)],
                                  double(q[size_t((b * s.T + t) * s.qkv_width() + (s.H + s.Hkv + g) * s.hd + d)]));
                }
    };
    check(float{});
    check(double{});
}

TEST(CpuOps, AttentionFloatMatchesReferenceAtTrainingSize) {
    // About the shapes of configs/tiny.yaml, with GQA: the f32 tiles and the packing at a realistic size.
    AttnSpec s = make_spec(1, 300, 4, 2, 32);
    s.n_isolate = 1;
    s.isolate[0] = 130;
    Rng rng(7);
    const Vec qkv = rng.vec(size_t(s.B) * s.T * s.qkv_width(), -2, 2), w = rng.vec(size_t(s.B) * s.T * s.H * s.hd);
    Vec want_o, want_lse;
    naive_attention(s, qkv, {}, want_o, want_lse);
    const AttnResult f = run_attention<float>(s, qkv, {}, w, {});
    const AttnResult d = run_attention<double>(s, qkv, {}, w, {});
    EXPECT_TRUE(all_close(f.o, want_o, kF32Tol));
    EXPECT_TRUE(all_close(d.o, want_o, 1e-12));
    EXPECT_TRUE(all_close(f.dqkv, d.dqkv, kF32Tol));
}

// ------------------------------------------------------------------------------------------------ headnorm

class CpuOpsHeadnorm : public ::testing::TestWithParam<bool> {};

TEST_P(CpuOpsHeadnorm, MatchesFormulaAndFiniteDifferences) {
    const bool per_head = GetParam();
    const int64_t N = 5, nh = 3, hd = 7, G = per_head ? nh * hd : hd;
    const float eps = 1e-6f;
    Rng rng(8 + per_head);
    Vec x = rng.vec(N * nh * hd), g = rng.vec(G, 0.5, 1.5), w = rng.vec(N * nh * hd), out(N * nh * hd);
    Vec rstd(N * nh);
    cpu::headnorm_fwd(out.data(), rstd.data(), x.data(), g.data(), N, nh, hd, per_head, eps);
    Vec want(N * nh * hd);
    for (int64_t r = 0; r < N * nh; r++) {
        double ms = 0;
        for (int64_t j = 0; j < hd; j++) ms += x[r * hd + j] * x[r * hd + j] / double(hd);
        for (int64_t j = 0; j < hd; j++)
            want[r * hd + j] = x[r * hd + j] / std::sqrt(ms + double(eps)) * g[(per_head ? (r % nh) * hd : 0) + j];
    }
    EXPECT_TRUE(all_close(out, want, 1e-13));

    auto loss = [&] {
        cpu::headnorm_fwd(out.data(), rstd.data(), x.data(), g.data(), N, nh, hd, per_head, eps);
        return weighted_sum(w, out.data());
    };
    const Vec num_dx = numeric_grad(x, loss), num_dg = numeric_grad(g, loss);
    loss();
    const Vec base = rng.vec(G);
    Vec dx(N * nh * hd, kFill), dg = base;
    cpu::headnorm_bwd(dx.data(), dg.data(), w.data(), x.data(), g.data(), rstd.data(), N, nh, hd, per_head);
    EXPECT_TRUE(all_close(dx, num_dx, kGradTol));
    EXPECT_TRUE(all_close(minus(dg, base), num_dg, kGradTol));

    auto run = [&](auto z) {
        using T = decltype(z);
        const auto xt = cast<T>(x), gt = cast<T>(g), wt = cast<T>(w);
        std::vector<T> o(x.size()), d(x.size()), dgt(G, T(0));
        std::vector<T> r(N * nh);
        cpu::headnorm_fwd(o.data(), r.data(), xt.data(), gt.data(), N, nh, hd, per_head, eps);
        cpu::headnorm_bwd(d.data(), dgt.data(), wt.data(), xt.data(), gt.data(), r.data(), N, nh, hd, per_head);
        return std::tuple(cast<double>(o), cast<double>(d), cast<double>(dgt));
    };
    expect_float_tracks_double(run);
}

// rowdot [B, nh, Tn] is dx.x of each head: checked against the sum over the returned dx and against its closed form
// eps r^3 sum_j g dy x (dx.x = r (g.dy.x) (1 - r^2 mean x^2), and 1 - r^2 mean x^2 = eps r^2). A large eps keeps it
// far from the cancellation it is at the usual eps.
TEST(CpuOps, HeadnormBackwardEmitsDxDotXPerHead) {
    const int64_t B = 2, Tn = 3, N = B * Tn, nh = 3, hd = 7;
    const float eps = 0.5f;
    Rng rng(23);
    const Vec x = rng.vec(N * nh * hd), g = rng.vec(nh * hd, 0.5, 1.5), dy = rng.vec(N * nh * hd);
    auto run = [&](auto z) {
        using T = decltype(z);
        const auto xt = cast<T>(x), gt = cast<T>(g), dyt = cast<T>(dy);
        std::vector<T> out(x.size()), rstd(N * nh), dx(x.size()), dg(g.size(), T(0)), rowdot(N * nh, T(kFill));
        cpu::headnorm_fwd(out.data(), rstd.data(), xt.data(), gt.data(), N, nh, hd, true, eps);
        cpu::headnorm_bwd(dx.data(), dg.data(), dyt.data(), xt.data(), gt.data(), rstd.data(), N, nh, hd, true,
                          rowdot.data(), Tn);
        return std::tuple(cast<double>(dx), cast<double>(rowdot), cast<double>(rstd));
    };
    const auto [dx, rowdot, rstd] = run(double{});
    Vec sum(N * nh, 0.0), closed(N * nh, 0.0);
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < nh; h++) {
            const int64_t r = n * nh + h, at = (n / Tn * nh + h) * Tn + n % Tn;
            for (int64_t j = 0; j < hd; j++) {
                sum[at] += dx[r * hd + j] * x[r * hd + j];
                closed[at] += g[h * hd + j] * dy[r * hd + j] * x[r * hd + j];
            }
            closed[at] *= double(eps) * std::pow(rstd[r], 3);
        }
    EXPECT_TRUE(all_close(rowdot, sum, 1e-12));
    EXPECT_TRUE(all_close(rowdot, closed, 1e-12));
    expect_float_tracks_double(run);
}

INSTANTIATE_TEST_SUITE_P(CpuOps, CpuOpsHeadnorm, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "per_head" : "shared"; });

TEST(CpuOps, QknormNormalizesQAndKHeadsAndCopiesV) {
    const AttnSpec s = make_spec(2, 3, 4, 2, 6);
    const int64_t N = int64_t(s.B) * s.T, W = s.qkv_width(), hd = s.hd, nqk = s.H + s.Hkv;
    const float eps = 1e-6f;
    Rng rng(9);
    Vec in = rng.vec(N * W), gq = rng.vec(hd, 0.5, 1.5), gk = rng.vec(hd, 0.5, 1.5), w = rng.vec(N * W), out(N * W);
    Vec rstd(N * nqk);
    cpu::qknorm_fwd(out.data(), rstd.data(), in.data(), gq.data(), gk.data(), s, eps);
    for (int64_t n = 0; n < N; n++)
        for (int64_t h = 0; h < s.H + 2 * s.Hkv; h++) {
            const double* x = &in[n * W + h * hd];
            double ms = 0;
            for (int64_t j = 0; j < hd; j++) ms += x[j] * x[j] / double(hd);
            for (int64_t j = 0; j < hd; j++) {
                const double got = out[n * W + h * hd + j];
                if (h >= nqk)
                    EXPECT_EQ(got, x[j]);
                else
                    EXPECT_NEAR(got, x[j] / std::sqrt(ms + double(eps)) * (h < s.H ? gq : gk)[j], 1e-13);
            }
        }

    auto loss = [&] {
        cpu::qknorm_fwd(out.data(), rstd.data(), in.data(), gq.data(), gk.data(), s, eps);
        return weighted_sum(w, out.data());
    };
    const Vec num_din = numeric_grad(in, loss), num_dgq = numeric_grad(gq, loss), num_dgk = numeric_grad(gk, loss);
    loss();
    const Vec bq = rng.vec(hd), bk = rng.vec(hd);
    Vec din(N * W, kFill), dgq = bq, dgk = bk;
    cpu::qknorm_bwd(din.data(), dgq.data(), dgk.data(), w.data(), in.data(), gq.data(), gk.data(), rstd.data(), s);
    EXPECT_TRUE(all_close(din, num_din, kGradTol));
    EXPECT_TRUE(all_close(minus(dgq, bq), num_dgq, kGradTol));
    EXPECT_TRUE(all_close(minus(dgk, bk), num_dgk, kGradTol));

    auto run = [&](auto z) {
        using T = decltype(z);
        const auto it = cast<T>(in), qt = cast<T>(gq), kt = cast<T>(gk), wt = cast<T>(w);
        std::vector<T> o(in.size()), d(in.size()), dq(hd, T(0)), dk(hd, T(0));
        std::vector<T> r(N * nqk);
        cpu::qknorm_fwd(o.data(), r.data(), it.data(), qt.data(), kt.data(), s, eps);
        cpu::qknorm_bwd(d.data(), dq.data(), dk.data(), wt.data(), it.data(), qt.data(), kt.data(), r.data(), s);
        return std::tuple(cast<double>(o), cast<double>(d), cast<double>(dq), cast<double>(dk));
    };
    expect_float_tracks_double(run);
}

// ------------------------------------------------------------------------------------------------ gate

class CpuOpsGate : public ::testing::TestWithParam<bool> {};

TEST_P(CpuOpsGate, MatchesFormulaAndFiniteDifferences) {
    const bool per_channel = GetParam();
    const int64_t N = 4, H = 3, hd = 5, nl = per_channel ? N * H * hd : N * H;
    Rng rng(10 + per_channel);
    Vec x = rng.vec(N * H * hd), logit = rng.vec(nl, -3, 3), w = rng.vec(N * H * hd), out(N * H * hd);
    cpu::gate_fwd(out.data(), x.data(), logit.data(), N, H, hd, per_channel);
    for (int64_t i = 0; i < N * H * hd; i++)
        EXPECT_NEAR(out[i], x[i] / (1.0 + std::exp(-logit[per_channel ? i : i / hd])), 1e-15);

    auto loss = [&] {
        cpu::gate_fwd(out.data(), x.data(), logit.data(), N, H, hd, per_channel);
        return weighted_sum(w, out.data());
    };
    const Vec num_dx = numeric_grad(x, loss), num_dl = numeric_grad(logit, loss);
    Vec dx(N * H * hd, kFill), dl(nl, kFill);
    cpu::gate_bwd(dx.data(), dl.data(), w.data(), x.data(), logit.data(), N, H, hd, per_channel);
    EXPECT_TRUE(all_close(dx, num_dx, kGradTol));
    EXPECT_TRUE(all_close(dl, num_dl, kGradTol));

    auto run = [&](auto z) {
        using T = decltype(z);
        const auto xt = cast<T>(x), lt = cast<T>(logit), wt = cast<T>(w);
        std::vector<T> o(x.size()), d(x.size()), dlt(nl);
        cpu::gate_fwd(o.data(), xt.data(), lt.data(), N, H, hd, per_channel);
        cpu::gate_bwd(d.data(), dlt.data(), wt.data(), xt.data(), lt.data(), N, H, hd, per_channel);
        return std::tuple(cast<double>(o), cast<double>(d), cast<double>(dlt));
    };
    expect_float_tracks_double(run);
}

INSTANTIATE_TEST_SUITE_P(CpuOps, CpuOpsGate, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "per_channel" : "per_head"; });

// ------------------------------------------------------------------------------------------------ amplify

// The mean of the first Tm rows: all 5 (centered), the 3 up to k = 2 (centered_causal), none (scale).
class CpuOpsAmplify : public ::testing::TestWithParam<int64_t> {};

TEST_P(CpuOpsAmplify, MatchesFormulaInPlaceAndFiniteDifferences) {
    const int64_t Tm = GetParam();
    const int64_t B = 2, T = 5, D = 7;
    const int k = 2;
    const float lambda = 3.5f;
    Rng rng(12 + uint64_t(Tm));
    Vec x = rng.vec(B * T * D), w = rng.vec(B * T * D);
    // The reference, with the mean as an argument so that it can be held fixed.
    auto reference = [&](const Vec& in, const Vec& mu) {
        Vec y = in;
        for (int64_t b = 0; b < B; b++)
            for (int64_t c = 0; c < D; c++) {
                const double m = mu[b * D + c];
                y[(b * T + k) * D + c] = m + double(lambda) * (in[(b * T + k) * D + c] - m);
            }
        return y;
    };
    Vec mu(B * D, 0.0);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < Tm; t++)
            for (int64_t c = 0; c < D; c++) mu[b * D + c] += x[(b * T + t) * D + c] / double(Tm);
    Vec out(B * T * D);
    cpu::amplify_fwd(out.data(), x.data(), B, T, D, k, lambda, Tm);
    EXPECT_TRUE(all_close(out, reference(x, mu), 1e-14));
    Vec in_place = x;
    cpu::amplify_fwd(in_place.data(), in_place.data(), B, T, D, k, lambda, Tm);
    EXPECT_EQ(in_place, out);

    // The backward holds the mean constant: differentiate the reference with mu fixed at its value.
    const Vec num = numeric_grad(x, [&] { return weighted_sum(w, reference(x, mu).data()); });
    Vec dx(B * T * D, kFill);
    cpu::amplify_bwd(dx.data(), w.data(), B, T, D, k, lambda);
    EXPECT_TRUE(all_close(dx, num, kGradTol));
    if (Tm == 0) {  // without a mean the kernel's own forward is the function differentiated
        const Vec num_kernel = numeric_grad(x, [&] {
            cpu::amplify_fwd(out.data(), x.data(), B, T, D, k, lambda, Tm);
            return weighted_sum(w, out.data());
        });
        EXPECT_TRUE(all_close(dx, num_kernel, kGradTol));
    }

    auto run = [&](auto z) {
        using TT = decltype(z);
        const auto xt = cast<TT>(x), wt = cast<TT>(w);
        std::vector<TT> o(x.size()), d(x.size());
        cpu::amplify_fwd(o.data(), xt.data(), B, T, D, k, lambda, Tm);
        cpu::amplify_bwd(d.data(), wt.data(), B, T, D, k, lambda);
        return std::pair(cast<double>(o), cast<double>(d));
    };
    expect_float_tracks_double(run);
}

INSTANTIATE_TEST_SUITE_P(CpuOps, CpuOpsAmplify, ::testing::Values(int64_t(5), int64_t(3), int64_t(0)),
                         [](const ::testing::TestParamInfo<int64_t>& i) {
                             return i.param == 5 ? "centered" : i.param == 3 ? "centered_causal" : "scale";
                         });

// ------------------------------------------------------------------------------------------------ swiglu

TEST(CpuOps, SwigluMatchesFormulaAndFiniteDifferences) {
    const int64_t N = 5, F = 9;
    Rng rng(14);
    Vec ab = rng.vec(N * 2 * F, -4, 4), w = rng.vec(N * F), out(N * F);
    cpu::swiglu_fwd(out.data(), ab.data(), N, F);
    for (int64_t n = 0; n < N; n++)
        for (int64_t f = 0; f < F; f++) {
            const double a = ab[n * 2 * F + f], b = ab[n * 2 * F + F + f];
            EXPECT_NEAR(out[n * F + f], a / (1.0 + std::exp(-a)) * b, 1e-14);
        }
    const Vec num = numeric_grad(ab, [&] {
        cpu::swiglu_fwd(out.data(), ab.data(), N, F);
        return weighted_sum(w, out.data());
    });
    Vec dab(N * 2 * F, kFill);
    cpu::swiglu_bwd(dab.data(), w.data(), ab.data(), N, F);
    EXPECT_TRUE(all_close(dab, num, kGradTol));

    auto run = [&](auto z) {
        using T = decltype(z);
        const auto at = cast<T>(ab), wt = cast<T>(w);
        std::vector<T> o(N * F), d(ab.size());
        cpu::swiglu_fwd(o.data(), at.data(), N, F);
        cpu::swiglu_bwd(d.data(), wt.data(), at.data(), N, F);
        return std::pair(cast<double>(o), cast<double>(d));
    };
    expect_float_tracks_double(run);
}

// rest_max skips the rows of token 0: each sequence's token 0 is planted with the largest output, 8 silu(8) ~ 64
// against at most 4 silu(4) ~ 16 elsewhere, so counting them shows.
TEST(CpuOps, SwigluRestMaxIsTheMaximumAwayFromTokenZero) {
    const int64_t B = 3, T = 4, N = B * T, F = 7;
    Rng rng(15);
    Vec ab = rng.vec(N * 2 * F, -4, 4), out(N * F);
    for (int64_t b = 0; b < B; b++) ab[b * T * 2 * F + 2] = ab[b * T * 2 * F + F + 2] = 8.0;
    float rest_max = -1.f;
    cpu::swiglu_fwd(out.data(), ab.data(), N, F, &rest_max, T);
    double want = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t f = 0; f < F && n % T != 0; f++) {
            const double a = ab[n * 2 * F + f], b = ab[n * 2 * F + F + f];
            want = std::max(want, std::abs(a / (1.0 + std::exp(-a)) * b));
        }
    EXPECT_LT(want, 17.0);
    EXPECT_NEAR(rest_max, want, 1e-5 * want);
    float one_token = -1.f;  // T = 1: no token after the first
    cpu::swiglu_fwd(out.data(), ab.data(), N, F, &one_token, 1);
    EXPECT_EQ(one_token, 0.f);
}

// ------------------------------------------------------------------------------------------------ add, scale

TEST(CpuOps, AddAndScaleMatchFormulaAlsoInPlace) {
    const int64_t n = 100003;  // not a multiple of any vector width
    Rng rng(15);
    const Vec a = rng.vec(n), b = rng.vec(n);
    Vec out(n), want(n);
    for (int64_t i = 0; i < n; i++) want[i] = a[i] + b[i];
    cpu::add(out.data(), a.data(), b.data(), n);
    EXPECT_EQ(out, want);
    Vec a2 = a, b2 = b;
    cpu::add(a2.data(), a2.data(), b.data(), n);
    cpu::add(b2.data(), a.data(), b2.data(), n);
    EXPECT_EQ(a2, want);
    EXPECT_EQ(b2, want);
    std::vector<float> x = cast<float>(a);
    cpu::scale(x.data(), -0.25f, n);
    for (int64_t i = 0; i < n; i++) ASSERT_EQ(x[i], float(a[i]) * -0.25f);
}

// ------------------------------------------------------------------------------------------------ cross-entropy

// logsumexp(l) - l[target] in double, by the definition.
double naive_ce(const double* l, int64_t V, int32_t target) {
    if (target < 0) return 0.0;
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < V; j++) mx = std::max(mx, l[j]);
    for (int64_t j = 0; j < V; j++) s += std::exp(l[j] - mx);
    return mx + std::log(s) - l[target];
}

TEST(CpuOps, CrossEntropyMatchesFormulaAndFiniteDifferences) {
    const int64_t N = 6, V = 13;
    const float scale = 0.37f;
    Rng rng(16);
    Vec logits = rng.vec(N * V, -3, 3);
    for (int64_t j = 0; j < V; j++) logits[2 * V + j] += 1000.0;  // must not overflow
    logits = cast<double>(cast<float>(logits));                   // the float run below sees the same inputs
    std::vector<int32_t> targets = rng.ints(N, 0, int32_t(V) - 1);
    targets[0] = 0;  // the vocabulary's first and last ids are targets like any other
    targets[1] = int32_t(V) - 1;
    targets[4] = -1;  // ignored row
    Vec loss(N);
    Vec dl(N * V, kFill);
    cpu::cross_entropy(loss.data(), dl.data(), logits.data(), targets.data(), N, V, scale);
    Vec want(N);
    for (int64_t n = 0; n < N; n++) want[n] = naive_ce(&logits[n * V], V, targets[n]);
    EXPECT_TRUE(all_close(loss, want, 1e-12, 1.0));
    EXPECT_EQ(loss[4], 0.0);

    // dlogits against the finite differences of the reference loss L = scale * sum_n loss_n.
    const Vec num = numeric_grad(logits, [&] {
        double L = 0;
        for (int64_t n = 0; n < N; n++) L += double(scale) * naive_ce(&logits[n * V], V, targets[n]);
        return L;
    });
    EXPECT_TRUE(all_close(dl, num, kGradTol));
    for (int64_t j = 0; j < V; j++) EXPECT_EQ(dl[4 * V + j], 0.0);

    // dlogits may alias logits, or be absent.
    Vec inplace = logits;
    Vec loss2(N), loss3(N);
    cpu::cross_entropy(loss2.data(), inplace.data(), inplace.data(), targets.data(), N, V, scale);
    EXPECT_EQ(inplace, dl);
    EXPECT_EQ(loss2, loss);
    cpu::cross_entropy(loss3.data(), static_cast<double*>(nullptr), logits.data(), targets.data(), N, V, scale);
    EXPECT_EQ(loss3, loss);

    std::vector<float> lf(N);
    std::vector<float> lgf = cast<float>(logits), dlf(N * V);
    cpu::cross_entropy(lf.data(), dlf.data(), lgf.data(), targets.data(), N, V, scale);
    EXPECT_TRUE(all_close(cast<double>(lf), want, kF32Tol, 1.0));
    EXPECT_TRUE(all_close(cast<double>(dlf), dl, kF32Tol));
}

TEST(CpuOps, CrossEntropyRejectsTargetsOutsideTheVocabulary) {
    const std::vector<int32_t> targets = {1, 5};
    Vec logits(2 * 5);
    Vec loss(2);
    EXPECT_THROW(cpu::cross_entropy(loss.data(), logits.data(), logits.data(), targets.data(), 2, 5, 1.f), Error);
}

// ------------------------------------------------------------------------------------------------ adamw

TEST(CpuOps, AdamwFollowsTheFormulaOverSeveralSteps) {
    const int64_t n = 1001;
    Rng rng(17);
    AdamWStep h;
    h.lr = 3e-2f;
    h.beta1 = 0.9f;
    h.beta2 = 0.95f;
    h.eps = 1e-8f;
    h.weight_decay = 0.1f;
    h.grad_scale = 0.5f;
    const Vec p0 = rng.vec(n);
    Vec p = p0, m(n, 0.0), v(n, 0.0), pw = p0, mw(n, 0.0), vw(n, 0.0);
    std::vector<float> pf = cast<float>(p0), mf(n, 0.f), vf(n, 0.f);
    for (int64_t t = 1; t <= 5; t++) {
        h.t = t;
        const Vec g = rng.vec(n, -2, 2);
        cpu::adamw(p.data(), m.data(), v.data(), g.data(), n, h);
        const std::vector<float> gf = cast<float>(g);
        cpu::adamw(pf.data(), mf.data(), vf.data(), gf.data(), n, h);
        // Decoupled decay, then Adam on the scaled gradient with bias corrections.
        const double lr = h.lr, b1 = h.beta1, b2 = h.beta2;
        for (int64_t i = 0; i < n; i++) {
            const double gi = g[i] * double(h.grad_scale);
            pw[i] -= lr * double(h.weight_decay) * pw[i];
            mw[i] = b1 * mw[i] + (1 - b1) * gi;
            vw[i] = b2 * vw[i] + (1 - b2) * gi * gi;
            const double mhat = mw[i] / (1 - std::pow(b1, double(t))), vhat = vw[i] / (1 - std::pow(b2, double(t)));
            pw[i] -= lr * mhat / (std::sqrt(vhat) + double(h.eps));
        }
        EXPECT_TRUE(all_close(p, pw, 1e-12)) << "step " << t;
        EXPECT_TRUE(all_close(m, mw, 1e-12)) << "step " << t;
        EXPECT_TRUE(all_close(v, vw, 1e-12)) << "step " << t;
        EXPECT_TRUE(all_close(cast<double>(pf), pw, 1e-6)) << "step " << t;
    }
}

// ------------------------------------------------------------------------------------------------ sum of squares

TEST(CpuOps, SumSquaresIsExactAndIndependentOfThreads) {
    const int64_t n = 100003;
    Rng rng(18);
    const Vec g = rng.vec(n);
    const std::vector<float> gf = cast<float>(g);
    double want = 0, want_f = 0;
    for (int64_t i = 0; i < n; i++) {
        want += g[i] * g[i];
        want_f += double(gf[i]) * double(gf[i]);
    }
    double one_d, one_f, two_d, two_f;
    {
        const test::OmpThreads scope(1);
        one_d = cpu::sum_squares(g.data(), n);
        one_f = cpu::sum_squares(gf.data(), n);
    }
    {
        const test::OmpThreads scope(2);
        two_d = cpu::sum_squares(g.data(), n);
        two_f = cpu::sum_squares(gf.data(), n);
    }
    EXPECT_NEAR(one_d, want, 1e-12 * want);
    EXPECT_NEAR(one_f, want_f, 1e-12 * want_f);
    EXPECT_EQ(std::memcmp(&one_d, &two_d, sizeof(double)), 0);
    EXPECT_EQ(std::memcmp(&one_f, &two_f, sizeof(double)), 0);
    EXPECT_EQ(cpu::sum_squares(g.data(), 0), 0.0);
}

// ------------------------------------------------------------------------------------------------ determinism

TEST(CpuOps, ParameterGradientReductionsRepeatBitForBit) {
    const int64_t N = 257, C = 64, nh = 4, hd = 16;
    Rng rng(19);
    const std::vector<float> x = cast<float>(rng.vec(N * C)), g = cast<float>(rng.vec(C)),
                             dout = cast<float>(rng.vec(N * C));
    auto run = [&] {
        std::vector<float> out(N * C), rstd(N), dx(N * C), dg(C, 0.f), hrstd(N * nh), hdx(N * C), hdg(nh * hd, 0.f);
        cpu::rmsnorm_fwd(out.data(), rstd.data(), x.data(), g.data(), N, C, 1e-5f);
        cpu::rmsnorm_bwd(dx.data(), dg.data(), dout.data(), x.data(), g.data(), rstd.data(), N, C);
        cpu::headnorm_fwd(out.data(), hrstd.data(), x.data(), g.data(), N, nh, hd, true, 1e-5f);
        cpu::headnorm_bwd(hdx.data(), hdg.data(), dout.data(), x.data(), g.data(), hrstd.data(), N, nh, hd, true);
        return std::tuple(dx, dg, hdx, hdg);
    };
    EXPECT_EQ(run(), run());
}

}  // namespace
}  // namespace sinklab
