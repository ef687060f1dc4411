// The CUDA attention kernels run by the CPU emulator (emu.h), against the CPU reference kernels, by the rules of
// precision_rules.h: the tensor-core kernels of kernels/cuda/attention.cu in bf16 and the FMA kernels of
// attention_f32.cu in f32, on the cases of tests/cuda's CudaOps attention tests. A GPU runs those; these check the
// kernels' logic (fragment layouts, tiling, masking, the double buffering's waits and barriers) on every machine.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cuda/cuda_kernels.cuh"
#include "precision_rules.h"
#include "test_util.h"

namespace sinklab {
namespace {

using test::attn_spec;
using Vec = std::vector<double>;

struct Inputs {
    Vec qkv, sink, dout, dsink;  // dsink: the start the backward accumulates into
};

struct Outputs {
    Vec o, lse, dqkv, dsink;
};

bool has_sink(const AttnSpec& s) { return s.score == AttnScore::SinkLogit; }

// qkv in [-r, r] (larger r: peakier softmax rows), rounded to bf16 when the kernels run in bf16.
Inputs make_inputs(const AttnSpec& s, double r, bool bf16, uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto draw = [&](int64_t n, double lo, double hi) {
        std::uniform_real_distribution<double> u(lo, hi);
        Vec v(static_cast<size_t>(n));
        for (double& x : v) x = bf16 ? test::round_bf16(u(rng)) : double(float(u(rng)));
        return v;
    };
    const int64_t rows = int64_t(s.B) * s.T;
    Inputs in;
    in.qkv = draw(rows * s.qkv_width(), -r, r);
    in.dout = draw(rows * s.H * s.hd, -1.0, 1.0);
    if (has_sink(s)) in.sink = draw(s.H, -1.0, 2.0), in.dsink = draw(s.H, -1.0, 1.0);
    return in;
}

template <typename T> std::vector<T> to(const Vec& v) {
    std::vector<T> r(v.size());
    for (size_t i = 0; i < v.size(); i++) {
        if constexpr (std::is_same_v<T, cuda::bf16>) r[i] = __float2bfloat16_rn(float(v[i]));
        else r[i] = T(v[i]);
    }
    return r;
}
template <typename T> Vec from(const std::vector<T>& v) {
    Vec r(v.size());
    for (size_t i = 0; i < v.size(); i++) {
        if constexpr (std::is_same_v<T, cuda::bf16>) r[i] = __bfloat162float(v[i]);
        else r[i] = double(v[i]);
    }
    return r;
}
template <typename T> std::vector<T> poisoned(int64_t n) {
    return to<T>(Vec(size_t(n), std::numeric_limits<double>::quiet_NaN()));
}

int64_t o_size(const AttnSpec& s) { return int64_t(s.B) * s.T * s.H * s.hd; }
int64_t lse_size(const AttnSpec& s) { return int64_t(s.B) * s.H * s.T; }

// The emulated CUDA kernels with storage type T: the forward, then the backward of its o and lse.
template <typename T> Outputs run_emulated(const AttnSpec& s, const Inputs& in) {
    const std::vector<T> qkv = to<T>(in.qkv), dout = to<T>(in.dout), sink = to<T>(in.sink);
    std::vector<T> o = poisoned<T>(o_size(s)), dqkv = poisoned<T>(int64_t(in.qkv.size()));
    std::vector<float> lse = poisoned<float>(lse_size(s)), dsink = to<float>(in.dsink);
    std::vector<float> scratch(cuda::attention_bwd_scratch(s) / sizeof(float));
    const T* sink_p = has_sink(s) ? sink.data() : nullptr;
    cuda::attention_fwd<T>(o.data(), lse.data(), qkv.data(), sink_p, s, nullptr);
    cuda::attention_bwd<T>(dqkv.data(), has_sink(s) ? dsink.data() : nullptr, dout.data(), o.data(), lse.data(),
                           qkv.data(), sink_p, s, scratch.data(), nullptr);
    return {from(o), from(lse), from(dqkv), from(dsink)};
}

// The CPU reference kernels in T; with round_bf16, o and dqkv are rounded to bf16 as the bf16 backend stores them
// (the naive implementation of precision_rules.h).
template <typename T> Outputs run_reference(const AttnSpec& s, const Inputs& in, bool round_bf16) {
    const std::vector<T> qkv = to<T>(in.qkv), dout = to<T>(in.dout), sink = to<T>(in.sink);
    std::vector<T> o(size_t(o_size(s))), lse(size_t(lse_size(s))), dqkv(in.qkv.size()), dsink = to<T>(in.dsink);
    const T* sink_p = has_sink(s) ? sink.data() : nullptr;
    auto stored = [&](std::vector<T>& v) {
        if (round_bf16)
            for (T& x : v) x = T(test::round_bf16(double(x)));
    };
    cpu::attention_fwd<T>(o.data(), lse.data(), qkv.data(), sink_p, s);
    stored(o);
    cpu::attention_bwd<T>(dqkv.data(), has_sink(s) ? dsink.data() : nullptr, dout.data(), o.data(), lse.data(),
                          qkv.data(), sink_p, s);
    stored(dqkv);
    return {from(o), from(lse), from(dqkv), from(dsink)};
}

void check_attention(const std::string& name, const AttnSpec& s, double r = 2.0) {
    {
        SCOPED_TRACE(name + " [bf16]");
        const Inputs in = make_inputs(s, r, true, 1001);
        const Outputs got = run_emulated<cuda::bf16>(s, in), ref = run_reference<double>(s, in, false),
                      naive = run_reference<float>(s, in, true);
        test::expect_within_2x_naive("o", got.o, ref.o, naive.o);
        test::expect_within_2x_naive("lse", got.lse, ref.lse, naive.lse);
        test::expect_within_2x_naive("dqkv", got.dqkv, ref.dqkv, naive.dqkv);
        test::expect_within_2x_naive("dsink", got.dsink, ref.dsink, naive.dsink);
    }
    {
        SCOPED_TRACE(name + " [fp32]");
        const Inputs in = make_inputs(s, r, false, 1);
        const Outputs got = run_emulated<float>(s, in), want = run_reference<float>(s, in, false);
        test::expect_close_f32("o", got.o, want.o, 5e-5);
        test::expect_close_f32("lse", got.lse, want.lse, 5e-5);
        test::expect_close_f32("dqkv", got.dqkv, want.dqkv, 5e-5);
        test::expect_close_f32("dsink", got.dsink, want.dsink, 5e-5);
    }
}

TEST(EmulatedAttention, Softmax) {
    check_attention("mha_hd64", attn_spec(2, 77, 4, 4, 64));
    check_attention("gqa_hd64_T190", attn_spec(2, 190, 4, 2, 64));
    check_attention("mqa_hd64_T300", attn_spec(1, 300, 4, 1, 64));
    check_attention("peaky_hd64", attn_spec(2, 77, 2, 2, 64), 5.0);
}

TEST(EmulatedAttention, HeadDims) {
    check_attention("hd32", attn_spec(2, 77, 4, 2, 32));
    check_attention("hd128", attn_spec(2, 77, 2, 1, 128));
    check_attention("hd128_T190", attn_spec(1, 190, 2, 2, 128));
    check_attention("hd16", attn_spec(2, 77, 4, 4, 16));
    check_attention("hd18", attn_spec(2, 45, 2, 2, 18));  // hd % 8 != 0: the element-wise tile path
}

TEST(EmulatedAttention, Isolation) {
    AttnSpec s = attn_spec(2, 77, 4, 2, 64);
    for (int row : {0, 5, 40, 64, 76}) s.isolate[s.n_isolate++] = row;  // 64: the first row of a tile
    check_attention("isolate_hd64", s);
    AttnSpec s32 = attn_spec(2, 150, 4, 2, 32, AttnScore::SinkLogit);
    s32.n_isolate = 2;
    s32.isolate[0] = 70, s32.isolate[1] = 129;
    check_attention("isolate_sink_hd32", s32);
}

TEST(EmulatedAttention, SinkVariants) {
    check_attention("sinklogit_gqa", attn_spec(2, 77, 4, 2, 64, AttnScore::SinkLogit));
    check_attention("sinklogit_hd128", attn_spec(1, 100, 2, 2, 128, AttnScore::SinkLogit));
    check_attention("offbyone", attn_spec(2, 77, 4, 4, 64, AttnScore::OffByOne));
}

TEST(EmulatedAttention, Sigmoid) {
    AttnSpec s = attn_spec(2, 77, 4, 2, 64, AttnScore::Sigmoid);
    s.sigmoid_bias = -2.f;
    check_attention("sigmoid_hd64", s);
    AttnSpec s190 = attn_spec(2, 190, 4, 2, 64, AttnScore::Sigmoid);  // tiles wholly below the diagonal
    s190.sigmoid_bias = -std::log(190.f);
    check_attention("sigmoid_gqa_hd64_T190", s190);
    AttnSpec s128 = attn_spec(1, 130, 2, 1, 128, AttnScore::Sigmoid);
    s128.sigmoid_bias = -std::log(130.f);
    check_attention("sigmoid_hd128", s128);
}

}  // namespace
}  // namespace sinklab
