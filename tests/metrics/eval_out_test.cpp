// sinklab eval --out: it replaces an earlier eval output and nothing else (not a run's metrics.h5, not a
// checkpoint's weights), an --out it cannot write is one clear error before any evaluation, and an eval (or an
// export) into a run folder does not land in a run that replaced the evaluated one meanwhile.
#include <gtest/gtest.h>

#include <algorithm>

#include "metrics/eval.h"
#include "test_util.h"
#include "train/safetensors.h"
#include "train/train_util.h"

namespace sinklab::test {
namespace {

std::string eval_out(const std::string& run, const std::string& out) {
    return fmt::format("eval {} --batches 1 --out {}", run, out);
}

// Runs `command` (sinklab's arguments) until it stops itself (stop@1), then `train_args`, then lets it finish.
CommandResult run_while_stopped(const TempDir& dir, const std::string& command, const std::string& train_args) {
    Background stopped(fmt::format("env SINKLAB_FAULT_INJECT=stop@1 {} {}", SINKLAB_BINARY, command),
                       dir / "stopped.log");
    EXPECT_TRUE(stopped.wait_stopped(120)) << read_file(dir / "stopped.log");
    const CommandResult train = run_sinklab(train_args);
    EXPECT_EQ(train.rc, 0) << train.out;
    stopped.signal(SIGCONT);
    const int rc = stopped.wait(120);
    return CommandResult{rc, read_file(dir / "stopped.log")};
}

TEST(EvalOut, ReplacesAnEarlierEvalButNoOtherFile) {
    const TempDir dir("eval_out");
    ASSERT_EQ(run_sinklab(small_run(dir, "e", 3)).rc, 0);
    const std::string run = dir / "e";
    const std::string ckpt_weights = run + "/checkpoints/step_00000003/model.safetensors";
    for (const auto& [precious, why] :
         {std::pair{run + "/metrics.h5", std::string("the file exists and is not the output of an earlier eval")},
          std::pair{ckpt_weights, "it lies in the checkpoint folder " + run + "/checkpoints/step_00000003"}}) {
        const std::string before = read_file(precious);
        const CommandResult r = run_sinklab(eval_out(run, precious));
        EXPECT_NE(r.rc, 0) << r.out;
        EXPECT_NE(r.out.find("sinklab: error: --out " + precious + ": " + why), std::string::npos) << r.out;
        EXPECT_EQ(read_file(precious), before) << precious;
    }

    const CommandResult first = run_sinklab(eval_out(run, dir / "ev.h5"));
    ASSERT_EQ(first.rc, 0) << first.out;
    const CommandResult again = run_sinklab(eval_out(run, dir / "ev.h5"));
    ASSERT_EQ(again.rc, 0) << again.out;
    EXPECT_NE(again.out.find("(replacing the previous one)"), std::string::npos) << again.out;
    EXPECT_EQ(RunLogReader(dir / "ev.h5").groups(), std::vector<std::string>{"eval"});
}

TEST(EvalOut, AnOutFolderThatCannotBeMadeIsOneLine) {
    const TempDir dir("eval_out_dir");
    ASSERT_EQ(run_sinklab(small_run(dir, "e", 2)).rc, 0);
    write_file(dir / "afile", "x");
    const CommandResult r = run_sinklab(eval_out(dir / "e", dir / "afile/x.h5"));
    EXPECT_NE(r.rc, 0);
    EXPECT_TRUE(r.out.starts_with(
        fmt::format("sinklab: error: --out {}: cannot create the folder {} (", dir / "afile/x.h5", dir / "afile")))
        << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;

    // A folder that exists but takes no new files (/proc, where access(2) would say yes to root) is refused before
    // the evaluation too.
    const CommandResult proc = run_sinklab(eval_out(dir / "e", "/proc/sinklab_eval.h5"));
    EXPECT_NE(proc.rc, 0);
    EXPECT_TRUE(proc.out.starts_with("sinklab: error: --out /proc/sinklab_eval.h5: cannot write it (")) << proc.out;
    EXPECT_EQ(std::count(proc.out.begin(), proc.out.end(), '\n'), 1) << proc.out;

    // A folder that does not exist yet is made.
    const CommandResult made = run_sinklab(eval_out(dir / "e", dir / "new/sub/x.h5"));
    EXPECT_EQ(made.rc, 0) << made.out;
    EXPECT_TRUE(std::filesystem::exists(dir / "new/sub/x.h5"));
}

// The eval stops itself with the weights loaded (stop@1) while the run folder changes: a resume continues the
// evaluated run, whose folder then takes the eval, and an --overwrite start replaces it, whose folder must not.
TEST(EvalOut, NotIntoARunThatReplacedTheEvaluatedOne) {
    const TempDir dir("eval_replaced");
    ASSERT_EQ(run_sinklab(small_run(dir, "e", 3)).rc, 0);
    const std::string run = dir / "e";
    const auto eval_while = [&](const std::string& train_args, const std::string& out = "") {
        return run_while_stopped(dir, fmt::format("eval {} --batches 1{}", run, out.empty() ? "" : " --out " + out),
                                 train_args);
    };

    const std::string first_id = RunLogReader(run + "/metrics.h5").str_attr("run_id");
    const CommandResult resumed = eval_while(small_run(dir, "e", 5, "--resume"));
    ASSERT_EQ(resumed.rc, 0) << resumed.out;
    EXPECT_TRUE(is_eval_file(run + "/eval.h5"));
    EXPECT_EQ(RunLogReader(run + "/metrics.h5").str_attr("run_id"), first_id);

    // A subfolder of the run, which --overwrite keeps, is the run's as much as the run folder itself.
    for (const std::string& out : {run + "/eval.h5", run + "/evals/held_out.h5"}) {
        const std::string before_id = RunLogReader(run + "/metrics.h5").str_attr("run_id");
        const CommandResult replaced = eval_while(small_run(dir, "e", 2, "--overwrite"), out);
        EXPECT_NE(replaced.rc, 0) << replaced.out;
        EXPECT_EQ(replaced.out,
                  fmt::format("sinklab: error: {}: another run replaced the evaluated one (train --overwrite) while "
                              "this eval ran, so its result was not written; evaluate the new run, or give an --out "
                              "outside the run folder\n",
                              run));
        EXPECT_FALSE(std::filesystem::exists(out));
        for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(out).parent_path()))
            EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
        EXPECT_NE(RunLogReader(run + "/metrics.h5").str_attr("run_id"), before_id);
    }
    EXPECT_NE(RunLogReader(run + "/metrics.h5").str_attr("run_id"), first_id);
}

// An export stopped with the checkpoint read and its folder not yet made: a resume keeps the exported run, whose
// folder then takes the export; an --overwrite start replaces it, and the export writes nothing into the new run.
TEST(ExportOut, NotIntoARunThatReplacedTheExportedOne) {
    const TempDir dir("export_replaced");
    const std::string standard = "--set attention.variant=standard";
    ASSERT_EQ(run_sinklab(small_run(dir, "e", 3, standard)).rc, 0);
    const std::string run = dir / "e";
    const std::string hf = run + "/hf";
    const CommandResult resumed =
        run_while_stopped(dir, "export " + run + " --format hf", small_run(dir, "e", 5, standard + " --resume"));
    ASSERT_EQ(resumed.rc, 0) << resumed.out;
    EXPECT_TRUE(std::filesystem::exists(hf + "/model.safetensors"));

    const CommandResult replaced =
        run_while_stopped(dir, "export " + run + " --format hf", small_run(dir, "e", 2, standard + " --overwrite"));
    EXPECT_NE(replaced.rc, 0) << replaced.out;
    EXPECT_EQ(replaced.out,
              fmt::format("sinklab: error: {}: another run replaced the exported one (train --overwrite) while this "
                          "export ran, so its files were not written; export the new run, or give an --out outside "
                          "the run folder\n",
                          run));
    EXPECT_FALSE(std::filesystem::exists(hf));  // with the old run, which --overwrite deleted
}

// Two exports into one folder at once (two shells, say): they never write it together (the second waits for no one:
// it is refused, naming the first), and the folder is left to the next export.
TEST(ExportOut, TwoExportsIntoOneFolderNeverInterleave) {
    const TempDir dir("two_exports");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 2, "--set attention.variant=standard")).rc, 0);
    const std::string export_cmd = fmt::format("{} export --format hf {}", SINKLAB_BINARY, dir / "x");
    for (int attempt = 0; attempt < 3; attempt++) {
        const CommandResult r =
            run_command(fmt::format("({0} & first=$!; {0}; second=$?; wait $first; echo \"status $? $second\")",
                                    export_cmd));
        // Each either wrote the folder or was refused, naming the holder: `sinklab export` (pid ...), or "sinklab
        // process (starting)" before it wrote that.
        const size_t refused = count(r.out, "export folder " + dir / "x/hf is in use by another ");
        EXPECT_EQ(count(r.out, "exported ") + refused, 2u) << r.out;
        // As many exits with status 1 as refusals.
        const size_t at = r.out.find("status ");
        ASSERT_NE(at, std::string::npos) << r.out;
        const std::string status = r.out.substr(at + 7, 3);
        EXPECT_EQ(size_t(std::count(status.begin(), status.end(), '1')), refused) << r.out;
        EXPECT_EQ(size_t(std::count(status.begin(), status.end(), '0')), 2 - refused) << r.out;
        EXPECT_EQ(r.out.find("not written by sinklab export"), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("cannot rename"), std::string::npos) << r.out;
    }
    const CommandResult last = run_sinklab("export --format hf " + dir / "x");
    ASSERT_EQ(last.rc, 0) << last.out;
    // embed_tokens and norm, and 9 tensors in each of the 2 layers: a whole file.
    EXPECT_EQ(SafetensorsFile(dir / "x/hf/model.safetensors").tensors().size(), 2u + 2u * 9u);
    EXPECT_FALSE(std::filesystem::exists(dir / "x/hf/model.safetensors.tmp"));
}

}  // namespace
}  // namespace sinklab::test
