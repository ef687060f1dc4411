// A language model's prediction at position t may depend on tokens 0..t only: for every attention variant and
// intervention, changing the tokens after t leaves the logits at 0..t as they were, and changes those after t
// (so that the check can fail). Centered amplification over the whole sequence is the one exception, by its
// definition (the paper's intervention on a trained model): the test pins that it is not causal at its position.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/model_fixture.h"

namespace sinklab::test {
namespace {

// Largest |difference| of the logits [B, T, V] of two forward passes, per position t (over sequences and ids).
std::vector<double> change_per_position(const std::vector<double>& a, const std::vector<double>& b, int B, int T,
                                        int V) {
    std::vector<double> change(size_t(T), 0.0);
    for (int s = 0; s < B; s++)
        for (int t = 0; t < T; t++)
            for (int v = 0; v < V; v++) {
                const size_t i = (size_t(s) * T + t) * V + v;
                change[size_t(t)] = std::max(change[size_t(t)], std::abs(a[i] - b[i]));
            }
    return change;
}

class ModelCausality : public ::testing::TestWithParam<VariantCase> {};

TEST_P(ModelCausality, NoPositionSeesALaterToken) {
    Config cfg = tiny_config("standard");
    GetParam().edit(cfg);
    const int B = 2, T = cfg.model.seq_len, V = cfg.model.vocab_size;
    auto be = make_cpu_backend(DType::F64, 1);
    Model model(*be, cfg, B, T);
    model.init(4);
    const Batch batch = random_batch(cfg, B, T, 8);
    const auto logits_of = [&](const std::vector<int32_t>& inputs) {
        model.forward(inputs.data(), batch.targets.data(), 0.f);
        return read_all(*be, model.acts().logits);  // [B, T, V]
    };
    const std::vector<double> before = logits_of(batch.inputs);

    const bool sees_the_future = cfg.intervention.amplify.position >= 0 && cfg.intervention.amplify.mode == "centered";
    for (int cut = 0; cut + 1 < T; cut++) {
        std::vector<int32_t> changed = batch.inputs;  // [B, T]
        for (int s = 0; s < B; s++)
            for (int t = cut + 1; t < T; t++) {
                int32_t& id = changed[size_t(s) * T + t];
                id = (id + 1 + (s + t) % (V - 1)) % V;
            }
        const std::vector<double> change = change_per_position(before, logits_of(changed), B, T, V);
        for (int t = 0; t < T; t++) {
            const bool amplified_sees = sees_the_future && t >= cfg.intervention.amplify.position;
            if (t > cut)
                EXPECT_GT(change[size_t(t)], 1e-6) << "position " << t << ", tokens after " << cut << " changed";
            else if (amplified_sees)
                EXPECT_GT(change[size_t(t)], 1e-9) << "position " << t << " sees tokens after " << cut;
            else
                EXPECT_EQ(change[size_t(t)], 0.0) << "position " << t << " sees tokens after " << cut;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Variants, ModelCausality, ::testing::ValuesIn(variant_cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace sinklab::test
