// Micro benchmarks of the f32 CPU kernels at the shapes of configs/tiny.yaml (one layer's ops and the
// head). Not a test: timings only, compare with scripts/bench_torch_ops.py at the same thread count.
//   ./build/tests/sinklab_kernel_bench [--benchmark_filter=attention]
#include <benchmark/benchmark.h>

#include <vector>

#include "kernels/cpu/cpu_kernels.h"
#include "test_util.h"

namespace sinklab {
namespace {

constexpr int64_t kB = 8, kT = 256, kC = 128, kH = 4, kHd = 32, kF = 384, kV = 264, kN = kB * kT;

std::vector<float> random_floats(size_t n, uint64_t seed) { return test::cast<float>(test::Rng(seed).vec(n)); }

AttnSpec tiny_spec(int64_t T) {
    AttnSpec s;
    s.B = int(kB);
    s.T = int(T);
    s.H = int(kH);
    s.Hkv = int(kH);
    s.hd = int(kHd);
    s.scale = 0.17677669f;
    return s;
}

void BM_attention_fwd(benchmark::State& st) {
    const AttnSpec s = tiny_spec(st.range(0));
    const auto qkv = random_floats(size_t(s.B) * s.T * s.qkv_width(), 1);
    std::vector<float> o(size_t(s.B) * s.T * s.H * s.hd), lse(size_t(s.B) * s.H * s.T);
    for (auto _ : st) cpu::attention_fwd(o.data(), lse.data(), qkv.data(), static_cast<const float*>(nullptr), s);
    st.SetItemsProcessed(st.iterations() * s.B * s.T);
}
BENCHMARK(BM_attention_fwd)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_attention_bwd(benchmark::State& st) {
    const AttnSpec s = tiny_spec(st.range(0));
    const auto qkv = random_floats(size_t(s.B) * s.T * s.qkv_width(), 1);
    const auto dout = random_floats(size_t(s.B) * s.T * s.H * s.hd, 2);
    std::vector<float> o(dout.size()), lse(size_t(s.B) * s.H * s.T), dqkv(qkv.size());
    cpu::attention_fwd(o.data(), lse.data(), qkv.data(), static_cast<const float*>(nullptr), s);
    for (auto _ : st)
        cpu::attention_bwd(dqkv.data(), static_cast<float*>(nullptr), dout.data(), o.data(), lse.data(), qkv.data(),
                           static_cast<const float*>(nullptr), s);
    st.SetItemsProcessed(st.iterations() * s.B * s.T);
}
BENCHMARK(BM_attention_bwd)->Arg(256)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

// The four projections of one layer, forward and backward: qkv, o, w1|w3, w2.
void BM_layer_matmuls(benchmark::State& st) {
    const int64_t shapes[4][2] = {{kC, 3 * kC}, {kC, kC}, {kC, 2 * kF}, {kF, kC}};  // {I, O}
    std::vector<std::vector<float>> x, W, out, dW, dx;
    for (auto [I, O] : shapes) {
        x.push_back(random_floats(size_t(kN * I), 3));
        W.push_back(random_floats(size_t(O * I), 4));
        out.emplace_back(size_t(kN * O));
        dW.emplace_back(size_t(O * I));
        dx.emplace_back(size_t(kN * I));
    }
    for (auto _ : st)
        for (int i = 0; i < 4; i++) {
            const auto [I, O] = shapes[i];
            cpu::matmul_fwd(out[i].data(), x[i].data(), W[i].data(), kN, I, O);
            cpu::matmul_bwd(dx[i].data(), dW[i].data(), out[i].data(), x[i].data(), W[i].data(), kN, I, O);
        }
    st.SetItemsProcessed(st.iterations() * kN);
}
BENCHMARK(BM_layer_matmuls)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_rmsnorm_fwd_bwd(benchmark::State& st) {
    const auto x = random_floats(size_t(kN * kC), 5), g = random_floats(kC, 6), dout = random_floats(x.size(), 7);
    std::vector<float> out(x.size()), rstd(kN), dx(x.size()), dg(kC);
    for (auto _ : st) {
        cpu::rmsnorm_fwd(out.data(), rstd.data(), x.data(), g.data(), kN, kC, 1e-6f);
        cpu::rmsnorm_bwd(dx.data(), dg.data(), dout.data(), x.data(), g.data(), rstd.data(), kN, kC);
    }
    st.SetItemsProcessed(st.iterations() * kN);
}
BENCHMARK(BM_rmsnorm_fwd_bwd)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_rope_fwd_bwd(benchmark::State& st) {
    const AttnSpec s = tiny_spec(kT);
    auto qkv = random_floats(size_t(s.B) * s.T * s.qkv_width(), 8);
    for (auto _ : st) {
        cpu::rope(qkv.data(), s, 10000.f, 0, false);
        cpu::rope(qkv.data(), s, 10000.f, 0, true);
    }
    st.SetItemsProcessed(st.iterations() * kN);
}
BENCHMARK(BM_rope_fwd_bwd)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_swiglu_fwd_bwd(benchmark::State& st) {
    const auto ab = random_floats(size_t(kN * 2 * kF), 9), dout = random_floats(size_t(kN * kF), 10);
    std::vector<float> out(dout.size()), dab(ab.size());
    for (auto _ : st) {
        cpu::swiglu_fwd(out.data(), ab.data(), kN, kF);
        cpu::swiglu_bwd(dab.data(), dout.data(), ab.data(), kN, kF);
    }
    st.SetItemsProcessed(st.iterations() * kN);
}
BENCHMARK(BM_swiglu_fwd_bwd)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_headnorm_fwd_bwd(benchmark::State& st) {
    const auto x = random_floats(size_t(kN * kC), 11), g = random_floats(kC, 12), dout = random_floats(x.size(), 13);
    std::vector<float> out(x.size()), rstd(kN * kH), dx(x.size()), dg(kC);
    for (auto _ : st) {
        cpu::headnorm_fwd(out.data(), rstd.data(), x.data(), g.data(), kN, kH, kHd, true, 1e-6f);
        cpu::headnorm_bwd(dx.data(), dg.data(), dout.data(), x.data(), g.data(), rstd.data(), kN, kH, kHd, true);
    }
    st.SetItemsProcessed(st.iterations() * kN);
}
BENCHMARK(BM_headnorm_fwd_bwd)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_cross_entropy(benchmark::State& st) {
    const int64_t V = st.range(0);
    const auto logits = random_floats(size_t(kN * V), 14);
    std::vector<float> loss(kN), dl(logits.size());
    const std::vector<int32_t> targets = test::Rng(15).ints(kN, 0, int32_t(V) - 1);
    for (auto _ : st) cpu::cross_entropy(loss.data(), dl.data(), logits.data(), targets.data(), kN, V, 1.f / kN);
    st.SetItemsProcessed(st.iterations() * kN);
}
BENCHMARK(BM_cross_entropy)->Arg(kV)->Arg(50304)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_add(benchmark::State& st) {
    const auto a = random_floats(size_t(kN * kC), 16), b = random_floats(size_t(kN * kC), 17);
    std::vector<float> out(a.size());
    for (auto _ : st) cpu::add(out.data(), a.data(), b.data(), int64_t(a.size()));
    st.SetBytesProcessed(st.iterations() * int64_t(a.size()) * 12);
}
BENCHMARK(BM_add)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_adamw_and_norm(benchmark::State& st) {
    const int64_t n = int64_t(1) << 20;
    auto p = random_floats(size_t(n), 18), g = random_floats(size_t(n), 19);
    std::vector<float> m(static_cast<size_t>(n)), v(static_cast<size_t>(n));
    AdamWStep h;
    h.lr = 1e-3f;
    h.weight_decay = 0.1f;
    for (auto _ : st) {
        benchmark::DoNotOptimize(cpu::sum_squares(g.data(), n));
        cpu::adamw(p.data(), m.data(), v.data(), g.data(), n, h);
    }
    st.SetItemsProcessed(st.iterations() * n);
}
BENCHMARK(BM_adamw_and_norm)->Unit(benchmark::kMicrosecond)->UseRealTime();

// One pre-norm decoder layer, forward and backward, as the model chains the ops (MHA, SwiGLU): the number
// to hold against a PyTorch block (scripts/bench_torch_ops.py, "layer_fwd_bwd").
void BM_layer_fwd_bwd(benchmark::State& st) {
    const AttnSpec s = tiny_spec(kT);
    const int64_t W = s.qkv_width();
    auto x = random_floats(size_t(kN * kC), 20), dy = random_floats(size_t(kN * kC), 21);
    const auto g1 = random_floats(kC, 22), g2 = random_floats(kC, 23), Wqkv = random_floats(size_t(W * kC), 24),
               Wo = random_floats(size_t(kC * kC), 25), W13 = random_floats(size_t(2 * kF * kC), 26),
               W2 = random_floats(size_t(kC * kF), 27);
    std::vector<float> dg1(kC), dg2(kC), dWqkv(Wqkv.size()), dWo(Wo.size()), dW13(W13.size()), dW2(W2.size());
    std::vector<float> xn(x.size()), rstd1(kN), qkv(size_t(kN * W)), o(x.size()), lse(size_t(kB * kH * kT)),
        ao(x.size()), h(x.size()), hn(x.size()), rstd2(kN), ab(size_t(kN * 2 * kF)), u(size_t(kN * kF)), f(x.size()),
        y(x.size());
    std::vector<float> du(u.size()), dab(ab.size()), dhn(x.size()), dh(x.size()), dout(x.size()), dqkv(qkv.size()),
        dxn(x.size()), dx(x.size());
    const float* no_sink = nullptr;
    for (auto _ : st) {
        cpu::rmsnorm_fwd(xn.data(), rstd1.data(), x.data(), g1.data(), kN, kC, 1e-6f);
        cpu::matmul_fwd(qkv.data(), xn.data(), Wqkv.data(), kN, kC, W);
        cpu::rope(qkv.data(), s, 10000.f, 0, false);
        cpu::attention_fwd(o.data(), lse.data(), qkv.data(), no_sink, s);
        cpu::matmul_fwd(ao.data(), o.data(), Wo.data(), kN, kC, kC);
        cpu::add(h.data(), x.data(), ao.data(), kN * kC);
        cpu::rmsnorm_fwd(hn.data(), rstd2.data(), h.data(), g2.data(), kN, kC, 1e-6f);
        cpu::matmul_fwd(ab.data(), hn.data(), W13.data(), kN, kC, 2 * kF);
        cpu::swiglu_fwd(u.data(), ab.data(), kN, kF);
        cpu::matmul_fwd(f.data(), u.data(), W2.data(), kN, kF, kC);
        cpu::add(y.data(), h.data(), f.data(), kN * kC);

        cpu::matmul_bwd(du.data(), dW2.data(), dy.data(), u.data(), W2.data(), kN, kF, kC);
        cpu::swiglu_bwd(dab.data(), du.data(), ab.data(), kN, kF);
        cpu::matmul_bwd(dhn.data(), dW13.data(), dab.data(), hn.data(), W13.data(), kN, kC, 2 * kF);
        cpu::rmsnorm_bwd(dh.data(), dg2.data(), dhn.data(), h.data(), g2.data(), rstd2.data(), kN, kC);
        cpu::add(dh.data(), dh.data(), dy.data(), kN * kC);
        cpu::matmul_bwd(dout.data(), dWo.data(), dh.data(), o.data(), Wo.data(), kN, kC, kC);
        cpu::attention_bwd(dqkv.data(), static_cast<float*>(nullptr), dout.data(), o.data(), lse.data(), qkv.data(),
                           no_sink, s);
        cpu::rope(dqkv.data(), s, 10000.f, 0, true);
        cpu::matmul_bwd(dxn.data(), dWqkv.data(), dqkv.data(), xn.data(), Wqkv.data(), kN, kC, W);
        cpu::rmsnorm_bwd(dx.data(), dg1.data(), dxn.data(), x.data(), g1.data(), rstd1.data(), kN, kC);
        cpu::add(dx.data(), dx.data(), dh.data(), kN * kC);
    }
    st.SetItemsProcessed(st.iterations() * kN);
}
BENCHMARK(BM_layer_fwd_bwd)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace sinklab

BENCHMARK_MAIN();
