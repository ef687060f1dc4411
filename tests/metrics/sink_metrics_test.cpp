// SinkMetrics::compute end to end on the CPU backend: every per-step metric against its definition (REFERENCE.md,
// DESIGN.md's /sink group) evaluated in double on the activations the forward pass left, after the backward pass as
// in training. This checks the assembly (which op feeds which metric, the buffer layout, the block output's norms
// taken from the next RMSNorm's rstd, the FFN maximum taken by the SwiGLU forward), not only the ops alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "metrics/sink_metrics.h"
#include "model/model_fixture.h"

namespace sinklab::test {
namespace {

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Weight row i of sequence b puts on key p in head h, from the saved qkv [B, T, W], by the attention's definition.
double attention_weight(const std::vector<double>& qkv, const Config& cfg, int T, int b, int h, int i, int p) {
    const ModelConfig& m = cfg.model;
    const int H = m.n_head, Hkv = m.n_kv_head, hd = m.d_model / H, W = (H + 2 * Hkv) * hd;
    const auto& iso = cfg.intervention.isolate;
    const bool isolated = std::find(iso.begin(), iso.end(), i) != iso.end();
    auto score = [&](int j) {
        const double* q = qkv.data() + (size_t(b) * T + i) * W + size_t(h) * hd;
        const double* k = qkv.data() + (size_t(b) * T + j) * W + size_t(H + h / (H / Hkv)) * hd;
        double z = 0;
        for (int d = 0; d < hd; d++) z += q[d] * k[d];
        return z / std::sqrt(double(hd));
    };
    if (cfg.attention.variant == "sigmoid") return sigmoid(score(p) + cfg.attention.sigmoid_bias);
    if (isolated) return 1.0;  // row i sees only itself
    double denom = 0;
    for (int j = 0; j <= i; j++) denom += std::exp(score(j));
    return std::exp(score(p)) / denom;
}

class SinkMetricsCompute : public ::testing::TestWithParam<VariantCase> {};

TEST_P(SinkMetricsCompute, EveryMetricMatchesItsDefinition) {
    Config cfg = tiny_config("standard");
    GetParam().edit(cfg);
    cfg.metrics.positions = {0, 2};
    const int B = 3, T = cfg.model.seq_len, C = cfg.model.d_model, F = cfg.model.d_ff, L = cfg.model.n_layer;
    const int H = cfg.model.n_head, Tp = cfg.metrics.wo_std_positions;
    auto be = make_cpu_backend(DType::F32, 1);
    Model model(*be, cfg, B, T);
    model.init(3);
    const Batch batch = random_batch(cfg, B, T, 4);
    model.zero_grad();
    model.forward(batch.inputs.data(), batch.targets.data(), 1.f / float(B * T));
    model.backward();
    SinkMetrics metrics(model, cfg);
    const SinkValues v = metrics.compute();
    const std::vector<int>& pos = metrics.positions();
    const int P = int(pos.size());
    ASSERT_GE(P, 2);
    ASSERT_EQ(v.attn_mass.size(), size_t(L * H * P));

    const Activations& a = model.acts();
    auto rel = [](double want) { return 1e-4 * std::max(1.0, std::abs(want)); };
    for (int l = 0; l < L; l++) {
        const BlockActs& blk = a.blocks[l];
        const std::vector<double> qkv = read_all(*be, blk.qkv), wo_in = read_all(*be, blk.wo_in),
                                  att = read_all(*be, blk.att), xn1 = read_all(*be, blk.xn1),
                                  act = read_all(*be, blk.act), h = read_all(*be, a.x[l + 1]);
        for (int hh = 0; hh < H; hh++)
            for (int k = 0; k < P; k++) {
                double sum = 0;
                int count = 0;
                for (int b = 0; b < B; b++)
                    for (int i = pos[k]; i < T; i++) {
                        const auto& iso = cfg.intervention.isolate;
                        if (i > pos[k] && std::find(iso.begin(), iso.end(), i) != iso.end()) continue;
                        sum += attention_weight(qkv, cfg, T, b, hh, i, pos[k]);
                        count++;
                    }
                const double want = sum / count;
                EXPECT_NEAR(v.attn_mass[(size_t(l) * H + hh) * P + k], want, rel(want)) << l << " " << hh << " " << k;
            }
        // The std over channels at each of the first Tp positions, batch mean: of the W_O input, and of the
        // attention output before HeadNorm, the gate and amplification.
        for (const auto& [x, got, name] : {std::tuple{&wo_in, &v.wo_input_std, "wo_input_std"},
                                           std::tuple{&att, &v.attn_out_std, "attn_out_std"}}) {
            const int Wo = int(x->size()) / (B * T);
            for (int t = 0; t < Tp; t++) {
                double want = 0;
                for (int b = 0; b < B; b++) {
                    const double* r = x->data() + (size_t(b) * T + t) * Wo;
                    double mean = 0, var = 0;
                    for (int d = 0; d < Wo; d++) mean += r[d] / Wo;
                    for (int d = 0; d < Wo; d++) var += (r[d] - mean) * (r[d] - mean) / Wo;
                    want += std::sqrt(var) / B;
                }
                EXPECT_NEAR((*got)[size_t(l) * Tp + t], want, rel(want)) << name << " " << l << " " << t;
            }
        }
        // Token-0 rows of the normed input (dominance) and of the FFN intermediate (maximum and its channel).
        double dominance = 0, ffn0 = -1, ffn_rest = 0;
        int top = -1;
        for (int b = 0; b < B; b++) {
            const double* r = xn1.data() + size_t(b) * T * C;
            double mx = 0, sa = 0;
            for (int d = 0; d < C; d++) mx = std::max(mx, std::abs(r[d])), sa += std::abs(r[d]);
            dominance += mx / (sa / C) / B;
            for (int t = 0; t < T; t++)
                for (int f = 0; f < F; f++) {
                    const double y = std::abs(act[(size_t(b) * T + t) * F + f]);
                    if (t > 0) ffn_rest = std::max(ffn_rest, y);
                    if (t == 0 && y > ffn0) ffn0 = y, top = f;
                }
        }
        EXPECT_NEAR(v.dominance[l], dominance, rel(dominance)) << l;
        EXPECT_NEAR(v.ffn_max_act[2 * l], ffn0, rel(ffn0)) << l;
        EXPECT_NEAR(v.ffn_max_act[2 * l + 1], ffn_rest, rel(ffn_rest)) << l;
        EXPECT_EQ(v.ffn_top_channel[l], top) << l;
        // The block output: token 0's norm against the others', and sequence 0's largest |h| over its median.
        double norm0 = 0, norm_rest = 0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                double sq = 0;
                for (int d = 0; d < C; d++) sq += std::pow(h[(size_t(b) * T + t) * C + d], 2);
                (t == 0 ? norm0 : norm_rest) += std::sqrt(sq);
            }
        const double ratio = (norm0 / B) / (norm_rest / (B * (T - 1)));
        EXPECT_NEAR(v.token0_norm_ratio[l], ratio, rel(ratio)) << l;
        std::vector<double> seq0;
        for (int i = 0; i < T * C; i++) seq0.push_back(std::abs(h[size_t(i)]));
        std::sort(seq0.begin(), seq0.end());
        const double massive = seq0.back() / seq0[(seq0.size() - 1) / 2];
        EXPECT_NEAR(v.massive[l], massive, rel(massive)) << l;
    }
}

// The score functions the definition above covers (the sink-logit family adds a learned logit to the denominator,
// which the attention op tests check), with isolation and an amplified W_O input.
INSTANTIATE_TEST_SUITE_P(Variants, SinkMetricsCompute, ::testing::ValuesIn([] {
                             std::vector<VariantCase> picked;
                             for (const VariantCase& c : variant_cases())
                                 if (c.name == "standard" || c.name == "headnorm" || c.name == "sigmoid" ||
                                     c.name == "qk_norm" || c.name == "isolate" || c.name.starts_with("amplify_c"))
                                     picked.push_back(c);
                             return picked;
                         }()),
                         [](const ::testing::TestParamInfo<VariantCase>& i) { return i.param.name; });

// REFERENCE.md's sink head: attention mass on token 0 above metrics.sink_eps, so a mass at eps itself is none; a layer
// with a NaN mass (a diverged model) has no rate.
TEST(SinkRate, AHeadIsASinkAboveEpsNotAtIt) {
    Config cfg = tiny_config("standard");
    cfg.metrics.sink_eps = 0.25f;  // exact in binary, as the masses below
    auto be = make_cpu_backend(DType::F32, 1);
    Model model(*be, cfg, 1, cfg.model.seq_len);
    const SinkMetrics metrics(model, cfg);
    const size_t P = metrics.positions().size();
    ASSERT_EQ(cfg.model.n_layer, 2);
    ASSERT_EQ(cfg.model.n_head, 4);
    SinkValues v;
    v.attn_mass.assign(size_t(cfg.model.n_layer * cfg.model.n_head) * P, 0.0);
    const double layer0[] = {0.25, 0.25 + 1e-9, 0.9, 0.1};
    for (size_t h = 0; h < 4; h++) v.attn_mass[h * P] = layer0[h];
    v.attn_mass[4 * P] = std::nan("");
    const std::vector<double> rate = metrics.sink_rate(v);
    ASSERT_EQ(rate.size(), 2u);
    EXPECT_EQ(rate[0], 0.5);
    EXPECT_TRUE(std::isnan(rate[1]));
}

}  // namespace
}  // namespace sinklab::test
