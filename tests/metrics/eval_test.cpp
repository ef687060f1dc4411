// sinklab eval on a trained run: the loss it reports equals the run's own last validation loss (same weights,
// same held-out batches), eval.h5 holds every metric with its shape, and an intervention can be applied at
// evaluation time.
#include <gtest/gtest.h>

#include <map>

#include "train/train_util.h"

namespace sinklab::test {
namespace {

TEST(Eval, ReproducesTheRunsValidationLossAndWritesEveryMetric) {
    const TempDir dir("eval");
    ASSERT_EQ(run_sinklab(small_run(dir, "e", 12)).rc, 0);
    const std::string run = dir / "e";
    const CommandResult r = run_sinklab(fmt::format("eval {} --batches 2", run));  // the run's metrics.val_batches
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("Sink_1^eps"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("eff.rank"), std::string::npos) << r.out;

    RunLogReader ev(run + "/eval.h5");
    const double logged = column(run + "/metrics.h5", "val", "loss").back();
    EXPECT_NEAR(ev.read("eval", "loss").data.at(0), logged, 1e-6 * logged);
    EXPECT_EQ(ev.read("eval", "step").data, (std::vector<double>{12}));
    const std::map<std::string, std::vector<int64_t>> shapes = {
        {"attn_mass", {1, 2, 4, 1}}, {"sink_rate", {1, 2}},      {"wo_input_std", {1, 2, 64}},
        {"wo_dimwise_std", {1, 2, 64}}, {"dominance", {1, 2}},   {"massive", {1, 2}},
        {"token0_norm_ratio", {1, 2}}, {"ffn_max_act", {1, 2, 2}}, {"ffn_top_channel", {1, 2}},
        {"effective_rank", {1, 2}},  {"attn_map", {1, 2, 64, 64}}, {"sink_percent", {1}}};
    for (const auto& [col, shape] : shapes) EXPECT_EQ(ev.read("eval", col).shape, shape) << col;
    EXPECT_EQ(ev.num_attr("sequences"), 16.0);

    // Isolating row 5 at evaluation time: position 5 is tracked, and the loss changes (the model was not
    // trained with it).
    const CommandResult iso =
        run_sinklab(fmt::format("eval {} --batches 2 --set intervention.isolate=[5] --out {}", run, dir / "iso.h5"));
    ASSERT_EQ(iso.rc, 0) << iso.out;
    RunLogReader ev_iso(dir / "iso.h5");
    EXPECT_EQ(ev_iso.str_attr("sink_positions"), "[0, 5]");
    EXPECT_EQ(ev_iso.read("eval", "attn_mass").shape, (std::vector<int64_t>{1, 2, 4, 2}));
    EXPECT_NE(ev_iso.read("eval", "loss").data.at(0), logged);
}

TEST(Eval, RefusesARunWithoutCheckpointAndAModelThatDoesNotFit) {
    const TempDir dir("eval_bad");
    std::filesystem::create_directories(dir / "empty");
    const CommandResult none = run_sinklab("eval " + (dir / "empty"));
    EXPECT_NE(none.rc, 0);
    EXPECT_NE(none.out.find("holds no checkpoint"), std::string::npos) << none.out;

    ASSERT_EQ(run_sinklab(small_run(dir, "e", 3)).rc, 0);
    const CommandResult wrong = run_sinklab(fmt::format("eval {} --set model.d_model=32", dir / "e"));
    EXPECT_NE(wrong.rc, 0);
    EXPECT_NE(wrong.out.find("model.safetensors"), std::string::npos) << wrong.out;
}

}  // namespace
}  // namespace sinklab::test
