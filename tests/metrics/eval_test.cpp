// sinklab eval on a trained run: the loss it reports equals the run's own last validation loss (same weights,
// same held-out batches), eval.h5 holds every metric with its shape, and an intervention can be applied at
// evaluation time.
#include <gtest/gtest.h>

#include <iterator>
#include <map>
#include <sstream>

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
    for (const char* column : {"eff.rank", "std0/rest", "att0/rest", "dim0/rest"})
        EXPECT_NE(r.out.find(column), std::string::npos) << column << " in " << r.out;

    RunLogReader ev(run + "/eval.h5");
    const double logged = column(run + "/metrics.h5", "val", "loss").back();
    EXPECT_NEAR(ev.read("eval", "loss").data.at(0), logged, 1e-6 * logged);
    EXPECT_EQ(ev.read("eval", "step").data, (std::vector<double>{12}));
    const std::map<std::string, std::vector<int64_t>> shapes = {
        {"attn_mass", {1, 2, 4, 1}}, {"sink_rate", {1, 2}},      {"wo_input_std", {1, 2, 64}},
        {"attn_out_std", {1, 2, 64}},
        {"wo_dimwise_std", {1, 2, 64}}, {"dominance", {1, 2}},   {"massive", {1, 2}},
        {"token0_norm_ratio", {1, 2}}, {"ffn_max_act", {1, 2, 2}}, {"ffn_top_channel", {1, 2}},
        {"effective_rank", {1, 2}},  {"attn_map", {1, 2, 64, 64}}, {"sink_percent", {1}},
        {"ffn_gate_norm", {1, 2, 2}}, {"ffn_up_norm", {1, 2, 2}}, {"ffn_top_unit", {1, 2, 2}}};
    // In the order h5py lists them: the eval's own first, then those of /sink (the dimension-wise std beside the one
    // over channels) and of /heavy.
    EXPECT_EQ(ev.columns("eval"),
              (std::vector<std::string>{"step", "loss", "sink_percent", "attn_mass", "sink_rate", "wo_input_std",
                                        "wo_dimwise_std", "attn_out_std", "dominance", "massive", "token0_norm_ratio",
                                        "ffn_max_act",
                                        "ffn_top_channel", "effective_rank", "attn_map", "ffn_gate_norm",
                                        "ffn_up_norm", "ffn_top_unit"}));
    for (const auto& [col, shape] : shapes) EXPECT_EQ(ev.read("eval", col).shape, shape) << col;
    EXPECT_EQ(ev.num_attr("sequences"), 16.0);
    // What made it, as the run log records it (the same binary and backend trained the run).
    RunLogReader trained(run + "/metrics.h5");
    for (const char* attr : {"sinklab_version", "git_rev", "backend", "device"})
        EXPECT_EQ(ev.str_attr(attr), trained.str_attr(attr)) << attr;
    EXPECT_TRUE(ev.str_attr("created").ends_with("Z")) << ev.str_attr("created");

    // Isolating row 5 at evaluation time: position 5 is tracked, and the loss changes (the model was not
    // trained with it).
    const CommandResult iso =
        run_sinklab(fmt::format("eval {} --batches 2 --set intervention.isolate=[5] --out {}", run, dir / "iso.h5"));
    ASSERT_EQ(iso.rc, 0) << iso.out;
    RunLogReader ev_iso(dir / "iso.h5");
    EXPECT_EQ(ev_iso.str_attr("sink_positions"), "[0, 5]");
    EXPECT_EQ(ev_iso.read("eval", "attn_mass").shape, (std::vector<int64_t>{1, 2, 4, 2}));
    EXPECT_NE(ev_iso.read("eval", "loss").data.at(0), logged);

    // The table gives the mass on every tracked position, and its ratios leave the intervened position out: scaled
    // 30-fold in layer 0, its std would weigh as much as 30 others in the mean over later positions.
    const CommandResult amp = run_sinklab(fmt::format(
        "eval {} --batches 2 --set intervention.amplify.position=5 --set intervention.amplify.lambda=30 --set "
        "intervention.amplify.layers=[0] --set intervention.amplify.mode=scale --out {}",
        run, dir / "amp.h5"));
    ASSERT_EQ(amp.rc, 0) << amp.out;
    RunLogReader ev_amp(dir / "amp.h5");
    ASSERT_EQ(ev_amp.read("eval", "attn_mass").shape, (std::vector<int64_t>{1, 2, 4, 2}));
    ASSERT_EQ(ev_amp.read("eval", "wo_input_std").shape, (std::vector<int64_t>{1, 2, 64}));
    const std::vector<double> mass = ev_amp.read("eval", "attn_mass").data;  // [1, L, H, P]
    const std::vector<double> wo = ev_amp.read("eval", "wo_input_std").data;  // [1, L, Tp]
    const size_t at = amp.out.find("\nlayer ");
    ASSERT_NE(at, std::string::npos) << amp.out;
    std::istringstream table(amp.out.substr(at + 1));
    std::string line;
    std::getline(table, line);
    EXPECT_NE(line.find("mass@0   mass@5"), std::string::npos) << line;
    for (int l = 0; l < 2; l++) {
        std::getline(table, line);
        std::istringstream words(line);
        const std::vector<std::string> cells{std::istream_iterator<std::string>(words), {}};
        ASSERT_EQ(cells.size(), 14u) << line;
        double mass5 = 0, rest = 0;
        for (int h = 0; h < 4; h++) mass5 += mass[size_t((l * 4 + h) * 2 + 1)] / 4;
        for (int t = 1; t < 64; t++) rest += t == 5 ? 0 : wo[size_t(l * 64 + t)] / 62;
        EXPECT_NEAR(std::stod(cells[2]), mass5, 6e-4) << line;
        EXPECT_NEAR(std::stod(cells[11]), wo[size_t(l * 64)] / rest, 6e-3) << line;
    }
}

// More batches than the data holds would count windows twice (the data wraps around): both eval and training's
// validation use each window once and say so.
TEST(Eval, MoreBatchesThanTheDataHoldsUseEachWindowOnce) {
    const TempDir dir("eval_batches");
    const CommandResult train = run_sinklab(small_run(dir, "e", 3, "--set metrics.val_batches=100000"));
    ASSERT_EQ(train.rc, 0) << train.out;
    const std::string notice = "metrics.val_batches: the data has ";
    EXPECT_NE(train.out.find(notice), std::string::npos) << train.out;
    EXPECT_NE(read_file(dir / "e/train.log").find(notice), std::string::npos);

    const std::string run = dir / "e";
    const CommandResult r = run_sinklab(fmt::format("eval {} --batches 100000", run));
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("eval: the data has "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("instead of 100000"), std::string::npos) << r.out;
    RunLogReader ev(run + "/eval.h5");
    const double batches = ev.num_attr("batches");
    EXPECT_LT(batches, 100000);
    EXPECT_EQ(ev.num_attr("sequences"), batches * 8);
    // The same windows as training's last validation, so the same loss.
    const double logged = column(run + "/metrics.h5", "val", "loss").back();
    EXPECT_NEAR(ev.read("eval", "loss").data.at(0), logged, 1e-6 * logged);
    // Exactly the available batches: no notice.
    const CommandResult exact = run_sinklab(fmt::format("eval {} --batches {}", run, batches));
    ASSERT_EQ(exact.rc, 0) << exact.out;
    EXPECT_EQ(exact.out.find("instead of"), std::string::npos) << exact.out;
}

TEST(Eval, ACheckpointOptionThatIsNoCheckpointFolderIsNamed) {
    const TempDir dir("eval_checkpoint");
    ASSERT_EQ(run_sinklab(small_run(dir, "e", 3)).rc, 0);
    const std::string run = dir / "e";
    const CommandResult missing = run_sinklab(fmt::format("eval {} --checkpoint {}/nothere", run, run));
    EXPECT_NE(missing.rc, 0);
    for (const std::string& part :
         {"--checkpoint " + run + "/nothere", std::string("no such folder"), std::string("checkpoints/step_00000003")})
        EXPECT_NE(missing.out.find(part), std::string::npos) << part << " in: " << missing.out;
    const CommandResult run_folder = run_sinklab(fmt::format("eval {} --checkpoint {}", run, run));
    EXPECT_NE(run_folder.rc, 0);
    for (const std::string& part :
         {"--checkpoint " + run + ":", std::string("no state.json"), std::string("checkpoints/step_00000003")})
        EXPECT_NE(run_folder.out.find(part), std::string::npos) << part << " in: " << run_folder.out;
    EXPECT_EQ(run_folder.out.find("damaged"), std::string::npos) << run_folder.out;
}

// A checkpoint of another run would have its results filed in the run folder named as the run's own: refused unless
// the output goes elsewhere, for eval and export alike. The result's heading names the checkpoint and what --set
// changed of the model.
TEST(Eval, ACheckpointOfAnotherRunNeedsAnOutputElsewhere) {
    const TempDir dir("eval_other_checkpoint");
    ASSERT_EQ(run_sinklab(small_run(dir, "a", 2)).rc, 0);
    ASSERT_EQ(run_sinklab(small_run(dir, "b", 2)).rc, 0);
    const std::string other = dir / "a/checkpoints/step_00000002";
    const std::string own_run = std::filesystem::canonical(dir / "a").string();
    for (const std::string& command :
         {fmt::format("eval {} --batches 1 --checkpoint {}", dir / "b", other),
          fmt::format("eval {} --batches 1 --checkpoint {} --out {}/sub/e.h5", dir / "b", other, dir / "b"),
          fmt::format("export {} --format hf --checkpoint {}", dir / "b", other),
          fmt::format("export {} --format hf --checkpoint {} --out {}/hf/", dir / "b", other, dir / "b")}) {
        const CommandResult r = run_sinklab(command);
        EXPECT_EQ(r.rc, 1) << command;
        for (const std::string& part : {"--checkpoint " + other + " is not one of " + dir / "b" + "'s checkpoints",
                                        "give --out elsewhere, or the checkpoint's own run folder (" + own_run + ")"})
            EXPECT_NE(r.out.find(part), std::string::npos) << part << " in: " << r.out;
    }
    // A checkpoint outside any run's checkpoints folder: no run folder to name.
    std::filesystem::copy(other, dir / "copied");
    const CommandResult copied =
        run_sinklab(fmt::format("eval {} --batches 1 --checkpoint {}", dir / "b", dir / "copied"));
    EXPECT_EQ(copied.rc, 1) << copied.out;
    EXPECT_NE(copied.out.find("as its own; give --out elsewhere\n"), std::string::npos) << copied.out;
    EXPECT_FALSE(std::filesystem::exists(dir / "b/eval.h5"));
    const CommandResult elsewhere =
        run_sinklab(fmt::format("eval {} --batches 1 --checkpoint {} --out {}", dir / "b", other, dir / "x.h5"));
    ASSERT_EQ(elsewhere.rc, 0) << elsewhere.out;
    EXPECT_NE(elsewhere.out.find("eval of " + dir / "b" + " (checkpoint " + other + ", step 2) on "), std::string::npos)
        << elsewhere.out;
    const CommandResult own = run_sinklab(
        fmt::format("eval {} --batches 1 --checkpoint {}/ --set intervention.isolate=[8] --set metrics.sink_eps=0.1",
                    dir / "a", other));
    ASSERT_EQ(own.rc, 0) << own.out;
    for (const std::string& part : {"eval of " + dir / "a" + " (checkpoint " + other + "/, step 2) on ",
                                    std::string(", with intervention.isolate ([] -> [8]), metrics.sink_eps (0.3 -> "
                                                "0.1)\n")})
        EXPECT_NE(own.out.find(part), std::string::npos) << part << " in: " << own.out;
}

// An eval's file inside another run's folder would pass for that run's result (and go with it on an --overwrite);
// inside a checkpoint folder, even its own run's, pruning deletes it. Refused before anything runs or is made, for
// export's folder too; the run's own folder, and folders below it, take them.
TEST(Eval, AnOutputInAnotherRunOrACheckpointFolderIsRefused) {
    const TempDir dir("eval_out_place");
    ASSERT_EQ(run_sinklab(small_run(dir, "a", 2)).rc, 0);
    ASSERT_EQ(run_sinklab(small_run(dir, "b", 2)).rc, 0);
    for (const auto& [out, why] :
         {std::pair{dir / "b/eval.h5", "it lies in the folder of another run, " + dir / "b"},
          std::pair{dir / "b/evals/new/e.h5", "it lies in the folder of another run, " + dir / "b"},
          std::pair{dir / "a/checkpoints/step_00000002/eval.h5",
                    "it lies in the checkpoint folder " + dir / "a/checkpoints/step_00000002" + ", which is deleted"},
          std::pair{dir / "b/checkpoints/step_00000002/e.h5", std::string("it lies in the checkpoint folder ")}}) {
        const CommandResult r = run_sinklab(fmt::format("eval {} --batches 1 --out {}", dir / "a", out));
        EXPECT_EQ(r.rc, 1) << r.out;
        EXPECT_NE(r.out.find("--out " + out + ": " + why), std::string::npos) << r.out;
        EXPECT_FALSE(std::filesystem::exists(out));
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "b/evals"));
    // export likewise, below its --out folder's own check (it refuses a run or checkpoint folder itself).
    for (const auto& [out, why] :
         {std::pair{dir / "b/sub/hf", "it lies in the folder of another run, " + dir / "b"},
          std::pair{dir / "a/checkpoints/step_00000002/hf", std::string("it lies in the checkpoint folder ")}}) {
        const CommandResult r = run_sinklab(fmt::format("export {} --format hf --out {}", dir / "a", out));
        EXPECT_EQ(r.rc, 1) << r.out;
        EXPECT_NE(r.out.find("--out " + out + ": " + why), std::string::npos) << r.out;
        EXPECT_FALSE(std::filesystem::exists(out));
    }
    // A stray metrics.h5 above the runs (no config.yaml or checkpoints beside it) makes no run folder of theirs.
    write_file(dir / "metrics.h5", "a copy");
    const CommandResult below =
        run_sinklab(fmt::format("eval {} --batches 1 --out {}", dir / "a", dir / "a/evals/e.h5"));
    ASSERT_EQ(below.rc, 0) << below.out;
    EXPECT_TRUE(std::filesystem::exists(dir / "a/evals/e.h5"));
}

// The optimizer step's geometry is training's: a micro-batch that does not divide the run's tokens_per_step (2 x 8
// sequences of 64 here) still evaluates.
TEST(Eval, TheTrainingScheduleDoesNotConstrainAnEval) {
    const TempDir dir("eval_schedule");
    ASSERT_EQ(run_sinklab(small_run(dir, "e", 2, "--set train.tokens_per_step=1024")).rc, 0);
    const CommandResult r = run_sinklab(fmt::format("eval {} --batches 1 --set train.micro_batch=3", dir / "e"));
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(RunLogReader(dir / "e/eval.h5").num_attr("sequences"), 3.0);
}

// --data on the run's own training shards evaluates (a train loss is a fair thing to measure), with a note that the
// loss is one of trained-on tokens; held-out shards get none.
TEST(Eval, DataTheRunTrainedOnIsNoted) {
    const TempDir dir("eval_train_data");
    ASSERT_EQ(run_sinklab(small_run(dir, "e", 2)).rc, 0);
    const std::string train = dir / "data/train_*.bin";
    const CommandResult on_train = run_sinklab(fmt::format("eval {} --batches 1 --data '{}'", dir / "e", train));
    EXPECT_EQ(on_train.rc, 0) << on_train.out;
    EXPECT_NE(on_train.out.find(fmt::format("note: --data '{}' and data.train '{}' share 1 of --data's 1 shards", train,
                                            train)),
              std::string::npos)
        << on_train.out;
    const CommandResult held_out =
        run_sinklab(fmt::format("eval {} --batches 1 --data '{}'", dir / "e", dir / "data/val_*.bin"));
    EXPECT_EQ(held_out.rc, 0) << held_out.out;
    EXPECT_EQ(held_out.out.find("share"), std::string::npos) << held_out.out;
}

TEST(Eval, RefusesARunWithoutCheckpointAndAModelThatDoesNotFit) {
    const TempDir dir("eval_bad");
    std::filesystem::create_directories(dir / "empty");
    const CommandResult none = run_sinklab("eval " + (dir / "empty"));
    EXPECT_NE(none.rc, 0);
    EXPECT_NE(none.out.find("holds no checkpoint"), std::string::npos) << none.out;
    // A suite folder is named as one, with where its runs are.
    write_file(dir / "empty/sweep.yaml", "suite: s.yaml\n");
    const CommandResult suite = run_sinklab("eval " + (dir / "empty"));
    EXPECT_NE(suite.rc, 0);
    EXPECT_NE(suite.out.find("is a sweep's suite folder (it holds sweep.yaml): give one of its runs"),
              std::string::npos)
        << suite.out;

    ASSERT_EQ(run_sinklab(small_run(dir, "e", 3)).rc, 0);
    const CommandResult wrong = run_sinklab(fmt::format("eval {} --set model.d_model=32", dir / "e"));
    EXPECT_NE(wrong.rc, 0);
    EXPECT_NE(wrong.out.find("model.safetensors"), std::string::npos) << wrong.out;

    // A smaller model than the one trained (fewer layers, no HeadNorm) would load only part of the weights.
    for (const auto& [set, tensor] : {std::pair<std::string, std::string>{"model.n_layer=1", "layers.1."},
                                      {"attention.variant=standard", "headnorm"}}) {
        const CommandResult smaller = run_sinklab(fmt::format("eval {} --set {}", dir / "e", set));
        EXPECT_NE(smaller.rc, 0) << set;
        for (const std::string& part : {std::string("model.safetensors has a tensor "), tensor,
                                        std::string("that this config's model lacks")})
            EXPECT_NE(smaller.out.find(part), std::string::npos) << part << " in: " << smaller.out;
    }
    // Head counts would split the trained q/k/v weights into other heads: refused. Other changes of the model are
    // experiments, named on stderr.
    const CommandResult heads = run_sinklab(fmt::format("eval {} --set model.n_head=2", dir / "e"));
    EXPECT_NE(heads.rc, 0);
    EXPECT_NE(heads.out.find("--set model.n_head (4 -> 2): "), std::string::npos) << heads.out;
    const CommandResult theta =
        run_sinklab(fmt::format("eval {} --batches 1 --set model.rope_theta=500 --out {}", dir / "e", dir / "t.h5"));
    EXPECT_EQ(theta.rc, 0) << theta.out;
    EXPECT_NE(theta.out.find("note: this eval's model differs from the trained one in model.rope_theta (10000 -> "
                             "500)"),
              std::string::npos)
        << theta.out;
    // No validation data: the message says how the run came to have none and what to pass; a relative --data
    // glob that matches nothing names the folder it was taken from.
    const CommandResult no_val = run_sinklab(fmt::format("eval {} --set data.val=", dir / "e"));
    EXPECT_NE(no_val.rc, 0);
    EXPECT_NE(no_val.out.find("data.val is empty (the run was trained without validation data, or --set emptied "
                              "it); pass --data GLOB"),
              std::string::npos)
        << no_val.out;
    const CommandResult relative = run_command(fmt::format("cd {} && {} eval e --data 'nothere/val_*.bin'",
                                                           dir.path(), SINKLAB_BINARY));
    EXPECT_NE(relative.rc, 0);
    EXPECT_NE(relative.out.find("no token shard matches --data 'nothere/val_*.bin' (relative to the current folder, " +
                                std::filesystem::canonical(dir.path()).string() + ")"),
              std::string::npos)
        << relative.out;
}

}  // namespace
}  // namespace sinklab::test
