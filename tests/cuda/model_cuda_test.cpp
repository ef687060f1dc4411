// The whole model on the GPU against the CPU backend in float64 (the exact answer for the same weights): the loss and
// every parameter gradient for each attention variant and intervention on a tiny model, and for composite variants
// at shapes where the kernels take their 16-byte vector paths, in fp32 mode to a tight tolerance and in bf16 to a
// bound sized for bf16 storage; and 50 AdamW steps in fp32 mode whose losses track the CPU's. Without a GPU the CUDA
// tests skip; the same comparisons of the CPU backend in float32 against float64 run everywhere, which keeps the
// harness exercised and shows that the fp32 tolerance admits f32 rounding in another summation order.
//
// Tolerances. Per parameter tensor t: ||got_t - want_t|| <= tol (||want_t|| + ||want|| sqrt(n_t / n)), the second
// term being t's share of the whole gradient's norm were it spread evenly (a tensor whose gradient nearly cancels
// is judged on the scale of the model's gradient, not on its own tiny norm). fp32: tol = 1e-4; CPU f32 against f64
// reaches at most 0.003 of that bound (errors near 2e-7), so CUDA's reordered f32 sums have ample room while any
// wrong element of O(1) has none. Training: losses within 1e-3 relative at every step (CPU f32 against f64: 6e-6,
// over a run that takes the loss from 3.2 to 0.55, where a wrong gradient would show within a few steps). bf16:
// the reference uses the bf16-rounded weights the GPU run holds, so only activation storage differs; one bf16
// rounding is 2^-9 relative and a 2-block model stores ~30 activations on the way back, so errors of about 1% are
// expected and tol = 5e-2 (the worst ratio is printed, to tighten it once measured on a GPU).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/cuda_under_test.h"
#include "metrics/sink_metrics.h"
#include "model/model_fixture.h"
#include "train/optimizer.h"

namespace sinklab::test {
namespace {

constexpr double kTolF32 = 1e-4, kTolBf16 = 5e-2, kLossTolBf16 = 1e-2, kTrainTol = 1e-3;
constexpr int kB = 2;

struct Variant {
    std::string name;
    std::function<void(Config&)> edit;
};

std::vector<Variant> variants() {
    return {
        {"standard", [](Config&) {}},
        {"headnorm", [](Config& c) { c.attention.variant = "headnorm"; }},
        {"gated", [](Config& c) { c.attention.variant = "gated"; }},
        {"sink_logit",
         [](Config& c) {
             c.attention.variant = "sink_logit";
             c.attention.sink_init = 0.7f;
         }},
        {"sigmoid",
         [](Config& c) {
             c.attention.variant = "sigmoid";
             c.attention.sigmoid_bias = -1.5f;
         }},
        {"qk_norm", [](Config& c) { c.attention.qk_norm = true; }},
        {"isolate", [](Config& c) { c.intervention.isolate = {0, 3, 6}; }},
        {"amplify", [](Config& c) { c.intervention.amplify = {5, 3.f, {0, 1}, "centered"}; }},
    };
}

#if SINKLAB_HAVE_CUDNN
// attention.impl: cudnn needs head_dim % 8 == 0: 4 heads of 32 (a head dim every fused engine has) over 2 kv heads.
Config cudnn_config(const std::string& variant) {
    Config c = tiny_config(variant);
    c.model.d_model = 128;
    c.model.seq_len = 16;
    c.attention.impl = "cudnn";
    return c;
}
#endif

// The init weights of `cfg`, each moved off its init value (gains of exactly 1 and zero sinks would hide mistakes).
std::vector<double> test_weights(const Config& cfg) {
    auto be = make_cpu_backend(DType::F64, 1);
    Model m(*be, cfg, 1, cfg.model.seq_len);
    m.init(11);
    std::vector<double> w = read_all(*be, m.truth());
    Rng rng(5, 5);
    for (double& x : w) x += 0.05 * rng.normal();
    return w;
}

std::vector<double> rounded_to_bf16(std::vector<double> w) {
    for (double& x : w) x = bf16_bits_to_float(float_to_bf16_bits(float(x)));
    return w;
}

std::unique_ptr<Backend> cuda_backend(DType compute) {
    BackendOptions o;
    o.cuda_compute = compute;
    return test::make_cuda_under_test(o);
}

// A model on `be` holding weights `w` (its truth; the compute copy follows).
std::unique_ptr<Model> model_with(Backend& be, const Config& cfg, const std::vector<double>& w) {
    auto m = std::make_unique<Model>(be, cfg, kB, cfg.model.seq_len);
    m->init(11);
    be.write(m->truth(), w.data(), DType::F64);
    m->sync_weights();
    return m;
}

struct LossAndGrads {
    double loss = 0;
    std::vector<double> grads;
};

LossAndGrads loss_and_grads(Backend& be, const Config& cfg, const std::vector<double>& w) {
    const int T = cfg.model.seq_len;
    auto m = model_with(be, cfg, w);
    const Batch batch = random_batch(cfg, kB, T, 3);
    m->zero_grad();
    LossAndGrads r;
    r.loss = m->forward(batch.inputs.data(), batch.targets.data(), 1.f / float(kB * T));
    m->backward();
    r.grads = read_all(be, m->grads());
    return r;
}

double norm2(const double* a, const double* b, int64_t n) {  // ||a - b||, or ||a|| when b is null
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        const double d = a[i] - (b ? b[i] : 0.0);
        s += d * d;
    }
    return std::sqrt(s);
}

// The per-tensor bound of the header comment; prints the worst error/bound ratio.
void expect_grads_close(const ParamTable& table, const LossAndGrads& got, const LossAndGrads& want, double tol,
                        const std::string& what) {
    int64_t n = 0;
    double total = 0;
    for (const ParamInfo& p : table.all()) {
        n += p.numel;
        total += std::pow(norm2(want.grads.data() + p.offset, nullptr, p.numel), 2);
    }
    total = std::sqrt(total);
    ASSERT_GT(total, 0.0) << what << ": the reference gradient is zero";
    double worst = 0;
    std::string worst_name;
    for (const ParamInfo& p : table.all()) {
        const double* g = got.grads.data() + p.offset;
        const double* r = want.grads.data() + p.offset;
        const double err = norm2(g, r, p.numel);
        const double bound = tol * (norm2(r, nullptr, p.numel) + total * std::sqrt(double(p.numel) / double(n)));
        EXPECT_LE(err, bound) << what << ": gradient of " << p.name << " off by " << err << " (bound " << bound
                              << ")";
        const double ratio = std::isfinite(err) ? err / bound : INFINITY;
        if (!(ratio <= worst)) worst = ratio, worst_name = p.name;
    }
    std::printf("%s: loss %.6f vs %.6f, worst gradient error/bound %.3g (%s)\n", what.c_str(), got.loss, want.loss,
                worst, worst_name.c_str());
}

// Both modes of one variant: `cand` against the f64 CPU run with the weights `cand` holds.
void check_gradients(Backend& cand, const Config& cfg, double tol, double loss_tol, const std::string& what) {
    const bool bf16 = cand.compute_dtype() == DType::BF16;
    const std::vector<double> w = bf16 ? rounded_to_bf16(test_weights(cfg)) : test_weights(cfg);
    auto ref_be = make_cpu_backend(DType::F64, 1);
    const LossAndGrads want = loss_and_grads(*ref_be, cfg, w);
    const LossAndGrads got = loss_and_grads(cand, cfg, w);
    EXPECT_NEAR(got.loss, want.loss, loss_tol * std::abs(want.loss)) << what;
    expect_grads_close(ParamTable(cfg), got, want, tol, what);
}

// The losses of `steps` AdamW steps (fp32 mode) over four fixed batches in turn.
std::vector<double> train_losses(Backend& be, Config cfg, int steps) {
    cfg.train.lr = 1e-2f;
    const int T = cfg.model.seq_len;
    auto m = model_with(be, cfg, test_weights(cfg));
    AdamW opt(*m, cfg.train, cfg.precision, cfg.run.seed);
    std::vector<Batch> batches;
    for (uint64_t i = 0; i < 4; i++) batches.push_back(random_batch(cfg, kB, T, 100 + i));
    std::vector<double> losses;
    for (int s = 0; s < steps; s++) {
        const Batch& b = batches[size_t(s) % batches.size()];
        m->zero_grad();
        losses.push_back(m->forward(b.inputs.data(), b.targets.data(), 1.f / float(kB * T)));
        m->backward();
        opt.step(cfg.train.lr, std::min(1.0, cfg.train.grad_clip / (opt.grad_norm() + 1e-6)));
    }
    return losses;
}

void expect_tracks(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < want.size(); i++) {
        EXPECT_NEAR(got[i], want[i], kTrainTol * std::abs(want[i])) << what << " step " << i;
        worst = std::max(worst, std::abs(got[i] - want[i]) / std::abs(want[i]));
    }
    // The run must be one where training does something: four batches memorized well below the start.
    EXPECT_LT(want.back(), 0.8 * want.front()) << what << ": the loss did not fall";
    std::printf("%s: loss %.4f -> %.4f, worst relative difference %.3g\n", what.c_str(), want.front(), want.back(),
                worst);
}

class CudaModel : public ::testing::TestWithParam<Variant> {
protected:
    void SetUp() override {
        if (!test::cuda_under_test()) GTEST_SKIP() << "no CUDA device";
    }
};

TEST_P(CudaModel, GradientsMatchCpuFp32) {
    Config cfg = tiny_config("standard");
    GetParam().edit(cfg);
    auto gpu = cuda_backend(DType::F32);
    check_gradients(*gpu, cfg, kTolF32, kTolF32, "cuda fp32 " + GetParam().name);
}

TEST_P(CudaModel, GradientsMatchCpuBf16) {
    Config cfg = tiny_config("standard");
    GetParam().edit(cfg);
    auto gpu = cuda_backend(DType::BF16);
    check_gradients(*gpu, cfg, kTolBf16, kLossTolBf16, "cuda bf16 " + GetParam().name);
}

// attention.impl: sinklab_wgmma (head dim 64), over two key tiles.
TEST_P(CudaModel, GradientsMatchCpuBf16Wgmma) {
    Config cfg = tiny_config("standard");
    cfg.attention.impl = "sinklab_wgmma";
    cfg.model.d_model = 128;
    cfg.model.n_head = 2;
    cfg.model.n_kv_head = 1;
    cfg.model.seq_len = 70;
    GetParam().edit(cfg);
    auto gpu = cuda_backend(DType::BF16);
    check_gradients(*gpu, cfg, kTolBf16, kLossTolBf16, "cuda bf16 wgmma " + GetParam().name);
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaModel, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param.name; });

// tiny_config takes the element-wise paths of the attention (head dim 6, T = 9: one tile), head-norm, qk-norm and
// cross-entropy (vocabulary 23) kernels, and of SwiGLU in bf16 (d_ff 20). Real configs (head dim 64, d_model 768)
// take their 16-byte vector paths, and so do these shapes: d_model 128 as 4 heads of 32 over 2 kv heads or 2 heads of
// 64 over 1, T = 130 (two full 64-row tiles and one of 2 rows), a vocabulary of 72 and d_ff 96 (multiples of 8).
Config vector_path_config(int head_dim) {
    Config c = tiny_config("standard");
    c.model.d_model = 128;
    c.model.n_head = 128 / head_dim;
    c.model.n_kv_head = c.model.n_head / 2;
    c.model.seq_len = 130;
    c.model.vocab_size = 72;
    c.model.d_ff = 96;
    return c;
}

// A composite variant of the kind experiments run, in one mode at one head dim.
struct VectorPathCase {
    std::string name;
    DType compute;
    int head_dim;
    bool wgmma;
    std::function<void(Config&)> edit;
};
void PrintTo(const VectorPathCase& c, std::ostream* os) { *os << c.name; }

// Each composite variant at least once. Together the cases take each of those vector paths in bf16 and, where it has
// one, in fp32; the gate per channel and per head, amplify scaled and centered; the f32 and the mma.sync attention
// kernels at head dims 32 and 64; the dQ pass that recomputes dS (ds_scratch_mib 0); and wgmma twice. Isolated rows:
// 8, the first row of a tile (64) and the last row (129).
std::vector<VectorPathCase> vector_path_cases() {
    const auto isolate_amplify = [](const std::string& mode) {
        return [mode](Config& c) {
            c.attention.qk_norm = true;
            c.intervention.isolate = {8, 64, 129};
            c.intervention.amplify = {8, 5.f, {0, 1}, mode};
        };
    };
    return {
        {"Fp32Hd32_headnorm_gated", DType::F32, 32, false, [](Config& c) { c.attention.variant = "headnorm+gated"; }},
        {"Fp32Hd64_qk_norm_isolate_amplify", DType::F32, 64, false, isolate_amplify("scale")},
        {"Bf16Hd32_sigmoid_headnorm_isolate", DType::BF16, 32, false,
         [](Config& c) {
             c.attention.variant = "sigmoid+headnorm";
             c.attention.sigmoid_bias = -std::log(130.f);
             c.intervention.isolate = {8, 64, 129};
         }},
        {"Bf16Hd64_sink_logit_headnorm_isolate", DType::BF16, 64, false,
         [](Config& c) {
             c.attention.variant = "sink_logit+headnorm";
             c.attention.sink_init = 0.7f;
             c.intervention.isolate = {8, 64, 129};
         }},
        {"Bf16Hd32_headnorm_no_ds_scratch", DType::BF16, 32, false,
         [](Config& c) {
             c.attention.variant = "headnorm";
             c.attention.ds_scratch_mib = 0;
         }},
        {"Bf16Hd64_off_by_one_gated_head", DType::BF16, 64, false,
         [](Config& c) {
             c.attention.variant = "off_by_one+gated";
             c.attention.gate = "head";
         }},
        {"Bf16Hd64Wgmma_headnorm_shared_gated", DType::BF16, 64, true,
         [](Config& c) {
             c.attention.variant = "headnorm+gated";
             c.attention.headnorm.gain = "shared";
         }},
        {"Bf16Hd64Wgmma_qk_norm_isolate_amplify", DType::BF16, 64, true, isolate_amplify("centered")},
    };
}

class CudaModelVectorPaths : public ::testing::TestWithParam<VectorPathCase> {
protected:
    void SetUp() override {
        if (!test::cuda_under_test()) GTEST_SKIP() << "no CUDA device";
    }
};

TEST_P(CudaModelVectorPaths, GradientsMatchCpu) {
    const VectorPathCase& c = GetParam();
    Config cfg = vector_path_config(c.head_dim);
    if (c.wgmma) cfg.attention.impl = "sinklab_wgmma";
    c.edit(cfg);
    auto gpu = cuda_backend(c.compute);
    if (c.compute == DType::BF16)
        check_gradients(*gpu, cfg, kTolBf16, kLossTolBf16, "cuda " + c.name);
    else
        check_gradients(*gpu, cfg, kTolF32, kTolF32, "cuda " + c.name);
}

INSTANTIATE_TEST_SUITE_P(Cuda, CudaModelVectorPaths, ::testing::ValuesIn(vector_path_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(CudaModelCudnn, GradientsMatchCpuBf16) {
    if (!test::cuda_under_test()) GTEST_SKIP() << "no CUDA device";
#if !SINKLAB_HAVE_CUDNN
    GTEST_SKIP() << "built without cuDNN";
#else
    auto gpu = cuda_backend(DType::BF16);
    for (const char* variant : {"standard", "headnorm"})
        check_gradients(*gpu, cudnn_config(variant), kTolBf16, kLossTolBf16, std::string("cudnn bf16 ") + variant);
#endif
}

TEST(CudaModelTraining, Fp32LossesTrackCpu) {
    if (!test::cuda_under_test()) GTEST_SKIP() << "no CUDA device";
    auto gpu = cuda_backend(DType::F32);
    auto cpu = make_cpu_backend(DType::F32, 1);
    for (const char* variant : {"standard", "headnorm"}) {
        const Config cfg = tiny_config(variant);
        expect_tracks(train_losses(*gpu, cfg, 50), train_losses(*cpu, cfg, 50), std::string("cuda fp32 ") + variant);
    }
}

// bf16 weights rounded stochastically from the fp32 master draw new noise at every update: at learning rate 0 the
// master stays as it is, and a third of its values (1/3 for a value uniform between two bf16 neighbours) round to
// the other neighbour at the next update. Noise drawn once would round each weight the same way every time.
TEST(CudaModelTraining, StochasticRoundingDrawsNewNoiseEachUpdate) {
    if (!test::cuda_under_test()) GTEST_SKIP() << "no CUDA device";
    auto gpu = cuda_backend(DType::BF16);
    Config cfg = tiny_config("standard");
    cfg.precision.rounding = "stochastic";
    auto m = model_with(*gpu, cfg, test_weights(cfg));
    ASSERT_FALSE(m->master().empty());
    AdamW opt(*m, cfg.train, cfg.precision, cfg.run.seed);
    m->zero_grad();
    const std::vector<double> master = read_all(*gpu, m->master());
    opt.step(0.0, 1.0);
    const std::vector<double> first = read_all(*gpu, m->weights());
    opt.step(0.0, 1.0);
    const std::vector<double> second = read_all(*gpu, m->weights());
    EXPECT_EQ(read_all(*gpu, m->master()), master);
    size_t moved = 0;
    for (size_t i = 0; i < first.size(); i++) moved += first[i] != second[i];
    EXPECT_GT(moved, first.size() / 5) << moved << " of " << first.size() << " weights rounded the other way";
    EXPECT_LT(moved, first.size() / 2) << moved << " of " << first.size() << " weights rounded the other way";
}

// Every per-step sink metric (or, with heavy, every /heavy one) of one forward and backward pass (as in training),
// read back from `be`.
template <bool heavy = false>
auto sink_values(Backend& be, const Config& cfg, const std::vector<double>& w) {
    auto m = model_with(be, cfg, w);
    const Batch batch = random_batch(cfg, kB, cfg.model.seq_len, 3);
    m->zero_grad();
    m->forward(batch.inputs.data(), batch.targets.data(), 1.f / float(kB * cfg.model.seq_len));
    m->backward();
    SinkMetrics metrics(*m, cfg);
    if constexpr (heavy)
        return metrics.compute_heavy();
    else
        return metrics.compute();
}

// Each metric within rtol of the reference, relative to its field's largest |value| (a mass near 0 is judged on the
// scale of the layer's masses); the channel of the FFN maximum exactly.
void expect_metrics_close(SinkValues got, SinkValues want, double rtol, const std::string& what) {
    const std::vector<std::string> names{"attn_mass", "wo_input_std", "attn_out_std", "dominance", "massive",
                                         "token0_norm_ratio", "ffn_max_act"};
    const auto g = got.averaged(), w = want.averaged();
    ASSERT_EQ(g.size(), names.size()) << "SinkValues::averaged() changed: name its fields here";
    for (size_t f = 0; f < g.size(); f++) {
        ASSERT_EQ(g[f]->size(), w[f]->size()) << what << " " << names[f];
        double scale = 0;
        for (double v : *w[f]) scale = std::max(scale, std::abs(v));
        ASSERT_GT(scale, 0.0) << what << " " << names[f];
        for (size_t i = 0; i < g[f]->size(); i++)
            EXPECT_NEAR((*g[f])[i], (*w[f])[i], rtol * scale) << what << " " << names[f] << "[" << i << "]";
    }
    EXPECT_EQ(got.ffn_top_channel, want.ffn_top_channel) << what;
}

// The metrics the CUDA kernels compute (the fused FFN maximum, the norm ratio from rstd, every layer's median in
// one call) against the CPU backend's, in fp32 mode; the activations differ only by f32 rounding.
TEST(CudaModelMetrics, SinkMetricsMatchCpuFp32) {
    if (!test::cuda_under_test()) GTEST_SKIP() << "no CUDA device";
    auto gpu = cuda_backend(DType::F32);
    auto cpu = make_cpu_backend(DType::F32, 1);
    for (const char* name : {"standard", "headnorm", "sigmoid", "isolate"}) {
        Config cfg = tiny_config("standard");
        for (const Variant& v : variants())
            if (v.name == name) v.edit(cfg);
        cfg.metrics.positions = {0, 2};
        const std::vector<double> w = test_weights(cfg);
        expect_metrics_close(sink_values(*gpu, cfg, w), sink_values(*cpu, cfg, w), 1e-3, std::string("cuda ") + name);
    }
}

// The /heavy metrics through the CUDA backend (the attention map kernel, hidden states and weights read to the host)
// against the CPU backend's, in fp32 mode: the map and the effective rank to f32 rounding of the activations, the
// FFN row norms of the same weights to float rounding, and the units of the largest norms exactly.
TEST(CudaModelMetrics, HeavyMetricsMatchCpuFp32) {
    if (!test::cuda_under_test()) GTEST_SKIP() << "no CUDA device";
    auto gpu = cuda_backend(DType::F32);
    auto cpu = make_cpu_backend(DType::F32, 1);
    const Config cfg = tiny_config("headnorm");
    const std::vector<double> w = test_weights(cfg);
    const HeavyValues got = sink_values<true>(*gpu, cfg, w), want = sink_values<true>(*cpu, cfg, w);
    const auto fields = [](const HeavyValues& v) {
        return std::vector<std::tuple<const char*, const std::vector<double>*, double>>{
            {"effective_rank", &v.effective_rank, 1e-3},
            {"attn_map", &v.attn_map, 1e-3},
            {"ffn_gate_norm", &v.ffn_gate_norm, 1e-6},
            {"ffn_up_norm", &v.ffn_up_norm, 1e-6}};
    };
    const auto g = fields(got), e = fields(want);
    for (size_t f = 0; f < g.size(); f++) {
        const auto& [name, gv, rtol] = g[f];
        const std::vector<double>& ev = *std::get<1>(e[f]);
        ASSERT_EQ(gv->size(), ev.size()) << name;
        ASSERT_FALSE(ev.empty()) << name;
        double scale = 0;
        for (double v : ev) scale = std::max(scale, std::abs(v));
        for (size_t i = 0; i < ev.size(); i++) EXPECT_NEAR((*gv)[i], ev[i], rtol * scale) << name << "[" << i << "]";
    }
    EXPECT_EQ(got.ffn_top_unit, want.ffn_top_unit);
}

// The same harness on the CPU backend in f32: it runs without a GPU.
TEST(CpuF32Model, SinkMetricsMatchF64) {
    auto f32 = make_cpu_backend(DType::F32, 1);
    auto f64 = make_cpu_backend(DType::F64, 1);
    Config cfg = tiny_config("headnorm");
    cfg.metrics.positions = {0, 2};
    const std::vector<double> w = test_weights(cfg);
    expect_metrics_close(sink_values(*f32, cfg, w), sink_values(*f64, cfg, w), 1e-3, "cpu f32 headnorm");
}

TEST(CpuF32Model, GradientsMatchF64) {
    auto cpu = make_cpu_backend(DType::F32, 1);
    for (const Variant& v : variants()) {
        Config cfg = tiny_config("standard");
        v.edit(cfg);
        check_gradients(*cpu, cfg, kTolF32, kTolF32, "cpu f32 " + v.name);
    }
}

TEST(CpuF32Model, TrainingTracksF64) {
    auto f32 = make_cpu_backend(DType::F32, 1);
    auto f64 = make_cpu_backend(DType::F64, 1);
    const Config cfg = tiny_config("headnorm");
    expect_tracks(train_losses(*f32, cfg, 50), train_losses(*f64, cfg, 50), "cpu f32 headnorm");
}

}  // namespace
}  // namespace sinklab::test
