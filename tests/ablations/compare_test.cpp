// sinklab compare's numbers against values worked out by hand (in the comments) from small metrics.h5 files
// written here with RunLog, the tables it prints, how it finds and groups runs, and runs still being written.
#include "metrics/compare.h"

#include "ablation_fixture.h"
#include "cli_util.h"
#include "core/process.h"
#include "metrics/compare_table.h"
#include "metrics/runlog_reader.h"
#include "train/train_util.h"

namespace sinklab::test {
namespace {

using Strings = std::vector<std::string>;
constexpr double kTol = 1e-5;  // values pass through float32 columns

// Two variants x two seeds, 4 logged steps of 100 tokens each; compared with --smooth 2.
//   b-s1 loss 4, 3, 2, 1      smoothed 4, 3.5, 2.5, 1.5    final 1.5
//   b-s2 loss 4, 3.5, 2.5, 1.5 smoothed 4, 3.75, 3, 2       final 2
//   target = (1.5 + 2) / 2 = 1.75
//   b-s1 reaches 1.75 between 2.5 @300 and 1.5 @400: 300 + 0.75 * 100 = 375; b-s2 never does:
//   baseline tokens = 375, the mean over the baseline runs that reach the target
//   h-s1 loss 3, 2, 1, 0.5    smoothed 3, 2.5, 1.5, 0.75   final 0.75, reaches it at 200 + 0.75/1 * 100 = 275
//   h-s2 loss 2, 1, 1, 1      smoothed 2, 1.5, 1, 1        final 1,    reaches it at 100 + 0.25/0.5 * 100 = 150
RunSpec spec_b1() {
    RunSpec s;
    s.loss = {4, 3, 2, 1};
    s.val = {{2, 3.3}, {4, 2.2}};
    // The step-2 row must not count: only the last /sink row does.
    s.sink = {{2, {0.9, 0.9, 0.9, 0.9}, {1, 1}, {9, 9, 9, 9, 9, 9}, {99, 99}},
              {4, {0.6, 0.8, 0.2, 0.4}, {0.5, 1.0}, {4, 1, 3, 3, 2, 4}, {10, 20}}};
    s.effective_rank = {{2, {90, 90}}, {4, {30, 50}}};  // likewise only the last /heavy row
    return s;
}
RunSpec spec_b2() {
    RunSpec s;
    s.loss = {4, 3.5, 2.5, 1.5};
    s.val = {{2, 3.1}, {4, 2.4}};
    s.sink = {{4, {0.5, 0.7, 0.1, 0.3}, {0.0, 0.5}, {2, 2, 2, 6, 1, 2}, {30, 40}}};
    s.effective_rank = {{4, {20, 20}}};
    return s;
}
RunSpec spec_h1() {
    RunSpec s;
    s.loss = {3, 2, 1, 0.5};
    s.sink = {{4, {0.1, 0.1, 0.05, 0.15}, {0, 0}, {1, 1, 1, 1, 1, 1}, {2, 4}}};
    s.att_std = {4, 1, 3, 3, 2, 4};  // HeadNorm-like: the W_O input flat, the attention output before it not

    return s;
}
RunSpec spec_h2() {
    RunSpec s;
    s.loss = {2, 1, 1, 1};
    return s;  // no /sink rows yet
}

class CompareTest : public ::testing::Test {
protected:
    void SetUp() override {
        write_run(suite() / "b-s1", spec_b1());
        write_run(suite() / "b-s2", spec_b2());
        write_run(suite() / "h-s1", spec_h1());
        write_run(suite() / "h-s2", spec_h2());
    }
    fs::path suite() const { return fs::path(dir_.path()) / "suite"; }
    std::vector<RunCurves> read_all(const Strings& args) {
        Strings notes;
        std::vector<RunCurves> runs;
        for (const std::string& d : find_runs(args, notes)) runs.push_back(read_run(d));
        return runs;
    }
    TempDir dir_;
};

TEST(CompareMath, TrailingMeanAndInterpolation) {
    const std::vector<double> m = trailing_mean({1, 2, 3, 4, 5}, 3);
    EXPECT_EQ(m, (std::vector<double>{1, 1.5, 2, 3, 4}));
    EXPECT_EQ(trailing_mean({7, 9}, 1), (std::vector<double>{7, 9}));
    // A skipped step's NaN loss counts in no window and poisons none after it; the curve is NaN at that step.
    const std::vector<double> gap = trailing_mean({1, NAN, 3, 5, 7}, 2);
    EXPECT_TRUE(std::isnan(gap[1]));
    EXPECT_EQ(gap[0], 1);
    EXPECT_EQ(std::vector<double>(gap.begin() + 2, gap.end()), (std::vector<double>{3, 4, 6}));
    const std::vector<double> tokens{10, 20, 30};
    EXPECT_DOUBLE_EQ(tokens_to_reach(tokens, {5, 4, 3}, 3.5), 25);     // halfway between 20 and 30
    EXPECT_DOUBLE_EQ(tokens_to_reach(tokens, {5, 4, 3}, 4), 20);       // exactly at a point
    EXPECT_DOUBLE_EQ(tokens_to_reach(tokens, {2, 4, 3}, 3), 10);       // starts below it
    EXPECT_DOUBLE_EQ(tokens_to_reach(tokens, {5, 2, 1}, 4.25), 12.5);  // the first crossing counts
    EXPECT_DOUBLE_EQ(tokens_to_reach(tokens, {5, NAN, 3}, 4), 30);    // after a skipped step: at the point
    EXPECT_TRUE(std::isnan(tokens_to_reach(tokens, {5, 4, 3.1}, 3)));
    const Stat s = stat_of({1, NAN, 3});
    EXPECT_EQ(s.n, 2);
    EXPECT_EQ(s.of, 3);
    EXPECT_DOUBLE_EQ(s.mean, 2);
    EXPECT_DOUBLE_EQ(s.sd, std::sqrt(2.0));  // sample sd: ((1-2)^2 + (3-2)^2) / (2-1)
    EXPECT_TRUE(std::isnan(stat_of({4}).sd));
}

TEST_F(CompareTest, NumbersMatchTheHandComputation) {
    const Comparison c = compare_runs(read_all({suite().string()}), "", 2);
    EXPECT_EQ(c.baseline, "b");  // the first group (by name: no sweep.yaml here)
    EXPECT_NEAR(c.target_loss, 1.75, kTol);
    EXPECT_NEAR(c.baseline_tokens, 375, kTol);  // b-s1's crossing; b-s2 never gets down to the mean of the two
    EXPECT_EQ(c.baseline_runs, 2);
    EXPECT_EQ(c.positions, (std::vector<int>{0}));
    ASSERT_EQ(c.groups.size(), 2u);
    const GroupRow& b = c.groups[0];
    const GroupRow& h = c.groups[1];
    EXPECT_EQ(b.runs, (Strings{"b-s1", "b-s2"}));
    EXPECT_EQ(b.step_max, 4);
    EXPECT_EQ(b.max_steps, 8);

    EXPECT_NEAR(b.train_loss.mean, 1.75, kTol);
    EXPECT_NEAR(b.train_loss.sd, 0.5 / std::sqrt(2.0), kTol);
    EXPECT_NEAR(h.train_loss.mean, 0.875, kTol);
    EXPECT_NEAR(h.train_loss.sd, 0.25 / std::sqrt(2.0), kTol);

    EXPECT_EQ(b.tokens_to_target.n, 1);  // b-s2 never gets down to the mean of the two
    EXPECT_NEAR(b.tokens_to_target.mean, 375, kTol);
    EXPECT_NEAR(b.speedup.mean, 1.0, kTol);
    EXPECT_EQ(h.tokens_to_target.n, 2);
    EXPECT_NEAR(h.tokens_to_target.mean, (275 + 150) / 2.0, 1e-3);
    EXPECT_NEAR(h.tokens_to_target.sd, 125 / std::sqrt(2.0), 1e-3);
    EXPECT_NEAR(h.speedup.mean, (375.0 / 275 + 375.0 / 150) / 2, 1e-5);
    EXPECT_NEAR(h.speedup.sd, (375.0 / 150 - 375.0 / 275) / std::sqrt(2.0), 1e-5);

    EXPECT_NEAR(b.val_loss.mean, 2.3, kTol);  // last val rows 2.2 and 2.4
    EXPECT_NEAR(b.val_loss.sd, 0.2 / std::sqrt(2.0), kTol);
    EXPECT_EQ(h.val_loss.n, 0);

    // Last /sink rows. b-s1 heads (0.6, 0.8 | 0.2, 0.4) -> layers 0.7, 0.3; b-s2 (0.5, 0.7 | 0.1, 0.3) -> 0.6, 0.2.
    const Stat& mass = b.mass.at(0);
    EXPECT_NEAR(mass.mean, 0.45, kTol);
    EXPECT_NEAR(mass.sd, 0.1 / std::sqrt(2.0), kTol);
    ASSERT_EQ(b.mass_by_layer.at(0).size(), 2u);
    EXPECT_NEAR(b.mass_by_layer.at(0)[0].mean, 0.65, kTol);
    EXPECT_NEAR(b.mass_by_layer.at(0)[1].mean, 0.25, kTol);
    // wo std (4 | 1, 3) -> 2 and (3 | 2, 4) -> 1: 1.5; (2 | 2, 2) -> 1 and (6 | 1, 2) -> 4: 2.5.
    EXPECT_NEAR(b.var_ratio.mean, 2.0, kTol);
    EXPECT_NEAR(b.var_ratio.sd, 1 / std::sqrt(2.0), kTol);
    EXPECT_NEAR(b.att_ratio.mean, 2.0, kTol);  // attn_out_std as wo_input_std
    // h-s1's W_O input is flat (1), its attention output (4 | 1, 3) -> 2 and (3 | 2, 4) -> 1: 1.5.
    EXPECT_NEAR(h.var_ratio.mean, 1.0, kTol);
    EXPECT_NEAR(h.att_ratio.mean, 1.5, kTol);
    EXPECT_EQ(h.att_ratio.n, 1);
    // Per layer: b's runs (2, 1) and (1, 4).
    ASSERT_EQ(b.var_ratio_by_layer.size(), 2u);
    EXPECT_NEAR(b.var_ratio_by_layer[0].mean, 1.5, kTol);
    EXPECT_NEAR(b.var_ratio_by_layer[1].mean, 2.5, kTol);
    EXPECT_NEAR(b.var_ratio_by_layer[1].sd, 3 / std::sqrt(2.0), kTol);
    ASSERT_EQ(h.att_ratio_by_layer.size(), 2u);
    EXPECT_NEAR(h.att_ratio_by_layer[0].mean, 2, kTol);
    EXPECT_NEAR(h.att_ratio_by_layer[1].mean, 1, kTol);
    EXPECT_EQ(h.att_ratio_by_layer[1].n, 1);
    EXPECT_EQ(h.att_ratio_by_layer[1].of, 2);
    EXPECT_NEAR(b.dominance.mean, 25, kTol);   // (10 + 20) / 2 and (30 + 40) / 2
    EXPECT_NEAR(b.sink_rate.mean, 0.5, kTol);  // 0.75 and 0.25
    EXPECT_NEAR(b.effective_rank.mean, 30, kTol);  // (30 + 50) / 2 and 20
    EXPECT_NEAR(b.effective_rank.sd, 20 / std::sqrt(2.0), kTol);
    EXPECT_EQ(h.effective_rank.n, 0);  // no /heavy rows
    EXPECT_EQ(h.mass.at(0).n, 1);              // h-s2 has no /sink row yet
    EXPECT_EQ(h.mass.at(0).of, 2);
    EXPECT_NEAR(h.mass.at(0).mean, 0.1, kTol);

    // Measured against h instead: its final loss (0.875) is below all of b's curve.
    const Comparison vs_h = compare_runs(read_all({suite().string()}), "h", 2);
    EXPECT_NEAR(vs_h.target_loss, 0.875, kTol);
    EXPECT_EQ(vs_h.groups[0].tokens_to_target.n, 0);
    expect_has(error_of([&] { compare_runs(read_all({suite().string()}), "nope", 2); }), {"--baseline 'nope'", "b, h"});
}

// A run log of a sinklab from before /sink/attn_out_std: its att ratio is missing, the rest reads as before.
TEST_F(CompareTest, ALogWithoutTheAttentionOutputStdHasNoAttRatio) {
    const fs::path run = fs::path(dir_.path()) / "old" / "b-s1";
    fs::create_directories(run);
    std::vector<GroupSpec> groups = run_log_groups(2, 2, 1, 3);
    for (GroupSpec& g : groups)
        std::erase_if(g.columns, [](const ColumnSpec& c) { return c.name == "attn_out_std"; });
    auto log = RunLog::create((run / "metrics.h5").string(), groups, {{"sink_positions", "[0]"}}, {});
    log->append("train", full_row(group_of(groups, "train"), {{"step", {1}}, {"tokens", {100}}, {"loss", {2}}}));
    log->append("sink", full_row(group_of(groups, "sink"), {{"step", {1}}, {"wo_input_std", {4, 1, 3, 3, 2, 4}}}));
    log->close();
    const RunCurves r = read_run(run.string());
    EXPECT_EQ(r.var_ratio, (std::vector<double>{2, 1}));
    EXPECT_TRUE(r.att_ratio.empty());
    const std::string md = comparison_markdown(compare_runs({r}, "", 2));
    expect_has(md, {"| 1.50 | - |", "var ratio per layer", "| b | 2.00 | 1.00 |"});
    EXPECT_EQ(md.find("att ratio per layer"), std::string::npos) << md;
}

// A position that an intervention changes is no later token of the discrepancy: amplified by lambda, its std would
// carry the mean over positions 1..Tp-1. The ratios leave the positions of the run's config (metrics.h5's
// config_yaml: a run folder without config.yaml is no different) out.
TEST_F(CompareTest, RatiosLeaveIntervenedPositionsOut) {
    const fs::path root = fs::path(dir_.path()) / "intervened";
    RunSpec s = spec_b1();
    s.att_std = {4, 1, 30, 3, 2, 40};  // position 2 amplified
    s.config_yaml = "train: {max_steps: 8}\nintervention:\n  amplify: {position: 2, lambda: 10, layers: [0, 1]}\n";
    write_run(root / "amp-s1", s);
    const RunCurves amp = read_run((root / "amp-s1").string());
    // wo std (4 | 1, 3) -> 4 / 1 and (3 | 2, 4) -> 3 / 2; attn out std (4 | 1, 30) -> 4 and (3 | 2, 40) -> 1.5.
    EXPECT_EQ(amp.var_ratio, (std::vector<double>{4, 1.5}));
    EXPECT_EQ(amp.att_ratio, (std::vector<double>{4, 1.5}));
    s.config_yaml = "train: {max_steps: 8}\nintervention: {isolate: [2]}\n";
    write_run(root / "iso-s1", s);
    EXPECT_EQ(read_run((root / "iso-s1").string()).var_ratio, (std::vector<double>{4, 1.5}));
    s.config_yaml = "";  // no intervention: all positions count
    write_run(root / "none-s1", s);
    EXPECT_EQ(read_run((root / "none-s1").string()).var_ratio, (std::vector<double>{2, 1}));
}

// Variants trained on different learning-rate schedules are compared with a note naming the keys; other differences
// (the variant itself) are what a comparison is for.
TEST_F(CompareTest, AnotherScheduleThanTheBaselinesIsNoted) {
    const fs::path root = fs::path(dir_.path()) / "schedules";
    write_run(root / "b-s1", spec_b1(), "train: {max_steps: 8}\nattention: {variant: standard}\n");
    write_run(root / "h-s1", spec_h1(), "train: {max_steps: 8}\nattention: {variant: headnorm}\n");
    write_run(root / "l-s1", spec_h1(), "train: {max_steps: 12, lr: 0.002}\nattention: {variant: headnorm}\n");
    const Comparison c = compare_runs(read_all({root.string()}), "b", 2);
    ASSERT_EQ(c.notes.size(), 1u) << fmt::format("{}", fmt::join(c.notes, "\n"));
    EXPECT_EQ(c.notes[0], "l was trained on another learning-rate schedule than b (train.max_steps 8 vs 12, train.lr "
                          "0.001 vs 0.002, b's first): its tokens to target and speed-up measure the schedule as well "
                          "as the variant");
}

// An isolated row puts all its weight on itself, 1/n of the mass on token k that compare reports (a mean over the n
// rows that see k: from k on, but later isolated rows): noted with that share, for each isolated position (row 0 is
// token 0's anyway). The positions and T come from metrics.h5's config_yaml, as for the ratios: a run folder without
// config.yaml is noted.
TEST_F(CompareTest, AnIsolatedRowsOwnWeightIsNoted) {
    const fs::path root = fs::path(dir_.path()) / "isolated";
    RunSpec b = spec_b1(), iso = spec_h1();
    b.config_yaml = "train: {max_steps: 8}\nmodel: {seq_len: 66}\n";
    iso.config_yaml = "train: {max_steps: 8}\nmodel: {seq_len: 66}\nintervention: {isolate: [0, 2, 35]}\n";
    write_run(root / "b-s1", b);
    write_run(root / "iso-s1", iso);
    const Comparison c = compare_runs(read_all({root.string()}), "b", 2);
    // Rows 2..65 but the isolated row 35 see token 2: 63 of them; rows 35..65 see token 35: 31.
    EXPECT_EQ(c.notes, (Strings{"iso: its tok2 mass counts row 2's own weight on itself (it is isolated), 1/63 = "
                                "0.0159 (one of the 63 rows that see it) in every layer: take that off to read "
                                "attention drawn to token 2",
                                "iso: its tok35 mass counts row 35's own weight on itself (it is isolated), 1/31 = "
                                "0.0323 (one of the 31 rows that see it) in every layer: take that off to read "
                                "attention drawn to token 35"}));
    expect_has(comparison_markdown(c), {"\nNotes:\n\n- iso: its tok2 mass counts row 2's own weight", "\n- iso: its "
                                        "tok35 mass"});
}

// A start that replaced h-s1 and failed on another rank before its first step left the run in h-s1/.replaced and its
// own one-step log in h-s1: compare reads the run that the next start puts back, config.yaml too.
TEST_F(CompareTest, ARunLeftAsideByAFailedStartIsReadWhereItWaits) {
    const fs::path root = fs::path(dir_.path()) / "aside";
    write_run(root / "b-s1", spec_b1(), "train: {max_steps: 4}\n");
    write_run(root / "h-s1" / ".replaced", spec_h1(), "train: {max_steps: 4}\n");
    RunSpec started;
    started.loss = {9};
    write_run(root / "h-s1", started, "train: {max_steps: 50}\n");
    for (const std::string& arg : {root.string(), (root / "h-s1").string()}) {
        const Comparison c = compare_runs(read_all({arg}), "", 2);
        const GroupRow& h = c.groups.back();
        EXPECT_EQ(h.name, "h") << arg;
        EXPECT_EQ(h.step_max, 4) << arg;
        EXPECT_NEAR(h.train_loss.mean, 0.75, kTol) << arg;  // (1 + 0.5) / 2
        EXPECT_EQ(h.max_steps, 4) << arg;
    }
}

TEST_F(CompareTest, TablesShowTheNumbersAndDashesForWhatIsMissing) {
    const Comparison c = compare_runs(read_all({suite().string()}), "", 2);
    const std::string text = comparison_text(c);
    expect_has(text, {"baseline b: target train loss 1.7500", "last 2 logged steps", "mean of 2 runs", "at 375 tokens",
                      "tokens to target", "tok0 mass", "375 (1/2)", "1.00x (1/2)", "2.3000 ± 0.1414", "4/8",
                      "0.8750 ± 0.1768", "212 ± 88.4", "1.93x ± 0.80x", "0.100 (1/2)", "25.0 ± 14.1", "2.00 ± 0.71",
                      "attention mass on token 0 per layer", "layer 1", "0.650 ± 0.071", "eff. rank", "30.0 ± 14.1"});
    const std::string md = comparison_markdown(c);
    expect_has(md, {"| variant | runs | step | train loss | val loss | tokens to target | speed-up | tok0 mass | sink "
                    "rate | dominance | var ratio | att ratio | eff. rank |\n| --- | ---: |",
                    "| b | 2 | 4/8 | 1.7500 ± 0.3536 | 2.3000 ± 0.1414 | 375 (1/2) | 1.00x (1/2) | 0.450 ± 0.071 | "
                    "0.500 ± 0.354 | 25.0 ± 14.1 | 2.00 ± 0.71 | 2.00 ± 0.71 | 30.0 ± 14.1 |",
                    "| 1.00 (1/2) | 1.50 (1/2) | - |",
                    "| h | 2 | 4/8 | 0.8750 ± 0.1768 | - | 212 ± 88.4 |", "| b | 0.650 ± 0.071 | 0.250 ± 0.071 |",
                    "var ratio per layer (W_O-input std", "| b | 1.50 ± 0.71 | 2.50 ± 2.12 |",
                    "att ratio per layer", "| h | 2.00 (1/2) | 1.00 (1/2) |"});
    // A run without /sink rows still has the columns of the positions it tracks, with dashes.
    const std::string none = comparison_markdown(compare_runs(read_all({(suite() / "h-s2").string()}), "", 2));
    expect_has(none, {"| tok0 mass | sink rate | dominance | var ratio | att ratio | eff. rank |",
                      "| - | - | - | - | - | - |\n"});
    EXPECT_EQ(none.find("per layer"), std::string::npos) << "a per-layer table without layers:\n" << none;
}

// attn_mass's columns are the key positions in the file's sink_positions, in that order: the trainer puts 0 first
// and adds the interventions' positions, so the config's metrics.positions ([8, 0] here) does not say.
TEST_F(CompareTest, TrackedPositionsAreTheFilesSinkPositions) {
    RunSpec s = spec_h1();
    s.positions = {0, 8};  // attn_mass [L, H, P]: P index 0 is token 0, index 1 is token 8
    s.config_yaml = "train:\n  max_steps: 8\nmetrics:\n  positions: [8, 0]\n";
    s.sink = {{4, {0.9, 0.2, 0.7, 0.4, 0.5, 0.1, 0.3, 0.3}, {0, 0}, {1, 1, 1, 1, 1, 1}, {1, 1}}};
    const fs::path dir = fs::path(dir_.path()) / "iso-s1";
    write_run(dir, s);
    const RunCurves r = read_run(dir.string());
    ASSERT_EQ(r.mass.size(), 2u);
    EXPECT_NEAR(r.mass.at(8)[0], 0.3, kTol);  // (0.2 + 0.4) / 2
    EXPECT_NEAR(r.mass.at(8)[1], 0.2, kTol);  // (0.1 + 0.3) / 2
    EXPECT_NEAR(r.mass.at(0)[0], 0.8, kTol);  // (0.9 + 0.7) / 2
    EXPECT_NEAR(r.mass.at(0)[1], 0.4, kTol);
    const Comparison c = compare_runs(read_all({(suite() / "b-s1").string(), dir.string()}), "", 2);
    EXPECT_EQ(c.positions, (std::vector<int>{0, 8}));
    expect_has(comparison_text(c), {"tok8 mass", "attention mass on token 8 per layer"});
    EXPECT_EQ(c.groups[0].mass.count(8), 1u);
    EXPECT_EQ(c.groups[0].mass.at(8).n, 0);  // b-s1 does not track token 8: "-"
}

// A run folder copied under a seed's name is one run (metrics.h5's run_id says so), which a seed mean would count
// twice: refused. The same copy as a variant of its own (a branch resumed from the copied checkpoint) compares.
TEST(CompareTrainedRun, ACopiedRunIsNoSecondSeed) {
    const TempDir dir("compare_copied");
    ASSERT_EQ(run_sinklab(small_run(dir, "v-s1", 2)).rc, 0);
    std::filesystem::copy(dir / "v-s1", dir / "v-s2", std::filesystem::copy_options::recursive);
    const CommandResult copied = run_sinklab("compare " + dir.path());
    EXPECT_EQ(copied.rc, 1) << copied.out;
    const std::string run_id = RunLogReader(dir / "v-s1/metrics.h5").str_attr("run_id");
    expect_has(copied.out, {dir / "v-s1" + " and " + dir / "v-s2" + " are grouped as seeds of variant v",
                            "they are one run (the same run_id " + run_id + ": one folder is a copy of the other)"});
    std::filesystem::rename(dir / "v-s2", dir / "branch-s1");
    const CommandResult branch = run_sinklab("compare " + dir.path());
    EXPECT_EQ(branch.rc, 0) << branch.out;
}

// A trained run: metrics.positions [3, 0] and an isolated row 5 give attn_mass columns for tokens 0, 3, 5 (0 first,
// repeats dropped, then the interventions', as README's "Reading metrics.h5" says), and compare takes each
// token's mass from its own column.
TEST(CompareTrainedRun, EachTokensMassComesFromItsColumn) {
    const TempDir dir("compare_positions");
    const CommandResult trained = run_sinklab(small_run(
        dir, "iso-s1", 3, "--set metrics.positions=[3,0] --set intervention.isolate=[5] --set metrics.every=1"));
    ASSERT_EQ(trained.rc, 0) << trained.out;
    const RunCurves r = read_run(dir / "iso-s1");
    EXPECT_EQ(r.positions, (std::vector<int>{0, 3, 5}));
    const Dataset mass = RunLogReader(dir / "iso-s1/metrics.h5").read("sink", "attn_mass");  // [n, L, H, P]
    const int64_t n = mass.shape[0], L = mass.shape[1], H = mass.shape[2], P = mass.shape[3];
    ASSERT_EQ(P, 3);
    for (const auto& [column, token] : {std::pair{0, 0}, {1, 3}, {2, 5}}) {
        ASSERT_EQ(r.mass.count(token), 1u) << token;
        for (int64_t l = 0; l < L; l++) {
            double sum = 0;
            for (int64_t h = 0; h < H; h++) sum += mass.data[size_t((((n - 1) * L + l) * H + h) * P + column)];
            EXPECT_NEAR(r.mass.at(token)[size_t(l)], sum / double(H), kTol) << "token " << token << " layer " << l;
        }
    }
    // Distinct columns, so that a swap of two would show above.
    EXPECT_GT(std::abs(r.mass.at(0)[0] - r.mass.at(3)[0]), 1e-3);
    EXPECT_GT(std::abs(r.mass.at(3)[0] - r.mass.at(5)[0]), 1e-3);
}

TEST_F(CompareTest, SuiteFoldersExpandInSuiteOrderAndRunsGroupByVariant) {
    Strings notes;
    write_file(suite() / "sweep.yaml", "variants: [h, b]\n");
    write_run(suite() / "h-s10", spec_h2());
    write_file(suite() / "b-s3/config.yaml", "run: {name: b-s3}\n");  // started, nothing logged yet
    write_run(suite() / ".replaced", spec_h2());  // hidden: no run of the suite (as train --overwrite sets one aside)
    const fs::path s = suite();
    EXPECT_EQ(find_runs({s.string()}, notes),
              (Strings{(s / "h-s1").string(), (s / "h-s2").string(), (s / "h-s10").string(), (s / "b-s1").string(),
                       (s / "b-s2").string()}));
    ASSERT_EQ(notes.size(), 1u);
    expect_has(notes[0], {"b-s3", "no metrics.h5 yet"});
    EXPECT_EQ(compare_runs(read_all({s.string()}), "", 2).baseline, "h");  // the suite's first variant

    // A run folder, its metrics.h5 and the suite again: each run once, in the order given.
    EXPECT_EQ(find_runs({(s / "b-s2/metrics.h5").string(), (s / "b-s1").string(), s.string()}, notes).size(), 5u);
    EXPECT_EQ(find_runs({(s / "b-s2/metrics.h5").string()}, notes), Strings{(s / "b-s2").string()});
    // One run however its path is spelled: with a trailing slash, through "..", or through a link.
    fs::create_directory_symlink(s / "b-s2", fs::path(dir_.path()) / "link");
    EXPECT_EQ(find_runs({(s / "b-s2").string(), (s / "b-s2/").string(), (s / "h-s1/../b-s2").string(),
                         (fs::path(dir_.path()) / "link").string()},
                        notes),
              Strings{(s / "b-s2").string()});

    // Two suites with the same run names: groups are named by folder.
    const fs::path other = fs::path(dir_.path()) / "other";
    write_run(other / "b-s1", spec_b2());
    const Comparison c = compare_runs(read_all({(s / "b-s1").string(), (other / "b-s1").string()}), "", 2);
    ASSERT_EQ(c.groups.size(), 2u);
    EXPECT_EQ(c.groups[0].name, "suite/b");
    EXPECT_EQ(c.groups[1].name, "other/b");
    // Suite folders of one name (a suite before and after a change): named by as much of their paths as tells
    // them apart, each seed in its own group once.
    const fs::path before = fs::path(dir_.path()) / "runs/s", after = fs::path(dir_.path()) / "runs-new/s";
    for (const fs::path& f : {before, after}) {
        write_run(f / "b-s1", spec_b1());
        write_run(f / "b-s2", spec_b2());
    }
    const Comparison twice = compare_runs(read_all({before.string(), after.string()}), "", 2);
    ASSERT_EQ(twice.groups.size(), 2u);
    EXPECT_EQ(twice.groups[0].name, "runs/s/b");
    EXPECT_EQ(twice.groups[1].name, "runs-new/s/b");
    EXPECT_EQ(twice.groups[1].runs, (Strings{"b-s1", "b-s2"}));

    expect_has(error_of([&] { find_runs({(s / "missing").string()}, notes); }), {"missing", "no such file or folder"});
    fs::create_directories(fs::path(dir_.path()) / "empty");
    expect_has(error_of([&] { find_runs({(fs::path(dir_.path()) / "empty").string()}, notes); }), {"holds no run"});
}

// Runs named as seeds of one variant must have been trained alike: a seed, a folder or the thread count may
// differ, the attention variant or the learning rate may not.
TEST_F(CompareTest, RunsOfDifferentConfigsAreNoSeedsOfOneVariant) {
    const fs::path a = fs::path(dir_.path()) / "cmpA" / "x-s1", b = fs::path(dir_.path()) / "cmpB" / "x-s2";
    write_run(a, spec_b1(), "run: {seed: 1, threads: 2}\nattention: {variant: standard}\n");
    write_run(b, spec_b2(), "run: {seed: 2, threads: 4}\nattention: {variant: standard}\n");
    const Comparison same = compare_runs(read_all({a.string(), b.string()}), "", 2);
    ASSERT_EQ(same.groups.size(), 1u);
    EXPECT_EQ(same.groups[0].runs.size(), 2u);

    write_file(b / "config.yaml", "run: {seed: 2}\nattention: {variant: headnorm}\ntrain: {lr: 0.01}\n");
    EXPECT_EQ(error_of([&] { compare_runs(read_all({a.string(), b.string()}), "", 2); }),
              fmt::format("{} and {} are grouped as seeds of variant x by their folder names, but their configs "
                          "differ: attention.variant \"standard\" vs \"headnorm\", train.lr 0.001 vs 0.01; compare "
                          "them in separate commands, or give runs of different configs different names "
                          "(<variant>-s<seed>)",
                          a.string(), b.string()));

    // A config.yaml that no longer loads leaves its run out of the check, and the comparison says so.
    write_file(b / "config.yaml", "train: {no_such_key: 1}\n");
    const Comparison unchecked = compare_runs(read_all({a.string(), b.string()}), "", 2);
    ASSERT_EQ(unchecked.notes.size(), 1u);
    expect_has(unchecked.notes[0], {b.string(), "config.yaml does not load", "no_such_key",
                                    "averaged as a seed of variant x without checking"});
    // A missing one too.
    fs::remove(b / "config.yaml");
    const Comparison missing = compare_runs(read_all({a.string(), b.string()}), "", 2);
    ASSERT_EQ(missing.notes.size(), 1u);
    expect_has(missing.notes[0], {b.string() + ": its config.yaml is missing",
                                  "averaged as a seed of variant x without checking"});
    // Alone in its group there is nothing to check it against.
    EXPECT_TRUE(compare_runs(read_all({b.string()}), "", 2).notes.empty());
}

// The data's checksums that metrics.h5 holds: seeds of one variant on other tokens are refused like other configs;
// variants validated on other tokens than the baseline get a note (their val losses do not compare). A file
// without them (an older sinklab's) is not checked.
TEST_F(CompareTest, RunsOnOtherTokensAreNamed) {
    const fs::path root = fs::path(dir_.path()) / "data";
    const std::string config = "run: {seed: 1}\n";  // seeds' configs alike: the data is what differs
    const auto with = [](RunSpec spec, const std::string& train, const std::string& val) {
        spec.train_checksum = train;
        spec.val_checksum = val;
        return spec;
    };
    write_run(root / "b-s1", with(spec_b1(), "s2:t1", "s2:v1"), config);
    write_run(root / "b-s2", with(spec_b2(), "s2:t1", "s2:v1"), config);
    write_run(root / "h-s1", with(spec_h1(), "s2:t1", "s2:v1"), config);
    write_run(root / "h-s2", with(spec_h2(), "", ""), config);
    const std::vector<std::string> runs = {root / "b-s1", root / "b-s2", root / "h-s1", root / "h-s2"};
    EXPECT_TRUE(compare_runs(read_all(runs), "", 2).notes.empty());

    fs::remove_all(root / "h-s1");
    write_run(root / "h-s1", with(spec_h1(), "s2:t1", "s2:v2"), config);
    const Comparison other_val = compare_runs(read_all(runs), "", 2);
    ASSERT_EQ(other_val.notes.size(), 1u);
    EXPECT_EQ(other_val.notes[0],
              "h was validated on other tokens than b (data.val checksum s2:v2 vs s2:v1): their val losses do not "
              "compare");

    // Seeds on other tokens, also where the variant's first run logged no checksums.
    for (const char* dir : {"b-s1", "b-s2"}) fs::remove_all(root / dir);
    write_run(root / "b-s1", spec_b1(), config);
    write_run(root / "b-s2", with(spec_b2(), "s2:t2", "s2:v1"), config);
    write_run(root / "b-s3", with(spec_b1(), "s2:t1", "s2:v1"), config);
    std::vector<std::string> three = runs;
    three.insert(three.begin() + 2, root / "b-s3");
    EXPECT_EQ(error_of([&] { compare_runs(read_all(three), "", 2); }),
              fmt::format("{} and {} are grouped as seeds of variant b by their folder names, but they ran on other "
                          "data: data.train tokens (checksum s2:t2 vs s2:t1) (shards prepared again between the "
                          "runs?); compare them in separate commands",
                          (root / "b-s2").string(), (root / "b-s3").string()));
}

// Validation reads the first val_batches x micro_batch windows of seq_len tokens: a variant of another micro-batch
// validates on the baseline's tokens when its val_batches makes up for it, and gets a note when not, or when its
// windows are of another length. A variant that logged no validation gets none.
TEST_F(CompareTest, VariantsValidatedOnOtherWindowsAreNoted) {
    const fs::path root = fs::path(dir_.path()) / "windows";
    write_run(root / "b-s1", spec_b1(), "train: {micro_batch: 8}\nmetrics: {val_batches: 8}\n");
    write_run(root / "same-s1", spec_b2(), "train: {micro_batch: 4}\nmetrics: {val_batches: 16}\n");
    write_run(root / "fewer-s1", spec_b2(), "train: {micro_batch: 4}\nmetrics: {val_batches: 8}\n");
    write_run(root / "longer-s1", spec_b2(),
              "model: {seq_len: 2048}\ntrain: {micro_batch: 8}\nmetrics: {val_batches: 8}\n");
    write_run(root / "none-s1", spec_h1(), "train: {micro_batch: 4}\nmetrics: {val_batches: 8}\n");
    const Comparison c = compare_runs(read_all({root.string()}), "b", 2);
    const auto note = [](const std::string& variant, const std::string& windows) {
        return variant + " was validated on other windows of data.val than b (the first metrics.val_batches x "
                         "train.micro_batch = " + windows + "): their val losses do not compare";
    };
    EXPECT_EQ(c.notes, (Strings{note("fewer", "32 windows of 1024 tokens vs 64 of 1024"),
                                note("longer", "64 windows of 2048 tokens vs 64 of 1024"),
                                "longer was trained on sequences of another length than b (model.seq_len 1024 vs "
                                "2048, b's first): its losses are over other contexts, and its attention masses "
                                "spread over another number of keys (uniform attention puts 1/T on each), so neither "
                                "compares directly"}));
}

// Variants that differ from the baseline in more than the variant: another tokenizer, sink metrics measured with
// other settings, other training tokens (by the logged checksum: the globs may name copies). Each gets a note naming
// what differs, the baseline's value first; a variant that differs only in attention gets none.
TEST_F(CompareTest, OtherTokenizersSinkSettingsAndTrainingTokensAreNoted) {
    const fs::path root = fs::path(dir_.path()) / "measures";
    RunSpec b = spec_b1(), other_data = spec_h1();
    b.train_checksum = "s2:t1";
    other_data.train_checksum = "s2:t2";
    write_run(root / "b-s1", b, "attention: {variant: standard}\n");
    write_run(root / "h-s1", spec_h1(), "attention: {variant: headnorm}\n");
    write_run(root / "bpe-s1", spec_h1(), "data: {tokenizer: gpt2}\nmodel: {vocab_size: 50304}\n");
    write_run(root / "eps-s1", spec_h1(), "metrics: {sink_eps: 0.02, wo_std_positions: 4}\n");
    write_run(root / "data-s1", other_data, "attention: {variant: standard}\n");
    const Comparison c = compare_runs(read_all({root.string()}), "b", 2);
    const Config defaults = load_config(fmt::format("{}/configs/base.yaml", SINKLAB_SOURCE_DIR));
    EXPECT_EQ(c.notes,
              (Strings{fmt::format("bpe was trained with another tokenizer than b (data.tokenizer \"{}\" vs \"gpt2\", "
                                   "b's first): its losses are per token of another vocabulary: neither they nor "
                                   "tokens to target compare",
                                   defaults.data.tokenizer),
                       "data was trained on other tokens than b (data.train checksum s2:t2 vs s2:t1): its losses and "
                       "tokens to target measure the data as well as the variant",
                       fmt::format("eps measured its sinks with other settings than b (metrics.wo_std_positions {} vs "
                                   "4, metrics.sink_eps {} vs 0.02, b's first): its sink rate (sink_eps) or var and "
                                   "att ratios (wo_std_positions) are other measures",
                                   defaults.metrics.wo_std_positions, defaults.metrics.sink_eps)}))
        << fmt::format("{}", fmt::join(c.notes, "\n"));
}

// A run still training: the reader sees what the writer has flushed so far, and sees more after refresh.
TEST_F(CompareTest, WorksWhileARunIsBeingWritten) {
    RunSpec s = spec_h1();
    s.loss = {3, 2, 1, 0.5, 0.4, 0.3};
    s.sink = {{2, {0.5, 0.5, 0.5, 0.5}, {1, 1}, {2, 1, 1, 2, 1, 1}, {5, 5}},
              {5, {0.1, 0.3, 0.1, 0.3}, {0, 0}, {3, 1, 1, 3, 1, 1}, {7, 7}}};
    const fs::path live = fs::path(dir_.path()) / "live" / "h-s1";
    fs::create_directories(live);
    LiveWriter writer((live / "metrics.h5").string(), s, {3, 6});
    ASSERT_TRUE(writer.wait_stage());
    RunCurves r = read_run(live.string());
    EXPECT_EQ(r.step, (std::vector<double>{1, 2, 3}));
    EXPECT_EQ(r.sink_step, 2);
    Comparison c = compare_runs({read_run((suite() / "b-s1").string()), r}, "", 2);
    EXPECT_EQ(c.groups[1].step_max, 3);
    EXPECT_NEAR(c.groups[1].train_loss.mean, 1.5, kTol);  // (2 + 1) / 2
    expect_has(comparison_text(c), {"3/8"});

    writer.next_stage();
    ASSERT_TRUE(writer.wait_stage());
    r = read_run(live.string());
    EXPECT_EQ(r.step.size(), 6u);
    EXPECT_EQ(r.sink_step, 5);
    EXPECT_NEAR(r.mass.at(0)[0], 0.2, kTol);
    EXPECT_NEAR(r.var_ratio[0], 3.0, kTol);
    if (plot_deps_available()) {  // the plot script reads the open file too (h5py, swmr=True)
        const std::string png = (fs::path(dir_.path()) / "live.png").string();
        EXPECT_TRUE(run_process({"/usr/bin/python3", kPlotScript, live.string(), "-o", png}).ok());
        EXPECT_GT(fs::file_size(png), 1000u);
    }
    EXPECT_EQ(writer.finish(), 0);
    EXPECT_EQ(read_run(live.string()).step.size(), 6u);
}

// The command a user types: tables on stdout, --markdown written, errors as one line and exit code 1.
TEST_F(CompareTest, CommandLine) {
    const std::string md = (fs::path(dir_.path()) / "table.md").string();
    const CommandResult ok = run_sinklab(fmt::format("compare {} --smooth 2 --markdown {}", suite().string(), md));
    ASSERT_EQ(ok.rc, 0) << ok.out;
    expect_has(ok.out, {"baseline b: target train loss 1.7500", "212 ± 88.4", "wrote " + md});
    expect_has(read_file(md), {"| h | 2 | 4/8 | 0.8750 ± 0.1768 |"});

    const CommandResult vs = run_sinklab(
        fmt::format("compare {} {} --smooth 2 --baseline h", (suite() / "h-s1").string(), (suite() / "b-s1").string()));
    ASSERT_EQ(vs.rc, 0) << vs.out;
    expect_has(vs.out, {"baseline h: target train loss 0.7500"});

    const CommandResult bad = run_sinklab("compare " + (suite() / "nope").string());
    EXPECT_EQ(bad.rc, 1);
    expect_has(bad.out, {"sinklab: error: ", "nope: no such file or folder"});
}

// compare replaces its own earlier outputs and nothing else: --markdown or --plot naming a run's metrics.h5, a
// config or a figure of another origin is refused before any work, and the file is left as it was.
TEST_F(CompareTest, OutputsReplaceOnlyCompareOutputs) {
    const std::string md = (fs::path(dir_.path()) / "table.md").string();
    for (int again = 0; again < 2; again++) {
        const CommandResult ok = run_sinklab(fmt::format("compare {} --smooth 2 --markdown {}", suite().string(), md));
        ASSERT_EQ(ok.rc, 0) << ok.out;
    }
    expect_has(read_file(md), {"| h | 2 | 4/8 | 0.8750 ± 0.1768 |"});

    const fs::path notes = fs::path(dir_.path()) / "notes.md";
    write_file(notes, "my notes\n");
    const std::string metrics = (suite() / "b-s1" / "metrics.h5").string();
    const std::string metrics_before = read_file(metrics);
    for (const std::string option : {"--markdown", "--plot"})
        for (const std::string& target : {notes.string(), metrics}) {
            const CommandResult refused =
                run_sinklab(fmt::format("compare {} {} {}", suite().string(), option, target));
            EXPECT_EQ(refused.rc, 1) << refused.out;
            EXPECT_EQ(refused.out, fmt::format("sinklab: error: {} {}: the file exists and was not written by sinklab "
                                               "compare, which replaces only its own {}; give another {} or remove "
                                               "the file\n",
                                               option, target, option == "--plot" ? "plots" : "tables", option));
        }
    EXPECT_EQ(read_file(notes.string()), "my notes\n");
    EXPECT_EQ(read_file(metrics), metrics_before);

    if (!plot_deps_available()) GTEST_SKIP() << "skipped: no h5py and matplotlib for /usr/bin/python3";
    const std::string png = (fs::path(dir_.path()) / "runs.png").string();
    for (int again = 0; again < 2; again++) {
        const CommandResult ok = run_sinklab(fmt::format("compare {} --plot {}", suite().string(), png));
        ASSERT_EQ(ok.rc, 0) << ok.out;
        expect_has(ok.out, {"wrote " + png});
    }
    EXPECT_GT(fs::file_size(png), 1000u);

    // The figures of experiments/*/RESULTS.md are compare's own, which the commands given there redraw in place.
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(SINKLAB_SOURCE_DIR) / "experiments")) {
        if (entry.path().extension() != ".png") continue;
        const fs::path copy = fs::path(dir_.path()) / entry.path().filename();
        fs::copy_file(entry.path(), copy, fs::copy_options::overwrite_existing);
        const CommandResult redrawn = run_sinklab(fmt::format("compare {} --plot {}", suite().string(), copy.string()));
        EXPECT_EQ(redrawn.rc, 0) << entry.path() << ": " << redrawn.out;
    }
}

// --plot: a file that cannot be written is one line before any work; a failing script is one line too, its
// traceback kept in a log file that the line names.
TEST_F(CompareTest, PlotErrorsAreOneLine) {
    write_file(fs::path(dir_.path()) / "afile", "x");
    const std::string png = (fs::path(dir_.path()) / "afile/x.png").string();
    const CommandResult unwritable = run_sinklab(fmt::format("compare {} --plot {}", suite().string(), png));
    EXPECT_EQ(unwritable.rc, 1);
    EXPECT_EQ(unwritable.out,
              fmt::format("sinklab: error: --plot {}: cannot write it (Not a directory); check the folder and "
                          "permissions\n",
                          png));

    if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "skipped: no /usr/bin/python3";
    const fs::path scripts = fs::path(dir_.path()) / "scripts";
    write_file(scripts / "plot_runs.py", "raise ValueError('boom')\n");
    const std::string ok_png = (fs::path(dir_.path()) / "x.png").string();
    const CommandResult failed = run_sinklab(fmt::format("compare {} --plot {}", suite().string(), ok_png),
                                             "SINKLAB_SCRIPTS=" + scripts.string());
    EXPECT_EQ(failed.rc, 1);
    EXPECT_EQ(failed.out.find("Traceback"), std::string::npos) << failed.out;
    const std::string head = "sinklab: error: plot_runs.py ended with exit code 1: ValueError: boom (its whole "
                             "output: ";
    const size_t at = failed.out.find(head);
    ASSERT_NE(at, std::string::npos) << failed.out;
    const size_t from = at + head.size();
    const std::string log = failed.out.substr(from, failed.out.find(')', from) - from);
    EXPECT_NE(read_file(log).find("Traceback"), std::string::npos) << log;
    fs::remove(log);
}

}  // namespace
}  // namespace sinklab::test
