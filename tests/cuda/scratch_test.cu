// The launchers that take scratch (kernels/cuda/cuda_kernels.cuh) refuse a buffer one byte shorter than their
// *_scratch asks for, and stay inside one of exactly that size. Called directly, on a GPU and on the emulator (as
// emu.CudaScratch.*); the backend lends its scratch whole, 32 MiB from the start, which would hide the second.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "cuda/cuda_under_test.h"
#include "cuda/device_array.cuh"
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

// The shapes each launcher runs at below: sizes that are not multiples of the tiles and vectors, a single row, and
// enough rows and sequences for several norm chunks and several passes of the attention backward's dS.
struct ScratchShape {
    int64_t N, V, C;   // embedding and RMSNorm rows, vocabulary, channels
    AttnSpec spec;     // attention, HeadNorm, QK-norm
    int ds_seqs;       // sequences per pass of the dS the attention backward keeps (spec.ds_budget sets it)
    int positions;     // key positions attn_mass tracks
    int64_t median_n;  // elements per layer of abs_max_median
};

std::vector<ScratchShape> scratch_shapes() {
    AttnSpec passes = attn_spec(5, 130, 6, 3, 48);
    passes.ds_budget = cuda::ds_bytes(passes, 2);  // passes of 2, 2 and 1 sequences
    return {{300, 37, 24, attn_spec(2, 70, 4, 2, 64), 2, 2, 1000},
            {1, 3, 8, attn_spec(1, 1, 1, 1, 32), 1, 1, 1},
            {5000, 1000, 40, passes, 2, 3, 70001},
            {77, 5, 16, attn_spec(2, 65, 2, 2, 128), 0, 1, 300}};  // above head dim 64: no dS kept
}

// Each launcher on zeroed inputs with scratch of exactly what it asks for, in an allocation of its own: on the
// emulator, where allocations end at an unmapped page and their rounding is checked after every launch, a write past
// the stated size fails (on a GPU this runs them, and only compute-sanitizer would see such a write).
TEST(CudaScratch, LaunchersStayInsideTheScratchTheyAskFor) {
    if (!cuda_under_test()) GTEST_SKIP() << "no CUDA device";
    const cudaStream_t st = nullptr;
    const auto run_with_exact = [&](size_t need, const std::function<void(cuda::Scratch)>& call) {
        DeviceArray<char> scratch(need, 0);
        call(cuda::Scratch{scratch.p, need});
        CUDA_CHECK(cudaStreamSynchronize(st));
    };

    for (const ScratchShape& shape : scratch_shapes()) {
        const int64_t N = shape.N, V = shape.V, C = shape.C, median_n = shape.median_n;
        const AttnSpec& spec = shape.spec;
        const int P = shape.positions;
        SCOPED_TRACE(::testing::Message() << "N " << N << " V " << V << " C " << C << ", attention B " << spec.B
                                          << " T " << spec.T << " H " << spec.H << " Hkv " << spec.Hkv << " hd "
                                          << spec.hd);
        ASSERT_EQ(cuda::ds_seqs_per_pass(spec), shape.ds_seqs);
        {
            DeviceArray<float> dwte(V * C, 0), dout(N * C, 0);
            DeviceArray<int32_t> ids(N);
            std::vector<int32_t> host_ids(static_cast<size_t>(N));
            for (int64_t i = 0; i < N; i++) host_ids[size_t(i)] = int32_t(i * 7 % V);
            CUDA_CHECK(cudaMemcpyAsync(ids.p, host_ids.data(), size_t(N) * 4, cudaMemcpyHostToDevice, st));
            run_with_exact(cuda::embedding_bwd_scratch(N), [&](cuda::Scratch s) {
                cuda::embedding_bwd<float>(dwte.p, ids.p, dout.p, N, V, C, s, st);
            });
        }
        {
            DeviceArray<float> dx(N * C, 0), dg(C, 0), dout(N * C, 0), x(N * C, 0), g(C, 0), rstd(N, 0);
            run_with_exact(cuda::norm_bwd_scratch(cuda::rmsnorm_layout(N, C)), [&](cuda::Scratch s) {
                cuda::rmsnorm_bwd<float>(dx.p, dg.p, dout.p, x.p, g.p, rstd.p, N, C, false, s, st);
            });
        }
        const int64_t rows = int64_t(spec.B) * spec.T, W = spec.qkv_width(), Hd = int64_t(spec.H) * spec.hd;
        {
            DeviceArray<bf16> dx(rows * Hd, 0), dout(rows * Hd, 0), x(rows * Hd, 0), g(Hd, 0);
            DeviceArray<float> dg(Hd, 0), rstd(rows * spec.H, 0);
            run_with_exact(cuda::norm_bwd_scratch(cuda::headnorm_layout(rows, spec.H, spec.hd, true)),
                           [&](cuda::Scratch s) {
                               cuda::headnorm_bwd<bf16>(dx.p, dg.p, dout.p, x.p, g.p, rstd.p, rows, spec.H, spec.hd,
                                                        true, s, st);
                           });
        }
        {
            DeviceArray<bf16> din(rows * W, 0), dout(rows * W, 0), in(rows * W, 0), gq(spec.hd, 0), gk(spec.hd, 0);
            DeviceArray<float> dgq(spec.hd, 0), dgk(spec.hd, 0), rstd(rows * (spec.H + spec.Hkv), 0);
            run_with_exact(cuda::norm_bwd_scratch(cuda::qknorm_layout(spec)), [&](cuda::Scratch s) {
                cuda::qknorm_bwd<bf16>(din.p, dgq.p, dgk.p, dout.p, in.p, gq.p, gk.p, rstd.p, spec, s, st);
            });
        }
        {
            DeviceArray<bf16> dqkv(rows * W, 0), dout(rows * Hd, 0), o(rows * Hd, 0), qkv(rows * W, 0);
            DeviceArray<float> lse(rows * spec.H, 0);
            run_with_exact(cuda::attention_bwd_scratch<bf16>(spec), [&](cuda::Scratch s) {
                cuda::attention_bwd<bf16>(dqkv.p, nullptr, dout.p, o.p, lse.p, qkv.p, nullptr, spec, s, st);
            });
            std::vector<int> positions(static_cast<size_t>(P));
            for (int i = 0; i < P; i++) positions[size_t(i)] = i * 5 % spec.T;
            DeviceArray<float> out(int64_t(spec.H) * P, 0);
            run_with_exact(cuda::attn_mass_scratch(rows, spec.H, P), [&](cuda::Scratch s) {
                cuda::attn_mass<bf16>(out.p, qkv.p, lse.p, positions.data(), P, spec, s, st);
            });
        }
        {
            const int K = 3;
            DeviceArray<float> out(K * 2, 0), x0(median_n, 0), x1(median_n, 0), x2(median_n, 0);
            const float* xs[K] = {x0.p, x1.p, x2.p};
            run_with_exact(cuda::abs_max_median_scratch(),
                           [&](cuda::Scratch s) { cuda::abs_max_median<float>(out.p, xs, K, median_n, s, st); });
        }
    }
}

}  // namespace
}  // namespace sinklab::test
