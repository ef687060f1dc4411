// What the sweep does with run folders (start, resume, restart, skip, refuse), the commands it prints and runs,
// and how it reacts to runs that fail or are interrupted. Training is stood in for: run folders are made here
// with RunLog, and a fake launcher writes what a finished or cut-short run leaves.
#include "train/sweep.h"

#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <set>
#include <tuple>

#include "ablation_fixture.h"
#include "config/config.h"
#include "core/folder_lock.h"
#include "core/process.h"
#include "train/stop_signal.h"

namespace sinklab::test {
namespace {

using Strings = std::vector<std::string>;

RunSpec losses(int64_t steps) {
    RunSpec spec;
    spec.max_steps = 60;
    for (int64_t s = 1; s <= steps; s++) spec.loss.push_back(5.0 - 0.01 * double(s));
    return spec;
}

class SweepTest : public ::testing::Test {
protected:
    void SetUp() override {
        write_file(root() / "base.yaml", fmt::format("inherit: {}/configs/tiny.yaml\nrun:\n  out_dir: {}\n",
                                                     SINKLAB_SOURCE_DIR, (root() / "runs").string()));
        suite_path_ = (root() / "t.yaml").string();
        write_file(suite_path_, R"(base: base.yaml
name: t
seeds: [1, 2]
set: {train.max_steps: 60, train.warmup_steps: 5}
variants:
  - name: baseline
    set: {attention.variant: standard}
  - name: headnorm
    set: {attention.variant: headnorm}
)");
        sweep_ = expand_sweep(load_suite(suite_path_), {});
    }
    fs::path root() const { return fs::path(dir_.path()); }
    const SweepRun& run(const std::string& name) const {
        for (const SweepRun& r : sweep_.runs)
            if (r.name == name) return r;
        throw std::runtime_error("no run " + name);
    }
    // A run folder as `sinklab train` leaves it: config.yaml, metrics.h5 up to `steps`, checkpoint folders of the
    // steps given.
    void make_run(const std::string& name, int64_t steps, const std::vector<int64_t>& checkpoints = {}) {
        const SweepRun& r = run(name);
        fs::remove_all(r.dir);
        write_run(r.dir, losses(steps), dump_config(r.config));
        for (int64_t c : checkpoints)
            write_file(fs::path(r.dir) / fmt::format("checkpoints/step_{:08d}/state.json", c), "{}");
    }
    // baseline-s1 finished, headnorm-s1 cut short without a checkpoint, baseline-s2 with one, headnorm-s2 absent.
    void make_mixed_folders() {
        make_run("baseline-s1", 60, {60});
        make_run("headnorm-s1", 30);
        make_run("baseline-s2", 30, {30});
    }
    TempDir dir_;
    std::string suite_path_;
    Sweep sweep_;
};

// A --set of a key the suite sets too replaces it: each run's command names the key once, with the command line's
// value (the dry run printed both).
TEST_F(SweepTest, ACommandLineSetReplacesTheSuitesValueOnce) {
    const Sweep longer =
        expand_sweep(load_suite(suite_path_), {"train.max_steps=40", "run.out_dir=" + (root() / "o").string()});
    for (const SweepRun& r : longer.runs) {
        EXPECT_EQ(std::count_if(r.overrides.begin(), r.overrides.end(),
                                [](const std::string& o) { return o.starts_with("train.max_steps="); }),
                  1)
            << r.name;
        EXPECT_EQ(std::count_if(r.overrides.begin(), r.overrides.end(),
                                [](const std::string& o) { return o.starts_with("run.out_dir="); }),
                  1)
            << r.name;
        EXPECT_NE(std::find(r.overrides.begin(), r.overrides.end(), "train.max_steps=40"), r.overrides.end());
        EXPECT_EQ(r.config.train.max_steps, 40);
        EXPECT_EQ(r.dir, (root() / "o/t" / r.name).string());
    }
}

// Variants set attention.variant: a --set of it would run both arms as gated under the names baseline and headnorm.
TEST_F(SweepTest, ACommandLineSetOfAKeyTheVariantsSetIsRefused) {
    const Suite suite = load_suite(suite_path_);
    expect_has(error_of([&] { expand_sweep(suite, {"attention.variant=gated"}); }),
               {"--set attention.variant=gated: variants baseline (" + suite_path_ + ":7), headnorm (" + suite_path_ +
                    ":9) set attention.variant",
                "every variant", "Change the variants"});
    // A section holding the key overlaps it too; a key the suite-wide set: has is the command line's to change.
    expect_has(error_of([&] { expand_sweep(suite, {"attention={variant: gated}"}); }),
               {"--set attention={variant: gated}: variants baseline"});
    EXPECT_EQ(expand_sweep(suite, {"train.warmup_steps=7"}).runs[0].config.train.warmup_steps, 7);
}

// A variant that sets nothing the base does not already hold, next to one that sets the base's value.
TEST_F(SweepTest, VariantsWithTheSameConfigAreRefused) {
    write_file(root() / "same.yaml", R"(base: base.yaml
name: same
seeds: [1, 2]
variants:
  - name: plain
  - name: headnorm
    set: {attention.variant: headnorm}
  - name: standard
    set: {attention.variant: standard}
)");
    expect_has(error_of([&] { expand_sweep(load_suite((root() / "same.yaml").string()), {}); }),
               {"same.yaml: variants plain and headnorm give the same config", "remove one"});
}

TEST_F(SweepTest, RunFoldersDecideWhatHappens) {
    make_mixed_folders();
    const std::vector<RunState> states = inspect_sweep(sweep_);
    ASSERT_EQ(states.size(), 4u);
    EXPECT_EQ(states[0].action, RunAction::skip);
    EXPECT_EQ(states[0].step, 60);
    EXPECT_EQ(states[1].action, RunAction::restart);
    EXPECT_EQ(states[1].step, 30);
    EXPECT_EQ(states[2].action, RunAction::resume);
    EXPECT_EQ(states[3].action, RunAction::start);

    // A folder made but never logged to, and an empty checkpoints/ folder.
    write_file(fs::path(run("headnorm-s2").dir) / "config.yaml", dump_config(run("headnorm-s2").config));
    EXPECT_EQ(inspect_run(run("headnorm-s2")).action, RunAction::start);
    make_run("baseline-s2", 30);
    fs::create_directories(fs::path(run("baseline-s2").dir) / "checkpoints");
    EXPECT_EQ(inspect_run(run("baseline-s2")).action, RunAction::restart);

    // Every step logged, but killed while writing the final checkpoint: not finished. Its last row is logged
    // before the checkpoint is written, and eval and export read the checkpoint.
    make_run("baseline-s1", 60, {30});
    fs::create_directories(fs::path(run("baseline-s1").dir) / "checkpoints/.step_00000060.tmp");
    const RunState killed = inspect_run(run("baseline-s1"));
    EXPECT_EQ(killed.action, RunAction::resume);
    EXPECT_EQ(killed.checkpoint_step, 30);
    make_run("baseline-s1", 60);
    fs::create_directories(fs::path(run("baseline-s1").dir) / "checkpoints/.step_00000060.tmp");
    EXPECT_EQ(inspect_run(run("baseline-s1")).action, RunAction::restart);

    // A restart killed while it replaced the run: the old run set aside in .replaced, which the next start puts
    // back, is the state (it read as a new run, and train, started without flags, refused the old run it put back).
    const fs::path cut = run("headnorm-s1").dir;
    fs::remove_all(cut);
    write_run((cut / ".replaced").string(), losses(30), dump_config(run("headnorm-s1").config));
    write_file(cut / "metrics.h5.partial", "the killed restart's");
    write_file(cut / "config.yaml", dump_config(run("headnorm-s1").config));
    const RunState replaced = inspect_run(run("headnorm-s1"));
    EXPECT_EQ(replaced.action, RunAction::restart);
    EXPECT_EQ(replaced.step, 30);
    write_file(cut / ".replaced/checkpoints/step_00000020/state.json", "{}");
    EXPECT_EQ(inspect_run(run("headnorm-s1")).action, RunAction::resume);
    // Killed while it set the old run aside, one entry at a time: metrics.h5 not moved yet.
    fs::rename(cut / ".replaced/metrics.h5", cut / "metrics.h5");
    EXPECT_EQ(inspect_run(run("headnorm-s1")).action, RunAction::resume);

    // Checkpoints whose run log is gone are no new run (a start among them would prune and collide with them).
    fs::remove(cut / "metrics.h5");
    expect_has(error_of([&] { inspect_run(run("headnorm-s1")); }),
               {cut.string(), "holds checkpoints", "but no metrics.h5", "put metrics.h5 back (the sweep then resumes "
                "the run), or remove the folder to redo it"});
}

TEST_F(SweepTest, AFolderOfAnotherConfigIsRefusedNamingTheKeys) {
    const SweepRun& r = run("headnorm-s1");
    Config other = r.config;
    other.train.max_steps = 100;
    other.attention.qk_norm = true;
    write_run(r.dir, losses(60), dump_config(other));
    const std::string msg = error_of([&] { inspect_run(r); });
    expect_has(msg, {r.dir, "attention.qk_norm true vs false", "train.max_steps 100 vs 60", "remove the folder"});
    // Over the whole sweep, every refused folder is listed at once.
    const SweepRun& b2 = run("baseline-s2");
    write_run(b2.dir, losses(10), dump_config(other));
    const std::string all = error_of([&] { inspect_sweep(sweep_); }, Lines::Several);
    expect_has(all, {suite_path_, "2 run folders cannot be continued", "\n  headnorm-s1: ", "\n  baseline-s2: "});
}

TEST_F(SweepTest, AFileWhereARunFolderGoesIsRefusedBeforeAnythingRuns) {
    const SweepRun& r = run("headnorm-s1");
    write_file(r.dir, "not a folder");
    expect_has(error_of([&] { inspect_run(r); }), {r.dir, "is a file", "move it away"});
    expect_has(error_of([&] { inspect_sweep(sweep_); }, Lines::Several), {suite_path_, "\n  headnorm-s1: "});
}

// A suite's folder must be its own: not a run's folder, and not that of another suite of the same name.
TEST_F(SweepTest, ASuiteFolderOfARunOrOfAnotherSuiteIsRefused) {
    const fs::path folder(sweep_.out_dir);
    write_file(folder / "metrics.h5", "a run's");
    expect_has(error_of([&] { inspect_sweep(sweep_); }), {suite_path_, sweep_.out_dir, "a run's folder", "metrics.h5"});
    fs::remove(folder / "metrics.h5");

    write_manifest(sweep_);
    EXPECT_NO_THROW(inspect_sweep(sweep_));
    const std::string other = (root() / "other.yaml").string();
    write_file(other, "base: base.yaml\nname: t\nseeds: [1]\nvariants:\n  - name: gated\n    set: {attention.variant: "
                      "gated}\n");
    const Sweep second = expand_sweep(load_suite(other), {});
    expect_has(error_of([&] { inspect_sweep(second); }),
               {other, "belongs to another suite (" + suite_path_ + ", variants baseline, headnorm)", "delete"});
    // The same file with a variant more takes its folder on; so does a suite whose recorded file is gone, when its
    // variants are the same.
    write_file(suite_path_, read_file(suite_path_) + "  - name: gated\n    set: {attention.variant: gated}\n");
    const Sweep grown = expand_sweep(load_suite(suite_path_), {});
    EXPECT_NO_THROW(inspect_sweep(grown));
    write_manifest(grown);
    fs::rename(suite_path_, root() / "moved.yaml");
    const Sweep moved = expand_sweep(load_suite((root() / "moved.yaml").string()), {});
    EXPECT_NO_THROW(inspect_sweep(moved));
    expect_has(error_of([&] { inspect_sweep(second); }), {"variants baseline, headnorm, gated"});
}

TEST_F(SweepTest, TrainCommandsCarryEveryOverrideAndTheResumeFlags) {
    const SweepRun& r = run("headnorm-s2");
    const std::string out = (root() / "runs/t").string();
    const Strings common{"train", (root() / "base.yaml").string(),
                         "--set", "train.max_steps=60",
                         "--set", "train.warmup_steps=5",
                         "--set", "attention.variant=headnorm",
                         "--set", "run.out_dir=" + out,
                         "--set", "run.name=headnorm-s2",
                         "--set", "run.seed=2"};
    Strings fresh{"/bin/sinklab"};
    fresh.insert(fresh.end(), common.begin(), common.end());
    EXPECT_EQ(train_command({}, "/bin/sinklab", sweep_, r, RunAction::start), fresh);
    Strings resumed{"mpirun", "-np", "2", "/bin/sinklab"};
    resumed.insert(resumed.end(), common.begin(), common.end());
    resumed.push_back("--resume");
    EXPECT_EQ(train_command({"mpirun", "-np", "2"}, "/bin/sinklab", sweep_, r, RunAction::resume), resumed);
    EXPECT_EQ(train_command({}, "/bin/sinklab", sweep_, r, RunAction::restart).back(), "--overwrite");
}

std::string captured(const std::function<void(std::FILE*)>& print) {
    char* buf = nullptr;
    size_t size = 0;
    std::FILE* f = open_memstream(&buf, &size);
    print(f);
    std::fclose(f);
    std::string text(buf, size);
    std::free(buf);
    return text;
}

TEST_F(SweepTest, DryRunPrintsEachStateAndTheExactCommands) {
    make_mixed_folders();
    const std::string text =
        captured([&](std::FILE* f) { print_dry_run(f, sweep_, inspect_sweep(sweep_), {}, "/opt/my tools/sinklab"); });
    const std::string out = (root() / "runs/t").string(), base = (root() / "base.yaml").string();
    auto cmd = [&](const char* attention, const char* variant, int seed, const char* flag) {
        return fmt::format(
            "'/opt/my tools/sinklab' train {} --set train.max_steps=60 --set train.warmup_steps=5 "
            "--set attention.variant={} --set run.out_dir={} --set run.name={}-s{} --set run.seed={}{}\n",
            base, attention, out, variant, seed, seed, flag);
    };
    const std::string want = fmt::format("# sweep t ({}): 2 variants x 2 seeds = 4 runs in {}\n", suite_path_, out) +
                             "# baseline-s1: finished (60/60 steps), skipped\n"
                             "# headnorm-s1: stopped at step 30/60 before its first checkpoint, start again\n" +
                             cmd("headnorm", "headnorm", 1, " --overwrite") +
                             "# baseline-s2: stopped at step 30/60, resume from its newest checkpoint (step 30)\n" +
                             cmd("standard", "baseline", 2, " --resume") + "# headnorm-s2: new run\n" +
                             cmd("headnorm", "headnorm", 2, "");
    EXPECT_EQ(text, want);

    // A run that a process trains now gets no command: its start would be refused by the folder's lock.
    const FolderLock training(run("baseline-s2").dir, "run folder", "train", "");
    const std::string busy =
        captured([&](std::FILE* f) { print_dry_run(f, sweep_, inspect_sweep(sweep_), {}, "/opt/my tools/sinklab"); });
    EXPECT_NE(busy.find(fmt::format("# baseline-s2: in training now by `sinklab train` (pid {} on ", ::getpid())),
              std::string::npos)
        << busy;
    EXPECT_NE(busy.find("), at step 30/60; the sweep cannot run it until that ends\n# headnorm-s2: new run\n"),
              std::string::npos)
        << busy;
}

// Stands in for `sinklab train`: records each command and leaves the run folder as its maps below say.
struct FakeTrain {
    const Sweep* sweep;
    std::map<std::string, ProcessResult> fail;  // run name -> what the process returns instead
    std::map<std::string, int64_t> stop_at;     // run name -> exits 0 after this many steps
    std::vector<Strings> commands;
    std::map<std::string, int> signalled = {};  // run name -> a stop signal the sweep received while it ran
    std::set<std::string> no_final_checkpoint = {};  // run names killed before their last checkpoint was written

    ProcessResult operator()(const Strings& argv) {
        commands.push_back(argv);
        std::string name;
        for (const std::string& a : argv)
            if (a.starts_with("run.name=")) name = a.substr(9);
        if (fail.count(name)) return fail.at(name);
        for (const SweepRun& r : sweep->runs) {
            if (r.name != name) continue;
            fs::remove_all(r.dir);
            const int64_t steps = stop_at.count(name) ? stop_at.at(name) : 60;
            write_run(r.dir, losses(steps), dump_config(r.config));
            if (!no_final_checkpoint.count(name))
                write_file(fs::path(r.dir) / fmt::format("checkpoints/step_{:08d}/state.json", steps), "{}");
        }
        ProcessResult r{0, 0};
        if (signalled.count(name)) r.stop_signal = signalled.at(name);
        return r;
    }
};

std::string flag_of(const Strings& argv) {
    return argv.back() == "--resume" || argv.back() == "--overwrite" ? argv.back() : "";
}

TEST_F(SweepTest, StopsAtTheFirstFailureUnlessKeepGoing) {
    make_mixed_folders();
    write_file(fs::path(run("headnorm-s1").dir) / "train.log", "the failed attempt before\n");
    FakeTrain fake{&sweep_, {{"headnorm-s1", ProcessResult{1, 0}}}, {}, {}};
    SweepOptions opt;
    opt.binary = "/bin/sinklab";
    opt.launch = std::ref(fake);
    std::vector<RunOutcome> outcomes;
    const std::string text =
        captured([&](std::FILE* f) { outcomes = run_sweep(f, sweep_, inspect_sweep(sweep_), opt); });
    ASSERT_EQ(fake.commands.size(), 1u);
    EXPECT_EQ(flag_of(fake.commands[0]), "--overwrite");
    ASSERT_EQ(outcomes.size(), 4u);
    EXPECT_TRUE(outcomes[0].finished);
    EXPECT_FALSE(outcomes[0].ran);
    EXPECT_EQ(outcomes[1].result, "exit code 1");
    EXPECT_EQ(outcomes[2].result, "not run");
    EXPECT_EQ(outcomes[3].result, "not run");
    expect_has(text, {"[1/4] baseline-s1: finished before (60 steps), skipped", "[2/4] headnorm-s1: restart in",
                      "$ /bin/sinklab train", "sweep stopped: headnorm-s1 did not finish", "--keep-going",
                      "it stopped before writing to its log: its error is above"});  // the fake writes no log
    int unfinished = -1;
    std::string summary = captured([&](std::FILE* f) { unfinished = print_summary(f, sweep_, outcomes); });
    EXPECT_EQ(unfinished, 3);
    expect_has(summary, {"baseline-s1  finished, skip", "headnorm-s2  new run", "not run"});

    make_mixed_folders();
    FakeTrain again{&sweep_, {{"headnorm-s1", ProcessResult{1, 0}}}, {}, {}};
    opt.launch = std::ref(again);
    opt.keep_going = true;
    opt.launcher = {"mpirun", "-np", "2"};
    captured([&](std::FILE* f) { outcomes = run_sweep(f, sweep_, inspect_sweep(sweep_), opt); });
    ASSERT_EQ(again.commands.size(), 3u);
    EXPECT_EQ(again.commands[1][0], "mpirun");
    EXPECT_EQ(flag_of(again.commands[1]), "--resume");
    EXPECT_EQ(flag_of(again.commands[2]), "");
    EXPECT_TRUE(outcomes[2].finished && outcomes[3].finished);
    EXPECT_EQ(outcomes[2].result, "finished");
    summary = captured([&](std::FILE* f) { unfinished = print_summary(f, sweep_, outcomes); });
    EXPECT_EQ(unfinished, 1);
    expect_has(summary, {"sweep t: 4 runs in", "headnorm-s1  restart", "exit code 1", "baseline-s2  resume"});

    // A run that failed after writing to its log (here an earlier attempt's, an hour old) is pointed to it.
    make_mixed_folders();
    const fs::path log = fs::path(run("headnorm-s1").dir) / "train.log";
    write_file(log, "the failed attempt before\n");
    fs::last_write_time(log, fs::last_write_time(log) - std::chrono::hours(1));
    opt.keep_going = false;
    opt.launch = [&](const Strings&) {
        write_file(log, "the failed attempt now\n");
        return ProcessResult{1, 0};
    };
    const std::string logged = captured([&](std::FILE* f) { run_sweep(f, sweep_, inspect_sweep(sweep_), opt); });
    expect_has(logged, {"sweep stopped: headnorm-s1 did not finish", "its log is " + log.string()});
}

// Each run is looked at again just before it would run: baseline-s2, cut short when the sweep began, was finished
// meanwhile by another process (a run started by hand), so it is skipped, not started again over its result.
TEST_F(SweepTest, ARunFinishedMeanwhileIsSkipped) {
    make_mixed_folders();
    const std::vector<RunState> states = inspect_sweep(sweep_);
    ASSERT_EQ(states[2].action, RunAction::resume);
    FakeTrain fake{&sweep_, {}, {}, {}};
    SweepOptions opt;
    opt.binary = "/bin/sinklab";
    opt.launch = [&](const Strings& argv) {
        make_run("baseline-s2", 60, {60});
        return fake(argv);
    };
    std::vector<RunOutcome> outcomes;
    const std::string text = captured([&](std::FILE* f) { outcomes = run_sweep(f, sweep_, states, opt); });
    ASSERT_EQ(fake.commands.size(), 2u) << text;  // headnorm-s1 and headnorm-s2
    for (const Strings& argv : fake.commands)
        EXPECT_EQ(std::count(argv.begin(), argv.end(), "run.name=baseline-s2"), 0) << text;
    EXPECT_EQ(outcomes[2].result, "finished before");
    expect_has(text, {"[3/4] baseline-s2: finished before (60 steps), skipped"});
}

// A run folder that another process changed so that it cannot be continued (here: another config) fails that run
// with the reason, as any failed run: the sweep stops unless --keep-going, and its summary still comes.
TEST_F(SweepTest, ARunFolderChangedMeanwhileFailsThatRun) {
    make_mixed_folders();
    const std::vector<RunState> states = inspect_sweep(sweep_);
    FakeTrain fake{&sweep_, {}, {}, {}};
    Config other = run("baseline-s2").config;
    other.train.lr *= 2;
    SweepOptions opt;
    opt.binary = "/bin/sinklab";
    opt.launch = [&](const Strings& argv) {
        write_file(fs::path(run("baseline-s2").dir) / "config.yaml", dump_config(other));
        return fake(argv);
    };
    for (const bool keep_going : {false, true}) {
        make_mixed_folders();
        fake.commands.clear();
        opt.keep_going = keep_going;
        std::vector<RunOutcome> outcomes;
        const std::string text = captured([&](std::FILE* f) { outcomes = run_sweep(f, sweep_, states, opt); });
        EXPECT_FALSE(outcomes[2].finished);
        EXPECT_EQ(outcomes[2].result.rfind("its folder changed since the sweep began: ", 0), 0u) << outcomes[2].result;
        expect_has(text, {"[3/4] baseline-s2: its folder changed since the sweep began", "train.lr"});
        EXPECT_EQ(fake.commands.size(), keep_going ? 2u : 1u) << text;
        EXPECT_EQ(outcomes[3].result == "not run", !keep_going) << outcomes[3].result;
    }
}

// Interrupted either way, a sweep stops even with --keep-going: Ctrl-C's SIGINT ended the run, or the sweep alone
// got a stop signal (kill SWEEP_PID), passed it on, and the run checkpointed and exited 0 short of its steps.
TEST_F(SweepTest, AnInterruptStopsEvenWithKeepGoing) {
    FakeTrain by_signal{&sweep_, {{"headnorm-s1", ProcessResult{-1, SIGINT}}}, {}, {}};
    FakeTrain passed_on{&sweep_, {}, {{"headnorm-s1", 30}}, {}, {{"headnorm-s1", SIGTERM}}};
    std::vector<std::string> second;  // what became of the interrupted run
    for (FakeTrain* fake : {&by_signal, &passed_on}) {
        fs::remove_all(sweep_.out_dir);
        SweepOptions opt;
        opt.binary = "/bin/sinklab";
        opt.keep_going = true;
        opt.launch = std::ref(*fake);
        std::vector<RunOutcome> outcomes;
        const std::string text =
            captured([&](std::FILE* f) { outcomes = run_sweep(f, sweep_, inspect_sweep(sweep_), opt); });
        EXPECT_EQ(fake->commands.size(), 2u);
        EXPECT_TRUE(outcomes[0].finished);
        EXPECT_EQ(outcomes[2].result, "not run");
        expect_has(text, {"sweep interrupted"});
        second.push_back(outcomes[1].result);
    }
    EXPECT_EQ(second[0].rfind("signal 2", 0), 0u) << second[0];
    EXPECT_EQ(second[1], "exited at step 30/60");
}

// A run that exits 0 short of its steps (a stop signal's checkpoint), or killed after its last row but before its
// final checkpoint, is not finished; the next sweep resumes it from its checkpoint, or starts it again.
TEST_F(SweepTest, ARunThatEndsShortOrWithoutItsFinalCheckpointIsNotFinished) {
    FakeTrain exited_short{&sweep_, {}, {{"baseline-s1", 42}}, {}};
    FakeTrain killed_in_checkpoint{&sweep_, {}, {}, {}};
    killed_in_checkpoint.no_final_checkpoint = {"baseline-s1"};
    const std::vector<std::tuple<FakeTrain*, std::string, RunAction>> cases = {
        {&exited_short, "exited at step 42/60", RunAction::resume},
        {&killed_in_checkpoint, "exited at step 60/60 without its final checkpoint", RunAction::restart}};
    for (const auto& [fake, result, next] : cases) {
        fs::remove_all(sweep_.out_dir);
        SweepOptions opt;
        opt.binary = "/bin/sinklab";
        opt.launch = std::ref(*fake);
        std::vector<RunOutcome> outcomes;
        captured([&](std::FILE* f) { outcomes = run_sweep(f, sweep_, inspect_sweep(sweep_), opt); });
        EXPECT_FALSE(outcomes[0].finished);
        EXPECT_EQ(outcomes[0].result, result);
        EXPECT_EQ(outcomes[1].result, "not run");
        EXPECT_EQ(inspect_run(sweep_.runs[0]).action, next) << result;
    }
}

TEST(Process, ExitCodesSignalsAndArgumentsPassUntouched) {
    EXPECT_EQ(run_process({"/bin/sh", "-c", "exit 3"}).exit_code, 3);
    EXPECT_EQ(run_process({"/bin/sh", "-c", "exit 3"}).describe(), "exit code 3");
    const ProcessResult killed = run_process({"/bin/sh", "-c", "kill -KILL $$"});
    EXPECT_EQ(killed.signal, SIGKILL);
    EXPECT_FALSE(killed.ok());
    EXPECT_TRUE(run_process({"sh", "-c", "exit 0"}).ok());  // found on PATH
    expect_has(error_of([] { run_process({"/nonexistent/sinklab"}); }), {"cannot start /nonexistent/sinklab"});

    TempDir dir;
    const std::string file = dir.file("args");
    const std::string stopped = dir.file("stopped");
    ASSERT_TRUE(run_process({"/bin/sh", "-c", "printf '%s|' \"$@\" > \"$0\"", file, "a b", "it's", "*", ""}).ok());
    EXPECT_EQ(read_file(file), "a b|it's|*||");
}

// A stop signal sent to this process while a child runs reaches the child as SIGUSR1 (sinklab train's stop),
// and the result says which signal came: the child here counts the SIGUSR1s of one second after it sent SIGTERM to
// its parent, and exits with that count.
TEST(Process, StopSignalsPassOnToTheChildAsSigusr1) {
    const char* script =
        "n=0; trap 'n=$((n+1))' USR1; kill -TERM $PPID; i=0; "
        "while [ $i -lt 20 ]; do sleep 0.05; i=$((i+1)); done; exit $n";
    const ProcessResult r = run_process({"/bin/sh", "-c", script});
    EXPECT_EQ(r.exit_code, 1) << "SIGUSR1s the child received";
    EXPECT_EQ(r.stop_signal, SIGTERM);
    const ProcessResult quiet = run_process({"/bin/sh", "-c", "exit 0"});
    EXPECT_EQ(quiet.stop_signal, 0);
}

// A stop signal this process was started ignoring (SIGHUP under nohup) stays ignored in the child; SIGUSR1, by which
// stops are passed on, never does. The child's shell reports its ignored signals, a mask with bit (sig - 1).
TEST(Process, IgnoredStopSignalsStayIgnoredButSigusr1Reaches) {
    struct sigaction ignore = {}, old_hup = {}, old_usr1 = {};
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGHUP, &ignore, &old_hup);
    sigaction(SIGUSR1, &ignore, &old_usr1);
    const TempDir dir("process_ignored");
    const std::string out = dir / "sigign";
    const ProcessResult r = run_process({"/bin/sh", "-c", "grep SigIgn /proc/$$/status > \"$0\"", out});
    sigaction(SIGHUP, &old_hup, nullptr);
    sigaction(SIGUSR1, &old_usr1, nullptr);
    ASSERT_TRUE(r.ok()) << r.describe();
    const std::string line = read_file(out);
    const uint64_t mask = std::stoull(line.substr(line.find(':') + 1), nullptr, 16);
    EXPECT_TRUE(mask & (uint64_t(1) << (SIGHUP - 1))) << line;
    EXPECT_FALSE(mask & (uint64_t(1) << (SIGUSR1 - 1))) << line;
}

// The train command takes stop signals from its first moment and the trainer's own StopSignals, made later, keeps
// what came meanwhile; only the outermost restores the previous handlers.
TEST(StopSignals, ALaterOneKeepsWhatTheFirstReceived) {
    {
        const StopSignals first;
        raise(SIGTERM);
        {
            const StopSignals trainer;
            EXPECT_EQ(StopSignals::received(), SIGTERM);
            raise(SIGUSR1);
        }
        EXPECT_EQ(StopSignals::received(), SIGUSR1);
        raise(SIGINT);  // still handled: the inner one left the handlers in place
        EXPECT_EQ(StopSignals::received(), SIGINT);
    }
    const StopSignals fresh;
    EXPECT_EQ(StopSignals::received(), 0);
}

// shell_join's line, read back by a real shell, gives the same words.
TEST(Process, ShellQuotingReadsBack) {
    const Strings words{"plain", "data.train=.cache/x/train_*.bin", "a b", "it's", "$HOME", "x;y", "[0, 8]", "", "-"};
    Strings argv{"printf", "%s|"};
    argv.insert(argv.end(), words.begin(), words.end());
    FILE* p = popen(shell_join(argv).c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[512];
    const size_t n = fread(buf, 1, sizeof buf, p);
    pclose(p);
    EXPECT_EQ(std::string(buf, n), "plain|data.train=.cache/x/train_*.bin|a b|it's|$HOME|x;y|[0, 8]||-|");
    EXPECT_EQ(shell_quote("run.name=headnorm-s1"), "run.name=headnorm-s1");  // readable commands: no needless quotes
}

// shell_split reads a line as sh does (popen's sh prints the words it made of the same line), reads back what
// shell_join writes, and refuses what only a shell could do.
TEST(Process, ShellSplitReadsALineAsAShellDoes) {
    const Strings lines{"mpirun -np 8",
                        "  mpirun\t-np   2 --host 'node a,node b' ",
                        "srun --export=ALL,\"X=a b\" -n 2",
                        "a\\ b 'it'\\''s' \"q\\\"x\\\\y\\$z\\n\" ''",
                        "x\\\ny \"p\\\nq\" a#b",
                        ""};
    for (const std::string& line : lines) {
        FILE* p = popen(("for w in " + line + "; do printf '%s|' \"$w\"; done").c_str(), "r");
        ASSERT_NE(p, nullptr);
        char buf[512];
        const size_t n = fread(buf, 1, sizeof buf, p);
        pclose(p);
        std::string ours;
        for (const std::string& w : shell_split(line, "--launcher")) ours += w + "|";
        EXPECT_EQ(ours, std::string(buf, n)) << line;
    }
    const Strings argv{"mpirun", "a b", "it's", "$HOME", "x;y", "[0, 8]", "", "-", "\"", "\\", "~", "#c"};
    EXPECT_EQ(shell_split(shell_join(argv), "x"), argv);
    for (const char* line : {"mpirun -np $N", "a | b", "run; rm x", "a > f", "x*", "~/bin/run", "#x",
                                    "'open", "\"open", "\"$X\"", "end\\", "a `b`", "(a)"}) {
        try {
            shell_split(line, "--launcher");
            ADD_FAILURE() << "accepted: " << line;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("--launcher '" + std::string(line) + "' "), std::string::npos)
                << e.what();
        }
    }
}

}  // namespace
}  // namespace sinklab::test
