// What Model::forward accepts of a micro-batch.
#include <gtest/gtest.h>

#include <cmath>

#include "model/model_fixture.h"
#include "test_util.h"

namespace sinklab::test {
namespace {

// An id or a target beyond the vocabulary is the user's error, named with what to do, before any kernel runs (the
// kernels of the two backends would answer it differently); a negative target is a masked row, not an error.
TEST(ModelForward, IdsOutsideTheVocabularyAreRefused) {
    Config cfg = tiny_config("standard");
    auto be = make_cpu_backend(DType::F32, 1);
    const int B = 2, T = cfg.model.seq_len, V = cfg.model.vocab_size;
    Model model(*be, cfg, B, T);
    model.init(cfg.run.seed);
    for (const auto& [input, target] : {std::pair{V, 0}, std::pair{-1, 0}, std::pair{0, V}}) {
        Batch batch = random_batch(cfg, B, T, 3);
        batch.inputs[5] = input;
        batch.targets[5] = target;
        const std::string msg = error_of([&] { model.forward(batch.inputs.data(), batch.targets.data(), 0.f); });
        const std::string where = fmt::format("token 5 of the micro-batch is id {} with target {}", input, target);
        for (const std::string& part : {where, fmt::format("[0, {})", V), std::string("model.vocab_size")})
            EXPECT_NE(msg.find(part), std::string::npos) << part << " missing from: " << msg;
    }
    Batch masked = random_batch(cfg, B, T, 3);
    masked.targets[5] = -1;
    EXPECT_TRUE(std::isfinite(model.forward(masked.inputs.data(), masked.targets.data(), 0.f)));
}

}  // namespace
}  // namespace sinklab::test
