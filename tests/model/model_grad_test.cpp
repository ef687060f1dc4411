// The whole model's gradient against float64 central finite differences, for every attention variant and
// intervention: the backward pass, written op by op, must be the derivative of the forward pass.
#include <gtest/gtest.h>

#include <cmath>

#include "model/model_fixture.h"

namespace sinklab::test {
namespace {

// Centered amplification is left out: it holds the mean constant by definition, so its gradient is not the
// finite difference of the forward (the PyTorch oracle checks it).
std::vector<VariantCase> cases() {
    std::vector<VariantCase> all = variant_cases();
    std::erase_if(all, [](const VariantCase& c) { return c.name == "amplify_centered" || c.name == "amplify_causal"; });
    return all;
}

class ModelGradient : public ::testing::TestWithParam<VariantCase> {};

TEST_P(ModelGradient, MatchesFiniteDifferences) {
    Config cfg = tiny_config("standard");
    GetParam().edit(cfg);
    const int B = 2, T = cfg.model.seq_len;
    auto be = make_cpu_backend(DType::F64, 1);
    Model model(*be, cfg, B, T);
    model.init(11);
    // Move every weight off its init value (gains of exactly 1 and zero sinks would hide mistakes).
    std::vector<double> w = read_all(*be, model.truth());
    Rng rng(5, 5);
    for (double& x : w) x += 0.05 * rng.normal();
    be->write(model.truth(), w.data(), DType::F64);

    const Batch batch = random_batch(cfg, B, T, 3);
    model.zero_grad();
    model.forward(batch.inputs.data(), batch.targets.data(), 1.f / float(B * T));
    model.backward();
    const std::vector<double> grad = read_all(*be, model.grads());

    auto loss_at = [&](size_t i, double x) {
        std::vector<double> p = w;
        p[i] = x;
        be->write(model.truth(), p.data(), DType::F64);
        return model.forward(batch.inputs.data(), batch.targets.data(), 0.f);
    };
    const double eps = 1e-5;
    int checked = 0;
    for (const ParamInfo& p : model.table().all()) {
        Rng pick(17, uint64_t(p.offset));
        for (int k = 0; k < 3; k++) {
            const size_t i = size_t(p.offset) + pick.below(uint64_t(p.numel));
            const double numeric = (loss_at(i, w[i] + eps) - loss_at(i, w[i] - eps)) / (2 * eps);
            EXPECT_NEAR(grad[i], numeric, 1e-7 + 1e-5 * std::abs(numeric))
                << p.name << " element " << (i - size_t(p.offset));
            checked++;
        }
    }
    EXPECT_GE(checked, 3 * 10);
}

INSTANTIATE_TEST_SUITE_P(Variants, ModelGradient, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// Parameter gradients accumulate over micro-steps: two backward passes give twice one.
TEST(ModelGradientAccumulation, TwoPassesDoubleTheGradient) {
    Config cfg = tiny_config("headnorm");
    auto be = make_cpu_backend(DType::F64, 1);
    Model model(*be, cfg, 2, cfg.model.seq_len);
    model.init(1);
    const Batch b = random_batch(cfg, 2, cfg.model.seq_len, 9);
    model.zero_grad();
    model.forward(b.inputs.data(), b.targets.data(), 0.5f);
    model.backward();
    const std::vector<double> once = read_all(*be, model.grads());
    model.forward(b.inputs.data(), b.targets.data(), 0.5f);
    model.backward();
    const std::vector<double> twice = read_all(*be, model.grads());
    double norm = 0;
    for (size_t i = 0; i < once.size(); i++) {
        EXPECT_NEAR(twice[i], 2 * once[i], 1e-12 + 1e-9 * std::abs(once[i]));
        norm += once[i] * once[i];
    }
    EXPECT_GT(norm, 0.0);
}

}  // namespace
}  // namespace sinklab::test
