// Helpers for op tests: seeded random data, float64 central finite differences, element-wise comparison.
#pragma once
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/check.h"

namespace sinklab::test {

using Vec = std::vector<double>;

class Rng {
public:
    explicit Rng(uint64_t seed) : gen_(seed) {}
    double uniform(double lo = -1.0, double hi = 1.0) { return std::uniform_real_distribution<double>(lo, hi)(gen_); }
    Vec vec(size_t n, double lo = -1.0, double hi = 1.0) {
        Vec v(n);
        for (double& x : v) x = uniform(lo, hi);
        return v;
    }
    // Integers in [lo, hi], both ends included.
    std::vector<int32_t> ints(size_t n, int32_t lo, int32_t hi) {
        std::uniform_int_distribution<int32_t> d(lo, hi);
        std::vector<int32_t> v(n);
        for (int32_t& x : v) x = d(gen_);
        return v;
    }

private:
    std::mt19937_64 gen_;
};

// Causal attention over B sequences of T tokens, H query heads sharing Hkv kv heads of head_dim hd, scaled 1/sqrt(hd).
inline AttnSpec attn_spec(int B, int T, int H, int Hkv, int hd, AttnScore score = AttnScore::Softmax) {
    AttnSpec s;
    s.B = B, s.T = T, s.H = H, s.Hkv = Hkv, s.hd = hd;
    s.scale = 1.f / std::sqrt(float(hd));
    s.score = score;
    return s;
}

template <typename T, typename S> std::vector<T> cast(const std::vector<S>& x) {
    return std::vector<T>(x.begin(), x.end());
}

// sum_i w[i] y[i] over w.size() elements: the loss whose gradient a backward computes when dout = w.
inline double weighted_sum(const Vec& w, const double* y) {
    double s = 0;
    for (size_t i = 0; i < w.size(); i++) s += w[i] * y[i];
    return s;
}

// Sets the OpenMP thread count for one scope and restores it after.
class OmpThreads {
public:
    explicit OmpThreads(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
    ~OmpThreads() { omp_set_num_threads(saved_); }
    OmpThreads(const OmpThreads&) = delete;
    OmpThreads& operator=(const OmpThreads&) = delete;

private:
    int saved_;
};

// d loss / d x[i] for every i by central differences; loss() must read x. x is left as it was. One thread:
// thousands of tiny calls gain nothing from a team, and on a busy machine its barriers cost milliseconds each.
inline Vec numeric_grad(Vec& x, const std::function<double()>& loss, double h = 1e-5) {
    const OmpThreads one(1);
    Vec g(x.size());
    for (size_t i = 0; i < x.size(); i++) {
        const double x0 = x[i];
        x[i] = x0 + h;
        const double lp = loss();
        x[i] = x0 - h;
        const double lm = loss();
        x[i] = x0;
        g[i] = (lp - lm) / (2 * h);
    }
    return g;
}

inline double max_abs(const Vec& v) {
    double m = 0;
    for (double x : v) m = std::max(m, std::fabs(x));
    return m;
}

// Every |got - want| <= rtol (|want| + floor * max|want|): relative per element, with a floor at a fraction of
// the largest element so that entries near zero (sums that cancel) are judged against the tensor's scale.
// Names the worst element on failure.
inline ::testing::AssertionResult all_close(const Vec& got, const Vec& want, double rtol, double floor = 0.1) {
    if (got.size() != want.size())
        return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
    const double ref = floor * max_abs(want);
    size_t worst = 0;
    double worst_ratio = -1;
    for (size_t i = 0; i < got.size(); i++) {
        const double err = std::fabs(got[i] - want[i]), tol = rtol * (std::fabs(want[i]) + ref);
        double ratio = tol > 0 ? err / tol : (err > 0 ? INFINITY : 0.0);
        if (std::isnan(ratio)) ratio = INFINITY;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            worst = i;
        }
    }
    if (worst_ratio <= 1.0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "element " << worst << " of " << got.size() << ": got " << got[worst]
                                         << ", want " << want[worst] << " (error " << worst_ratio
                                         << "x the tolerance rtol " << rtol << ")";
}

// a - b element-wise.
inline Vec minus(const Vec& a, const Vec& b) {
    Vec d(a.size());
    for (size_t i = 0; i < a.size(); i++) d[i] = a[i] - b[i];
    return d;
}

// How many lines an error may take: one, the line main prints; several only for the reports that list every run's
// error under a summary line (the checks of a whole sweep).
enum class Lines { One, Several };

// How often `what` occurs in `text` (overlapping occurrences too).
inline size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) n++;
    return n;
}

// The message of the sinklab::Error that `fn` throws; fails the test when it throws none, or when the message takes
// more lines than `lines` allows.
inline std::string error_of(const std::function<void()>& fn, Lines lines = Lines::One) {
    try {
        fn();
    } catch (const Error& e) {
        const std::string what = e.what();
        if (lines == Lines::One) {
            EXPECT_EQ(what.find('\n'), std::string::npos) << "error is not one line: " << what;
        }
        return what;
    }
    ADD_FAILURE() << "no sinklab::Error thrown";
    return "";
}

}  // namespace sinklab::test
