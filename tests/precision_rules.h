// How a kernel's output is judged against a reference, for the GPU kernels' tests (tests/cuda on a GPU, tests/emu
// on the CPU emulator).
//
// fp32 mode: the kernel and the CPU f32 reference run the same inputs; every element must agree to a relative
// tolerance, measured against |want| + rms(want), so that elements near zero are judged on the scale of their
// tensor.
//
// bf16 mode, the 2x rule: the inputs are rounded to bf16 once, then the op runs three times:
//   got   - the kernel in bf16;
//   ref   - the CPU reference in f64: the exact answer for these inputs, up to f64 rounding;
//   naive - the CPU reference in f32, with every tensor the bf16 backend stores in bf16 (activations, parameters,
//           activation gradients) rounded to bf16 after each stage, outputs included. That is the naive
//           same-precision implementation: bf16 storage between ops, f32 arithmetic inside them, and f32 for what
//           bf16 training keeps in f32 (parameter gradients, lse, rstd, loss). Its error is what bf16 storage costs
//           by itself.
// The kernel passes when ||got - ref|| <= 2 ||naive - ref|| + 1e-6 ||ref|| (Euclidean norms over the tensor).
// Norms, not maxima: an f32 sum of bf16-rounded terms has a roughly Gaussian error while a single rounding has a
// bounded one, so maxima would compare different tails; a wrong element or a wrong tile still shows, since one
// O(1) error outweighs the rounding of the whole tensor. The last term admits f32-level differences in outputs
// that bf16 does not touch (lse, rstd, loss, parameter gradients).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace sinklab::test {

inline double round_bf16(double x) { return bf16_bits_to_float(float_to_bf16_bits(float(x))); }

inline double norm(const std::vector<double>& a) {
    double s = 0.0;
    for (double x : a) s += x * x;
    return std::sqrt(s);
}

inline double norm_diff(const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0.0;
    for (size_t i = 0; i < a.size(); i++) s += (a[i] - b[i]) * (a[i] - b[i]);
    return std::sqrt(s);
}

// fp32 mode, element by element.
inline void expect_close_f32(const std::string& name, const std::vector<double>& got, const std::vector<double>& want,
                             double rtol) {
    ASSERT_EQ(got.size(), want.size()) << name;
    const double rms = norm(want) / std::sqrt(double(std::max<size_t>(want.size(), 1)));
    size_t bad = 0, worst = 0;
    double worst_ratio = 0.0;
    for (size_t i = 0; i < want.size(); i++) {
        const double err = std::abs(got[i] - want[i]), bound = rtol * (std::abs(want[i]) + rms);
        // err == 0 passes even when bound is 0 (an output that is all zeros, such as sigmoid attention's lse).
        const double ratio =
            !std::isfinite(got[i]) ? std::numeric_limits<double>::infinity() : err == 0 ? 0 : err / bound;
        if (!(ratio <= 1.0)) bad++;
        if (!(ratio <= worst_ratio)) worst_ratio = ratio, worst = i;
    }
    EXPECT_EQ(bad, 0u) << name << ": " << bad << " of " << want.size() << " elements off by more than rtol " << rtol
                       << "; worst [" << worst << "] got " << got[worst] << " want " << want[worst];
}

// bf16 mode, the 2x rule; also every element that is finite in ref must be written and finite.
inline void expect_within_2x_naive(const std::string& name, const std::vector<double>& got,
                                   const std::vector<double>& ref, const std::vector<double>& naive) {
    ASSERT_EQ(got.size(), ref.size()) << name;
    ASSERT_EQ(naive.size(), ref.size()) << name;
    size_t non_finite = 0;
    for (size_t i = 0; i < got.size(); i++) non_finite += std::isfinite(ref[i]) && !std::isfinite(got[i]);
    EXPECT_EQ(non_finite, 0u) << name << ": " << non_finite << " elements not written or not finite";
    const double e_got = norm_diff(got, ref), e_naive = norm_diff(naive, ref), bound = 2.0 * e_naive + 1e-6 * norm(ref);
    size_t worst = 0;  // where to look first when it fails
    for (size_t i = 0; i < got.size(); i++)
        if (!(std::abs(got[i] - ref[i]) <= std::abs(got[worst] - ref[worst]))) worst = i;
    EXPECT_LE(e_got, bound) << name << ": error " << e_got << ", naive bf16 error " << e_naive << ", |ref| "
                            << norm(ref) << "; worst [" << worst << "] got " << got[worst] << " ref " << ref[worst]
                            << " naive " << naive[worst];
}

}  // namespace sinklab::test
