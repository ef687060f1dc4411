// `sinklab sweep` and `sinklab compare` as a user runs them, with real (very small) training runs: every run
// trains once, a second sweep skips them all, a run cut short before its first checkpoint starts again, and
// compare reads the suite folder in suite order.
#include "ablation_fixture.h"
#include "cli_util.h"
#include "config/config.h"
#include "core/folder_lock.h"
#include "metrics/runlog_reader.h"
#include "train/sweep.h"

namespace sinklab::test {
namespace {

int64_t rows(const fs::path& run) { return RunLogReader((run / "metrics.h5").string()).read("train", "step").shape[0]; }

TEST(SweepEndToEnd, RunsSkipsRestartsAndCompares) {
    const TempDir tmp("sweep_e2e");
    const fs::path dir = tmp.path();
    const std::string suite = (dir / "suite.yaml").string();
    write_file(suite, fmt::format(R"(base: {}/configs/tiny.yaml
name: e2e
seeds: [1, 2]
set:
  run: {{out_dir: {}, threads: 2}}
  model: {{d_model: 32, n_layer: 2, n_head: 2, d_ff: 64, seq_len: 32}}
  train: {{micro_batch: 4, max_steps: 6, warmup_steps: 2}}
  metrics: {{val_every: 3, val_batches: 1, flush_every: 2, wo_std_positions: 16}}
  data: {{train: "{}/data/train_*.bin", val: "{}/data/val_*.bin", missing: synthetic}}
variants:
  - name: standard
    set: {{attention.variant: standard}}
  - name: headnorm
    set: {{attention.variant: headnorm}}
)",
                                  SINKLAB_SOURCE_DIR, (dir / "runs").string(), dir.string(), dir.string()));
    const fs::path out = dir / "runs/e2e";

    const CommandResult first = run_sinklab("sweep " + suite);
    ASSERT_EQ(first.rc, 0) << first.out;
    expect_has(first.out,
               {"[1/4] standard-s1: new run", "[4/4] headnorm-s2: new run", "compare them: sinklab compare"});
    for (const char* run : {"standard-s1", "headnorm-s1", "standard-s2", "headnorm-s2"}) {
        ASSERT_EQ(rows(out / run), 6) << run;
        const Config cfg = load_config((out / run / "config.yaml").string());
        EXPECT_EQ(cfg.run.name, run);
        EXPECT_EQ(cfg.attention.variant, std::string(run).substr(0, std::string(run).find('-')));
        EXPECT_EQ(cfg.run.seed, run[std::string(run).size() - 1] == '1' ? 1u : 2u);
    }

    const CommandResult again = run_sinklab("sweep " + suite);
    ASSERT_EQ(again.rc, 0) << again.out;
    expect_has(again.out, {"[3/4] standard-s2: finished before (6 steps), skipped"});
    EXPECT_EQ(again.out.find("$ "), std::string::npos) << "nothing should have run:\n" << again.out;

    // headnorm-s1 cut short at step 2 before any checkpoint: the sweep starts it again (--overwrite).
    const Sweep sweep = expand_sweep(load_suite(suite), {});
    const SweepRun& cut = sweep.runs[1];
    ASSERT_EQ(cut.name, "headnorm-s1");
    fs::remove_all(cut.dir);
    RunSpec partial;
    partial.loss = {5.6, 5.5};
    write_run(cut.dir, partial, dump_config(cut.config));
    const CommandResult dry = run_sinklab("sweep " + suite + " --dry-run");
    ASSERT_EQ(dry.rc, 0) << dry.out;
    expect_has(dry.out, {"# headnorm-s1: stopped at step 2/6 before its first checkpoint, start again\n",
                            "--set run.name=headnorm-s1 --set run.seed=1 --overwrite\n"});
    const CommandResult redo = run_sinklab("sweep " + suite);
    ASSERT_EQ(redo.rc, 0) << redo.out;
    expect_has(redo.out, {"[2/4] headnorm-s1: restart"});
    EXPECT_EQ(rows(out / "headnorm-s1"), 6);

    // A reader that goes away after the first byte (`| head`) ends neither the sweep nor its runs. SIGPIPE is set to
    // its default first, in case the test runner ignores it (sinklab would inherit that).
    fs::remove_all(cut.dir);
    write_run(cut.dir, partial, dump_config(cut.config));
    const CommandResult piped = run_command(
        fmt::format("bash -c 'set -o pipefail; env --default-signal=PIPE {} sweep {} | head -c 1 > /dev/null'",
                    SINKLAB_BINARY, suite));
    EXPECT_EQ(piped.rc, 0) << piped.out;
    EXPECT_EQ(rows(out / "headnorm-s1"), 6);

    const CommandResult cmp = run_sinklab("compare " + out.string() + " --smooth 2");
    ASSERT_EQ(cmp.rc, 0) << cmp.out;
    expect_has(cmp.out, {"baseline standard:", "\nstandard  2     6/6", "\nheadnorm  2     6/6"});

    // A changed suite meets the old folders: refused before anything runs, naming the key.
    const CommandResult changed = run_sinklab("sweep --set train.max_steps=8 " + suite);  // --set before the suite too
    EXPECT_EQ(changed.rc, 1);
    expect_has(changed.out, {"4 run folders cannot be continued", "train.max_steps 6 vs 8", "nothing was run"});
}

// A second sweep of a suite while one runs is refused, naming the first: it decided on the same runs from what it saw
// at its start (and ran --overwrite over a run the first had finished meanwhile). --dry-run only looks.
TEST(SweepEndToEnd, ASecondSweepOfTheSuiteIsRefused) {
    const TempDir tmp("sweep_twice");
    const fs::path dir = tmp.path();
    const std::string suite = (dir / "suite.yaml").string();
    write_file(suite, fmt::format("base: {}/configs/tiny.yaml\nname: twice\nseeds: [1]\nset:\n  run: {{out_dir: {}}}\n"
                                  "variants:\n  - name: standard\n",
                                  SINKLAB_SOURCE_DIR, (dir / "runs").string()));
    const FolderLock first((dir / "runs/twice").string(), "suite folder", "sweep", "wait");
    const CommandResult second = run_sinklab("sweep " + suite);
    EXPECT_EQ(second.rc, 1) << second.out;
    expect_has(second.out, {"suite folder " + (dir / "runs/twice").string() + " is in use by another `sinklab sweep`"});
    EXPECT_FALSE(fs::exists(dir / "runs/twice/sweep.yaml"));
    EXPECT_EQ(run_sinklab("sweep " + suite + " --dry-run").rc, 0);
}

// A sweep whose run fails ends with an error after its summary, also where both streams go to one file or pipe
// (the summary, buffered on stdout, came after the error on stderr).
TEST(SweepEndToEnd, TheErrorComesAfterTheSummary) {
    const TempDir tmp("sweep_order");
    const fs::path dir = tmp.path();
    const std::string suite = (dir / "suite.yaml").string();
    write_file(suite, fmt::format(R"(base: {}/configs/tiny.yaml
name: order
seeds: [1]
set:
  run: {{out_dir: {}}}
  data: {{train: "{}/data/train_*.bin", val: "", missing: synthetic}}
variants:
  - name: standard
)",
                                  SINKLAB_SOURCE_DIR, (dir / "runs").string(), dir.string()));
    const CommandResult r = run_sinklab("sweep " + suite + " --launcher 'env SINKLAB_FAULT_INJECT=setup@0'");
    EXPECT_EQ(r.rc, 1) << r.out;
    const size_t summary = r.out.find("standard-s1  new run"), error = r.out.find("are not finished");
    ASSERT_NE(summary, std::string::npos) << r.out;
    ASSERT_NE(error, std::string::npos) << r.out;
    EXPECT_LT(summary, error) << r.out;
}

}  // namespace
}  // namespace sinklab::test
