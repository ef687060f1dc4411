// The launchers that take scratch (kernels/cuda/cuda_kernels.cuh) refuse a buffer one byte shorter than their
// *_scratch asks for, and stay inside one of exactly that size. Called directly, on a GPU and on the emulator (as
// emu.CudaScratch.*); the backend lends its scratch whole, 32 MiB from the start, which would hide the second.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

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

// Device memory of `bytes` zeroed bytes, freed on scope exit.
struct DeviceBuffer {
    void* p = nullptr;
    explicit DeviceBuffer(size_t bytes) {
        CUDA_CHECK(cudaMalloc(&p, bytes));
        CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, nullptr));
    }
    ~DeviceBuffer() { cudaFree(p); }
    template <typename T> T* as() const { return static_cast<T*>(p); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

// Each launcher on zeroed inputs with scratch of exactly what it asks for, in an allocation of its own: on the
// emulator, where allocations end at an unmapped page and their rounding is checked after every launch, a write past
// the stated size fails (on a GPU this runs them, and only compute-sanitizer would see such a write).
TEST(CudaScratch, LaunchersStayInsideTheScratchTheyAskFor) {
    if (!cuda_under_test()) GTEST_SKIP() << "no CUDA device";
    const cudaStream_t st = nullptr;
    const auto run_with_exact = [&](size_t need, const std::function<void(cuda::Scratch)>& call) {
        DeviceBuffer scratch(need);
        call(cuda::Scratch{scratch.p, need});
        CUDA_CHECK(cudaStreamSynchronize(st));
    };

    const int64_t N = 300, V = 37, C = 24;
    {
        DeviceBuffer dwte(V * C * 4), ids(N * 4), dout(N * C * 4);
        std::vector<int32_t> host_ids(static_cast<size_t>(N));
        for (int64_t i = 0; i < N; i++) host_ids[size_t(i)] = int32_t(i * 7 % V);
        CUDA_CHECK(cudaMemcpyAsync(ids.p, host_ids.data(), N * 4, cudaMemcpyHostToDevice, st));
        run_with_exact(cuda::embedding_bwd_scratch(N), [&](cuda::Scratch s) {
            cuda::embedding_bwd<float>(dwte.as<float>(), ids.as<int32_t>(), dout.as<float>(), N, V, C, s, st);
        });
    }
    {
        DeviceBuffer dx(N * C * 4), dg(C * 4), dout(N * C * 4), x(N * C * 4), g(C * 4), rstd(N * 4);
        run_with_exact(cuda::norm_bwd_scratch(cuda::rmsnorm_layout(N, C)), [&](cuda::Scratch s) {
            cuda::rmsnorm_bwd<float>(dx.as<float>(), dg.as<float>(), dout.as<float>(), x.as<float>(), g.as<float>(),
                                     rstd.as<float>(), N, C, false, s, st);
        });
    }
    const AttnSpec spec = attn_spec(2, 70, 4, 2, 64);
    const int64_t rows = int64_t(spec.B) * spec.T, W = spec.qkv_width(), Hd = int64_t(spec.H) * spec.hd;
    {
        DeviceBuffer dx(rows * Hd * 2), dg(Hd * 4), dout(rows * Hd * 2), x(rows * Hd * 2), g(Hd * 2),
            rstd(rows * spec.H * 4);
        run_with_exact(cuda::norm_bwd_scratch(cuda::headnorm_layout(rows, spec.H, spec.hd, true)),
                       [&](cuda::Scratch s) {
                           cuda::headnorm_bwd<bf16>(dx.as<bf16>(), dg.as<float>(), dout.as<bf16>(), x.as<bf16>(),
                                                    g.as<bf16>(), rstd.as<float>(), rows, spec.H, spec.hd, true, s,
                                                    st);
                       });
    }
    {
        const int groups = spec.H + spec.Hkv;
        DeviceBuffer din(rows * W * 2), dgq(spec.hd * 4), dgk(spec.hd * 4), dout(rows * W * 2), in(rows * W * 2),
            gq(spec.hd * 2), gk(spec.hd * 2), rstd(rows * groups * 4);
        run_with_exact(cuda::norm_bwd_scratch(cuda::qknorm_layout(spec)), [&](cuda::Scratch s) {
            cuda::qknorm_bwd<bf16>(din.as<bf16>(), dgq.as<float>(), dgk.as<float>(), dout.as<bf16>(), in.as<bf16>(),
                                   gq.as<bf16>(), gk.as<bf16>(), rstd.as<float>(), spec, s, st);
        });
    }
    {
        DeviceBuffer dqkv(rows * W * 2), dout(rows * Hd * 2), o(rows * Hd * 2), lse(rows * spec.H * 4),
            qkv(rows * W * 2);
        run_with_exact(cuda::attention_bwd_scratch<bf16>(spec), [&](cuda::Scratch s) {
            cuda::attention_bwd<bf16>(dqkv.as<bf16>(), nullptr, dout.as<bf16>(), o.as<bf16>(), lse.as<float>(),
                                      qkv.as<bf16>(), nullptr, spec, s, st);
        });
        const int positions[2] = {0, 5};
        DeviceBuffer out(spec.H * 2 * 4);
        run_with_exact(cuda::attn_mass_scratch(rows, spec.H, 2), [&](cuda::Scratch s) {
            cuda::attn_mass<bf16>(out.as<float>(), qkv.as<bf16>(), lse.as<float>(), positions, 2, spec, s, st);
        });
    }
    {
        const int K = 3;
        const int64_t n = 1000;
        DeviceBuffer out(K * 2 * 4), x0(n * 4), x1(n * 4), x2(n * 4);
        const float* xs[K] = {x0.as<float>(), x1.as<float>(), x2.as<float>()};
        run_with_exact(cuda::abs_max_median_scratch(), [&](cuda::Scratch s) {
            cuda::abs_max_median<float>(out.as<float>(), xs, K, n, s, st);
        });
    }
}

}  // namespace
}  // namespace sinklab::test
