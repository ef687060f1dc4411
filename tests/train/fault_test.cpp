// Faults during training, injected through the test hook SINKLAB_FAULT_INJECT (src/train/fault_inject.h) so
// that the real paths run: a non-finite gradient aborts with a diagnostic (the last good checkpoint kept) or
// skips the update, and a genuine loss spike is skipped by the z-score detector.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "data/shard.h"
#include "test_util.h"
#include "train/train_util.h"

namespace fs = std::filesystem;

namespace sinklab::test {
namespace {

nlohmann::json state_of(const TempDir& dir, const std::string& run, int step) {
    return nlohmann::json::parse(read_file(dir / fmt::format("{}/checkpoints/step_{:08d}/state.json", run, step)));
}

TEST(Faults, NanAbortWritesADiagnosticAndKeepsTheLastGoodCheckpoint) {
    const TempDir dir("fault_nan_abort");
    const std::string args = small_run(dir, "run", 10, "--set run.threads=1 --set checkpoint.every=3");
    const CommandResult r = run_sinklab(args, "SINKLAB_FAULT_INJECT=nan@5");
    EXPECT_NE(r.rc, 0);
    const std::string report = dir / "run/nonfinite_step_00000005.json";
    EXPECT_NE(r.out.find("not finite"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(report), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("step_00000003"), std::string::npos) << "names the last good checkpoint: " << r.out;
    ASSERT_TRUE(fs::exists(report));
    const auto diag = nlohmann::json::parse(read_file(report));
    EXPECT_EQ(diag["step"], 5);
    EXPECT_EQ(diag["grad_norm"], "nan");
    EXPECT_FALSE(diag["nonfinite_gradients"].empty());
    EXPECT_EQ(diag["nonfinite_gradients"][0]["name"], "wte");
    EXPECT_EQ(diag["last_checkpoint"], dir / "run/checkpoints/step_00000003");
    // The failing step's row is logged (marked), and the run continues from step 3 without the fault.
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "skipped"), (std::vector<double>{0, 0, 0, 0, 1}));
    const CommandResult resumed = run_sinklab(args + " --resume");
    ASSERT_EQ(resumed.rc, 0) << resumed.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step").size(), 10u);
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "skipped"), std::vector<double>(10, 0.0));
}

// Non-finite from the initial weights (no update yet): no learning rate is to blame, and the message says what is.
TEST(Faults, NonFiniteBeforeAnyUpdateNamesTheInitialWeights) {
    const TempDir dir("fault_init");
    const CommandResult r = run_sinklab(small_run(dir, "run", 4, "--set run.threads=1 --set model.init_std=1e30"));
    EXPECT_EQ(r.rc, 1) << r.out;
    for (const std::string& part : {std::string("step 1: the loss ("),
                                    "is not finite before any update, from the initial weights; wrote " +
                                        dir / "run/nonfinite_step_00000001.json" +
                                        "; check model.init_std and the model's config, and start over"})
        EXPECT_NE(r.out.find(part), std::string::npos) << part << " in: " << r.out;
    EXPECT_EQ(r.out.find("a lower train.lr"), std::string::npos) << r.out;
}

// The error that ends a run is train.log's last line, as main prints it on stderr, once in the log and once in the
// output (the log's copy goes to the file only): for a failing step, and for a resume that fails before its first
// line (a config the checkpoint refuses) or after it (at the end of setup), where the line says it is a new start's.
TEST(Faults, TheErrorThatEndsARunEndsItsTrainLog) {
    const TempDir dir("fault_log");
    const std::string args = small_run(dir, "run", 6, "--set run.threads=1 --set checkpoint.every=2");
    const std::string prefix = "sinklab: error: ";
    for (const char* extra : {"", " --resume --set model.n_layer=3", " --resume"}) {
        const std::string fault = *extra ? "setup@0" : "throw@3";
        const CommandResult r = run_sinklab(args + extra, "SINKLAB_FAULT_INJECT=" + fault);
        EXPECT_NE(r.rc, 0) << r.out;
        const size_t at = r.out.find(prefix);
        ASSERT_NE(at, std::string::npos) << r.out;
        const std::string message = r.out.substr(at + prefix.size(), r.out.find('\n', at) - at - prefix.size());
        EXPECT_EQ(r.out.find(message, at + prefix.size() + message.size()), std::string::npos) << "twice: " << r.out;
        EXPECT_EQ(r.out.find(message), at + prefix.size()) << "twice: " << r.out;

        std::string log = read_file(dir / "run/train.log");
        ASSERT_TRUE(log.ends_with(message + "\n")) << extra << ": " << log;
        log.pop_back();
        const std::string last = log.substr(log.rfind('\n') + 1);
        if (*extra) {
            EXPECT_TRUE(last.starts_with("error: the start at 20") && last.find("Z failed: " + message) < 40) << last;
        } else {
            EXPECT_EQ(last, "error: " + message);
        }
        EXPECT_EQ(log.find(message), log.size() - message.size()) << "twice in train.log: " << log;
    }
}

// A shard cut short under a running training (the run makes it, stops itself at step 3, the shard loses its tokens, the
// run goes on): the next read past the new end ends the run with exit 1 and one line naming the shard, on stderr and at
// the end of train.log, where the process died of "Bus error" before.
TEST(Faults, AShardCutUnderARunEndsItWithTheShardNamedInTrainLog) {
    const TempDir dir("fault_shard_cut");
    const std::string args = small_run(dir, "run", 50, "--set run.threads=1");
    const std::string shard = dir / "data/train_000000.bin";
    {
        Background bg(fmt::format("env SINKLAB_FAULT_INJECT=stop@3 {} {}", SINKLAB_BINARY, args), dir / "out.log");
        ASSERT_TRUE(bg.wait_stopped(60)) << read_file(dir / "out.log");
        fs::resize_file(shard, kShardHeaderBytes);  // the header alone
        bg.signal(SIGCONT);
        EXPECT_EQ(bg.wait(60), 1) << read_file(dir / "out.log");
    }
    const std::string line = "error: " + shard + " became shorter while sinklab read it";
    EXPECT_NE(read_file(dir / "out.log").find("sinklab: " + line), std::string::npos) << read_file(dir / "out.log");
    const std::string log = read_file(dir / "run/train.log");
    const size_t at = log.rfind(line);
    ASSERT_NE(at, std::string::npos) << log;
    EXPECT_EQ(log.find('\n', at), log.size() - 1) << "not the last line: " << log;
}

// A step that never finishes (the training thread blocked, as in a stalled file system) ends the run after
// fault.hang_timeout with one line, on stderr and at the end of train.log; the rows flushed before it are kept (the
// process ends without its exit handlers, which could wait on the stuck thread), and the run resumes.
TEST(Faults, AStepThatHangsEndsTheRunAfterTheTimeout) {
    const TempDir dir("fault_hang");
    const std::string args =
        small_run(dir, "run", 8,
                  "--set run.threads=1 --set checkpoint.every=2 --set metrics.flush_every=1 --set fault.hang_timeout=3");
    const CommandResult r = run_sinklab(args, "SINKLAB_FAULT_INJECT=hang@4");
    EXPECT_EQ(r.rc, 1) << r.out;
    const std::string line = "error: step 4 has not finished ";
    EXPECT_EQ(count(r.out, "sinklab: " + line), 1u) << r.out;
    EXPECT_NE(r.out.find(" s after step 3 (fault.hang_timeout = 3 s; the slowest step so far took "), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("the run is stuck"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("it ends here: the last checkpoint is " + dir / "run/checkpoints/step_00000002" +
                         "; resume from it with --resume"),
              std::string::npos)
        << r.out;
    const std::string log = read_file(dir / "run/train.log");
    const size_t at = log.rfind(line);
    ASSERT_NE(at, std::string::npos) << log;
    EXPECT_EQ(log.find('\n', at), log.size() - 1) << "not the last line: " << log;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), (std::vector<double>{1, 2, 3}));
    const CommandResult resumed = run_sinklab(args + " --resume");
    ASSERT_EQ(resumed.rc, 0) << resumed.out;
    EXPECT_NE(resumed.out.find("resumed from " + dir / "run/checkpoints/step_00000002"), std::string::npos) << resumed.out;
}

// A process stopped as a whole (Ctrl-Z, SIGSTOP) for longer than fault.hang_timeout goes on when continued: the time
// it stood still is not its step's.
TEST(Faults, ARunStoppedAndContinuedIsNotHung) {
    const TempDir dir("fault_hang_stop");
    const std::string args = small_run(dir, "run", 6, "--set run.threads=1 --set fault.hang_timeout=3");
    Background bg(fmt::format("env SINKLAB_FAULT_INJECT=stop@3 {} {}", SINKLAB_BINARY, args), dir / "out.log");
    ASSERT_TRUE(bg.wait_stopped(60)) << read_file(dir / "out.log");
    std::this_thread::sleep_for(std::chrono::seconds(6));
    bg.signal(SIGCONT);
    EXPECT_EQ(bg.wait(60), 0) << read_file(dir / "out.log");
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), (std::vector<double>{1, 2, 3, 4, 5, 6}));
}

// Before the first checkpoint the advice is to start over, not to set checkpoint.every (it is set).
TEST(Faults, NanAbortBeforeTheFirstCheckpointSaysSo) {
    const TempDir dir("fault_nan_early");
    const CommandResult r = run_sinklab(small_run(dir, "run", 10, "--set run.threads=1 --set checkpoint.every=3"),
                                        "SINKLAB_FAULT_INJECT=nan@2");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("no checkpoint was due yet (checkpoint.every=3); start over with --resume"),
              std::string::npos)
        << r.out;
}

// A diverged model that fault.nan_policy: skip trains on: its metrics are NaN (undefined), not 0, and the effective
// rank's SVD, which refuses NaN, does not end the run.
TEST(Faults, ADivergedRunUnderSkipLogsNaNMetrics) {
    const TempDir dir("fault_diverged");
    const CommandResult r = run_sinklab(small_run(dir, "run", 6,
                                                  "--set run.threads=1 --set train.lr=1e38 --set train.grad_clip=0 "
                                                  "--set fault.nan_policy=skip --set metrics.heavy_every=2"));
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_FALSE(std::isfinite(column(dir / "run/metrics.h5", "train", "loss").back()));
    const RunLogReader log(dir / "run/metrics.h5");
    for (const auto& [group, name] :
         {std::pair{"sink", "attn_mass"}, std::pair{"sink", "sink_rate"}, std::pair{"sink", "wo_input_std"},
          std::pair{"sink", "dominance"}, std::pair{"sink", "massive"}, std::pair{"sink", "token0_norm_ratio"},
          std::pair{"sink", "ffn_max_act"}, std::pair{"heavy", "effective_rank"}}) {
        const std::vector<double> values = log.read(group, name).data;
        ASSERT_GE(values.size(), 2u) << name;
        EXPECT_TRUE(std::isnan(values.back())) << name << " " << values.back();
    }
    EXPECT_EQ(log.read("sink", "ffn_top_channel").data.back(), -1.0);
    const CommandResult eval = run_sinklab(fmt::format("eval {} --batches 1", dir / "run"));
    EXPECT_EQ(eval.rc, 0) << eval.out;
    EXPECT_NE(eval.out.find("nan      -"), std::string::npos) << "no sink count of a diverged model: " << eval.out;
    const CommandResult compare = run_sinklab("compare " + dir / "run");
    EXPECT_EQ(compare.rc, 0) << compare.out;
    EXPECT_NE(compare.out.find("its final train loss is not finite (a diverged run)"), std::string::npos)
        << compare.out;
}

TEST(Faults, NanSkipSkipsThatUpdateOnly) {
    const TempDir dir("fault_nan_skip");
    const CommandResult r = run_sinklab(small_run(dir, "run", 8, "--set run.threads=1 --set fault.nan_policy=skip"),
                                        "SINKLAB_FAULT_INJECT=nan@4");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("step      4 | update skipped"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("| 1 of the run's 8 updates skipped (non-finite 1, spikes 0) |"), std::string::npos) << r.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "skipped"), (std::vector<double>{0, 0, 0, 1, 0, 0, 0, 0}));
    const auto state = state_of(dir, "run", 8);
    EXPECT_EQ(state["optimizer_steps"], 7);
    EXPECT_EQ(state["guard"]["skipped_nonfinite"], 1);
    for (double loss : column(dir / "run/metrics.h5", "train", "loss")) EXPECT_TRUE(std::isfinite(loss));
}

TEST(Faults, LossSpikeIsSkipped) {
    const TempDir dir("fault_spike");
    const CommandResult r = run_sinklab(
        small_run(dir, "run", 40, "--set run.threads=1 --set fault.spike_zscore=6 --set fault.spike_window=10"),
        "SINKLAB_FAULT_INJECT=spike@30");
    ASSERT_EQ(r.rc, 0) << r.out;
    const auto loss = column(dir / "run/metrics.h5", "train", "loss");
    const auto skipped = column(dir / "run/metrics.h5", "train", "skipped");
    std::vector<double> want(40, 0.0);
    want[29] = 2;
    EXPECT_EQ(skipped, want);
    EXPECT_GT(loss[29], loss[28] + 1.0) << "random targets make a real spike";
    EXPECT_NE(r.out.find("is a spike"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("| 1 of the run's 40 updates skipped (non-finite 0, spikes 1) |"), std::string::npos) << r.out;
    EXPECT_EQ(state_of(dir, "run", 40)["optimizer_steps"], 39);
}

}  // namespace
}  // namespace sinklab::test
