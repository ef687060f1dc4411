// Model::init against the paper's initialization (REFERENCE.md): every matrix N(0, init_std), the two residual output
// projections (W_O and w2) N(0, init_std / sqrt(2 L)), the RMSNorm gains 1.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "model/model_fixture.h"
#include "test_util.h"

namespace sinklab::test {
namespace {

TEST(ModelInit, EachTensorIsDrawnAtThePapersStd) {
    Config cfg = tiny_config("standard");
    cfg.model.vocab_size = 256;
    cfg.model.d_model = 64;
    cfg.model.n_head = 4;
    cfg.model.n_kv_head = 4;
    cfg.model.d_ff = 128;
    cfg.model.n_layer = 3;
    cfg.model.init_std = 0.05f;
    auto be = make_cpu_backend(DType::F64, 1);
    Model model(*be, cfg, 1, cfg.model.seq_len);
    model.init(5);
    const std::vector<double> w = read_all(*be, model.truth());
    const double matrix_std = cfg.model.init_std, residual_std = matrix_std / std::sqrt(2.0 * cfg.model.n_layer);
    int residual = 0, matrices = 0, gains = 0;
    for (const ParamInfo& p : model.table().all()) {
        const double* x = w.data() + p.offset;
        const double n = double(p.numel);
        if (p.name.ends_with("norm") || p.name.ends_with("norm_f")) {
            for (int64_t i = 0; i < p.numel; i++) EXPECT_EQ(x[i], 1.0) << p.name << "[" << i << "]";
            gains++;
            continue;
        }
        const bool is_residual = p.name.ends_with(".wo") || p.name.ends_with(".w2");
        const double want = is_residual ? residual_std : matrix_std;
        (is_residual ? residual : matrices)++;
        double sum = 0, sq = 0;
        for (int64_t i = 0; i < p.numel; i++) sum += x[i], sq += x[i] * x[i];
        const double mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
        // Four standard errors of each estimate: the sd's relative one is 1 / sqrt(2n), 1.1% for 64 x 64.
        EXPECT_LT(std::abs(mean), 4 * want / std::sqrt(n)) << p.name;
        EXPECT_LT(std::abs(sd / want - 1), 4 / std::sqrt(2 * n)) << p.name << ": sd " << sd << ", want " << want;
    }
    EXPECT_EQ(residual, 2 * cfg.model.n_layer);
    EXPECT_EQ(matrices, 1 + 2 * cfg.model.n_layer);  // the embedding, wqkv and w13
    EXPECT_EQ(gains, 1 + 2 * cfg.model.n_layer);
}

// The vectors of the variants that start at a configured value: the sink logits at attention.sink_init, HeadNorm's
// gains (init ones) and QK-norm's at 1.
TEST(ModelInit, TheVariantsVectorsStartWhereTheConfigSays) {
    Config cfg = tiny_config("headnorm+sink_logit");
    cfg.attention.headnorm.init = "ones";
    cfg.attention.sink_init = 0.7f;
    cfg.attention.qk_norm = true;
    auto be = make_cpu_backend(DType::F64, 1);
    Model model(*be, cfg, 1, cfg.model.seq_len);
    model.init(5);
    const std::vector<double> w = read_all(*be, model.truth());
    int sinks = 0, ones = 0;
    for (const ParamInfo& p : model.table().all()) {
        const bool sink = p.name.ends_with(".sink");
        if (!sink && !p.name.ends_with(".headnorm") && !p.name.ends_with("_norm")) continue;
        (sink ? sinks : ones)++;
        const double want = sink ? double(0.7f) : 1.0;
        for (int64_t i = 0; i < p.numel; i++) EXPECT_EQ(w[size_t(p.offset + i)], want) << p.name << "[" << i << "]";
    }
    EXPECT_EQ(sinks, cfg.model.n_layer);
    EXPECT_EQ(ones, 5 * cfg.model.n_layer);  // attn_norm, q_norm, k_norm, headnorm, ffn_norm
}

}  // namespace
}  // namespace sinklab::test
