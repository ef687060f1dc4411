// The launchers that take scratch (kernels/cuda/cuda_kernels.cuh) refuse a buffer one byte shorter than their
// *_scratch asks for, before they touch any memory: every pointer here is null, so one that went on would fault.
// Called directly, on a GPU and on the emulator (as emu.CudaScratch.*); the backend lends its scratch whole.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "cuda/cuda_under_test.h"
#include "kernels/cuda/cuda_kernels.cuh"
#include "test_util.h"

namespace sinklab::test {
namespace {

using cuda::bf16;

void expect_refused(const std::string& launcher, size_t need, const std::function<void(cuda::Scratch)>& call) {
    ASSERT_GT(need, 0u) << launcher;
    const std::string error = error_of([&] { call(cuda::Scratch{nullptr, need - 1}); });
    EXPECT_NE(error.find(launcher + ": " + std::to_string(need - 1) + " bytes of scratch where it needs " +
                         std::to_string(need)),
              std::string::npos)
        << error;
}

TEST(CudaScratch, LaunchersRefuseAShortScratch) {
    if (!cuda_under_test()) GTEST_SKIP() << "no CUDA device";
    float* f = nullptr;
    bf16* h = nullptr;
    const int32_t* ids = nullptr;
    const cudaStream_t st = nullptr;

    const int64_t N = 100, V = 50, C = 16;
    expect_refused("embedding_bwd", cuda::embedding_bwd_scratch(N),
                   [&](cuda::Scratch s) { cuda::embedding_bwd<float>(f, ids, f, N, V, C, s, st); });
    expect_refused("norm_bwd", cuda::norm_bwd_scratch(cuda::rmsnorm_layout(N, C)), [&](cuda::Scratch s) {
        cuda::rmsnorm_bwd<float>(f, f, f, f, f, f, N, C, false, s, st);
    });
    expect_refused("norm_bwd", cuda::norm_bwd_scratch(cuda::headnorm_layout(N, 4, 32, true)), [&](cuda::Scratch s) {
        cuda::headnorm_bwd<bf16>(h, f, h, h, h, f, N, 4, 32, true, s, st);
    });

    const AttnSpec spec = attn_spec(2, 70, 4, 2, 64);
    float dgk = 0.f;  // qknorm's second gain gradient must not be null; it is never touched either
    expect_refused("norm_bwd", cuda::norm_bwd_scratch(cuda::qknorm_layout(spec)), [&](cuda::Scratch s) {
        cuda::qknorm_bwd<bf16>(h, f, &dgk, h, h, h, h, f, spec, s, st);
    });
    expect_refused("attention_bwd", cuda::attention_bwd_scratch<bf16>(spec), [&](cuda::Scratch s) {
        cuda::attention_bwd<bf16>(h, f, h, h, f, h, h, spec, s, st);
    });
    const int positions[1] = {0};
    expect_refused("attn_mass", cuda::attn_mass_scratch(int64_t(spec.B) * spec.T, spec.H, 1),
                   [&](cuda::Scratch s) { cuda::attn_mass<bf16>(f, h, f, positions, 1, spec, s, st); });
    const float* xs[2] = {nullptr, nullptr};
    expect_refused("abs_max_median", cuda::abs_max_median_scratch(),
                   [&](cuda::Scratch s) { cuda::abs_max_median<float>(f, xs, 2, 10, s, st); });
}

}  // namespace
}  // namespace sinklab::test
