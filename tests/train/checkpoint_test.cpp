// Checkpoints and resume through the CLI: a resumed run is bit-identical to a straight one, a run killed
// with SIGKILL or stopped with SIGTERM continues to a complete metrics.h5, and damaged checkpoints, changed
// configs, unwritable folders and full disks are refused with the file or key named.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/check.h"
#include "core/checksum.h"
#include "core/folder_lock.h"
#include "data/data_test_util.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "train/train_util.h"

namespace fs = std::filesystem;

namespace sinklab::test {
namespace {

std::string ckpt(const TempDir& dir, const std::string& run, int step) {
    return dir / fmt::format("{}/checkpoints/step_{:08d}", run, step);
}

std::vector<std::string> checkpoint_names(const TempDir& dir, const std::string& run) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir / (run + "/checkpoints"))) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
}

// Every tensor of two safetensors files, byte for byte (headers may differ: they hold the run's name).
void expect_same_tensors(const std::string& a, const std::string& b) {
    const SafetensorsFile fa(a), fb(b);
    ASSERT_EQ(fa.tensors().size(), fb.tensors().size());
    for (const StoredTensor& t : fa.tensors()) {
        const StoredTensor& u = fb.get(t.name, t.dtype, t.shape);
        EXPECT_EQ(std::string(t.data, t.bytes), std::string(u.data, u.bytes)) << t.name << ": " << a << " " << b;
    }
}

std::vector<double> steps_1_to(int n) {
    std::vector<double> s(static_cast<size_t>(n));
    for (int i = 0; i < n; i++) s[size_t(i)] = i + 1;
    return s;
}

TEST(Resume, StoppedAndResumedEqualsStraight) {
    const TempDir dir("resume_exact");
    const int N = 12;
    ASSERT_EQ(run_sinklab(small_run(dir, "straight", N, "--set run.threads=1")).rc, 0);
    // Stopped by a SIGTERM it sends itself at step 5 (the real signal path), then resumed to N.
    const CommandResult stopped =
        run_sinklab(small_run(dir, "resumed", N, "--set run.threads=1"), "SINKLAB_FAULT_INJECT=signal@5");
    ASSERT_EQ(stopped.rc, 0) << stopped.out;
    EXPECT_NE(stopped.out.find("stopped after step 5 on SIGTERM"), std::string::npos) << stopped.out;
    EXPECT_EQ(column(dir / "resumed/metrics.h5", "train", "step"), steps_1_to(5));
    const CommandResult resumed = run_sinklab(small_run(dir, "resumed", N, "--set run.threads=1 --resume"));
    ASSERT_EQ(resumed.rc, 0) << resumed.out;
    EXPECT_NE(resumed.out.find("resumed from"), std::string::npos) << resumed.out;
    for (const char* not_said : {"starting at step 0", "learning-rate schedule changed"})
        EXPECT_EQ(resumed.out.find(not_said), std::string::npos) << not_said << " in " << resumed.out;

    const std::string a = dir / "straight/metrics.h5", b = dir / "resumed/metrics.h5";
    EXPECT_EQ(column(b, "train", "step"), steps_1_to(N));
    EXPECT_EQ(column(a, "train", "loss"), column(b, "train", "loss"));  // bit for bit
    EXPECT_EQ(column(a, "train", "grad_norm"), column(b, "train", "grad_norm"));
    EXPECT_EQ(column(b, "val", "step"), (std::vector<double>{0, N}));
    EXPECT_EQ(column(a, "val", "loss"), column(b, "val", "loss"));
    for (const char* file : {"/model.safetensors", "/optimizer.safetensors"})
        expect_same_tensors(ckpt(dir, "straight", N) + file, ckpt(dir, "resumed", N) + file);
}

// What the update guard decided before the checkpoint decides after it as in the straight run: AdamW's step count
// leaves out the update skipped at step 3 (its bias correction), and the spike at step 30 is judged against a
// window of losses from both sides of the resume at 25.
TEST(Resume, SkippedUpdatesAndTheSpikeWindowResumeExactly) {
    const TempDir dir("resume_guard");
    const int N = 32;
    const std::string opts = "--set run.threads=1 --set fault.nan_policy=skip --set fault.spike_zscore=6 "
                             "--set fault.spike_window=10";
    const std::string faults = "SINKLAB_FAULT_INJECT=nan@3,spike@30";
    ASSERT_EQ(run_sinklab(small_run(dir, "straight", N, opts), faults).rc, 0);
    const CommandResult stopped = run_sinklab(small_run(dir, "resumed", N, opts), faults + ",signal@25");
    ASSERT_EQ(stopped.rc, 0) << stopped.out;
    const CommandResult resumed = run_sinklab(small_run(dir, "resumed", N, opts + " --resume"), faults);
    ASSERT_EQ(resumed.rc, 0) << resumed.out;
    EXPECT_NE(resumed.out.find("resumed from"), std::string::npos) << resumed.out;

    const std::string a = dir / "straight/metrics.h5", b = dir / "resumed/metrics.h5";
    std::vector<double> skipped(N, 0.0);
    skipped[2] = 1;
    skipped[29] = 2;
    EXPECT_EQ(column(a, "train", "skipped"), skipped);
    EXPECT_EQ(column(b, "train", "skipped"), skipped);
    EXPECT_EQ(column(a, "train", "loss"), column(b, "train", "loss"));  // bit for bit
    for (const char* file : {"/model.safetensors", "/optimizer.safetensors"})
        expect_same_tensors(ckpt(dir, "straight", N) + file, ckpt(dir, "resumed", N) + file);
}

TEST(Resume, KillNineThenResumeCompletesTheRun) {
    const TempDir dir("resume_kill9");
    const int N = 40;
    const std::string args =
        small_run(dir, "run", N, "--set run.threads=1 --set checkpoint.every=5 --set checkpoint.keep=2");
    ASSERT_EQ(run_sinklab(small_run(dir, "straight", N, "--set run.threads=1")).rc, 0);
    {
        Background bg(fmt::format("env SINKLAB_FAULT_INJECT=slow=0.03 {} {}", SINKLAB_BINARY, args),
                      dir / "killed.log");
        ASSERT_TRUE(wait_until([&] { return fs::exists(ckpt(dir, "run", 15)); }, 60)) << read_file(dir / "killed.log");
        std::this_thread::sleep_for(std::chrono::milliseconds(70));  // into the next steps, a flush perhaps
        bg.signal(SIGKILL);
        ASSERT_EQ(bg.wait(10), 128 + SIGKILL);
    }
    const std::string h5 = dir / "run/metrics.h5";
    EXPECT_GE(column(h5, "train", "step").size(), 15u);  // readable after the kill, up to the last flush
    // What a kill in the middle of writing a checkpoint leaves: never read, removed by the next write.
    write_file(dir / "run/checkpoints/.step_00000099.tmp/model.safetensors", "half a file");
    const CommandResult r = run_sinklab(args + " --resume");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(column(h5, "train", "step"), steps_1_to(N));
    EXPECT_EQ(column(h5, "val", "step"), (std::vector<double>{0, 25, N}));
    EXPECT_EQ(column(h5, "train", "loss"), column(dir / "straight/metrics.h5", "train", "loss"));
    EXPECT_EQ(column(h5, "val", "loss"), column(dir / "straight/metrics.h5", "val", "loss"));
    const auto names = checkpoint_names(dir, "run");
    EXPECT_EQ(names, (std::vector<std::string>{"step_00000035", "step_00000040"}));  // keep = 2, no leftovers
    // h5py opens it without SWMR: the resumed writer closed it properly.
    const CommandResult py = run_command(fmt::format(
        "/usr/bin/python3 -c \"import h5py; f = h5py.File('{}', 'r'); print(f['train/step'][-1])\"", h5));
    if (py.out.find("No module named") == std::string::npos) {
        EXPECT_EQ(py.out, fmt::format("{}\n", N)) << py.out;
    }
}

// Starts a run of `steps` slow steps in dir/run (`wrapper` before the binary: nohup, say), sends `sig` once it has
// logged step 10, and returns its exit code (-1: it did not end within a minute; -2: it never reached step 10).
int signal_at_step_10(const TempDir& dir, int steps, int sig, const std::string& wrapper = "") {
    const std::string args = small_run(dir, "run", steps, "--set run.threads=1 --set train.log_every=1");
    Background bg(fmt::format("env SINKLAB_FAULT_INJECT=slow=0.02 {}{} {}", wrapper, SINKLAB_BINARY, args),
                  dir / "out.log");
    if (!wait_until([&] { return logged_step(dir, "run", 10); }, 60)) return -2;
    bg.signal(sig);
    return bg.wait(60);
}

// SIGTERM from a scheduler; SIGHUP from a terminal closed under a run started without nohup.
TEST(Resume, SigtermOrSighupFromOutsideCheckpointsAndExitsZero) {
    for (const auto& [sig, name] : {std::pair{SIGTERM, "SIGTERM"}, std::pair{SIGHUP, "SIGHUP"}}) {
        SCOPED_TRACE(name);
        const TempDir dir("resume_sigterm");
        ASSERT_EQ(signal_at_step_10(dir, 400, sig), 0) << read_file(dir / "out.log");
        const auto names = checkpoint_names(dir, "run");
        ASSERT_EQ(names.size(), 1u);
        const int step = std::stoi(names[0].substr(5));
        EXPECT_GE(step, 10);
        EXPECT_LT(step, 400);
        EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(step));
        const std::string out = read_file(dir / "out.log");
        EXPECT_NE(out.find(fmt::format("stopped after step {} on {}", step, name)), std::string::npos) << out;
    }
}

// A run started under nohup ignores SIGHUP: the terminal closing does not stop it.
TEST(Resume, SighupUnderNohupIsIgnored) {
    const TempDir dir("resume_nohup");
    ASSERT_EQ(signal_at_step_10(dir, 60, SIGHUP, "nohup "), 0) << read_file(dir / "out.log");
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(60));
    EXPECT_EQ(read_file(dir / "run/train.log").find("stopped after"), std::string::npos);
}

// `sinklab train ... | head`: once the reader is gone the run goes on to its end, logging to train.log. SIGPIPE is
// set to its default first, in case the test runner ignores it (sinklab would inherit that).
TEST(Resume, AClosedStdoutPipeDoesNotEndTheRun) {
    const TempDir dir("train_closed_pipe");
    const CommandResult r =
        run_command(fmt::format("bash -c 'set -o pipefail; env --default-signal=PIPE {} {} | head -c 1 >/dev/null'",
                                SINKLAB_BINARY, small_run(dir, "run", 30, "--set run.threads=1")));
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(30));
    EXPECT_NE(read_file(dir / "run/train.log").find("step     30/"), std::string::npos);
    // Nor does a terminal that goes away (ssh dropped; writes to it fail with EIO): the finished run exits 0. The
    // terminal is a pseudo-terminal whose other end closes early in the run.
    write_file(dir / "hangup.py", "import os, pty, subprocess, sys, time\n"
                                  "master, slave = pty.openpty()\n"
                                  "p = subprocess.Popen(sys.argv[1:], stdout=slave, start_new_session=True)\n"
                                  "os.close(slave)\n"
                                  "time.sleep(0.2)\n"
                                  "os.close(master)\n"
                                  "sys.exit(p.wait())\n");
    const CommandResult hangup = run_command(fmt::format("/usr/bin/python3 {} {} {}", dir / "hangup.py", SINKLAB_BINARY,
                                                         small_run(dir, "hangup", 300, "--set run.threads=1")));
    EXPECT_EQ(hangup.rc, 0) << hangup.out;
    EXPECT_EQ(column(dir / "hangup/metrics.h5", "train", "step"), steps_1_to(300));
    // Nor a standard output on a full disk (README: train's is the one output whose failure ends nothing).
    const CommandResult full = run_command(
        fmt::format("{} {} > /dev/full", SINKLAB_BINARY, small_run(dir, "full", 30, "--set run.threads=1")));
    EXPECT_EQ(full.rc, 0) << full.out;
    EXPECT_EQ(column(dir / "full/metrics.h5", "train", "step"), steps_1_to(30));
}

class DamagedCheckpoint : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_EQ(run_sinklab(small_run(dir, "run", 6, "--set run.threads=1 --set checkpoint.every=3")).rc, 0);
    }
    CommandResult resume(const std::string& extra = "") {
        return run_sinklab(small_run(dir, "run", 9, "--set run.threads=1 --resume " + extra));
    }
    // The resume fails, names `file` and says `why`; metrics.h5 keeps its 6 rows.
    void expect_refused(const std::string& file, const std::string& why) {
        const CommandResult r = resume();
        EXPECT_NE(r.rc, 0) << r.out;
        EXPECT_NE(r.out.find(file), std::string::npos) << r.out;
        EXPECT_NE(r.out.find(why), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("mv "), std::string::npos) << "the way back to the older checkpoint: " << r.out;
        EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step").size(), 6u);
    }
    const TempDir dir{"resume_damaged"};
    const std::string newest = ckpt(dir, "run", 6);
};

TEST_F(DamagedCheckpoint, FlippedByteInTheWeights) {
    const std::string path = newest + "/model.safetensors";
    std::string bytes = read_file(path);
    bytes[bytes.size() / 2] ^= 0x10;
    write_file(path, bytes);
    expect_refused(path, "corrupt");
}

// eval and export of a run whose newest checkpoint is damaged point at the older one with --checkpoint (they take
// no newest-by-name, and a start over would delete the run they read); with no older one they say so and no more.
TEST_F(DamagedCheckpoint, EvalAndExportPointAtTheOlderOne) {
    const std::string path = newest + "/model.safetensors";
    std::string bytes = read_file(path);
    bytes[bytes.size() / 2] ^= 0x10;
    write_file(path, bytes);
    const std::string run = dir / "run", older = ckpt(dir, "run", 3);
    for (const std::string& command : {"eval " + run + " --batches 1", "export " + run + " --format hf"}) {
        const CommandResult r = run_sinklab(command);
        EXPECT_NE(r.rc, 0) << command;
        EXPECT_TRUE(r.out.starts_with("sinklab: error: checkpoint file " + path + " is corrupt")) << r.out;
        EXPECT_TRUE(r.out.ends_with("; read the checkpoint before it with --checkpoint " + older + "\n")) << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    }
    const CommandResult read_older = run_sinklab("eval " + run + " --batches 1 --checkpoint " + older);
    EXPECT_EQ(read_older.rc, 0) << read_older.out;
    // With no older checkpoint left: no advice that would delete the run.
    fs::remove_all(older);
    const CommandResult only = run_sinklab("eval " + run + " --batches 1");
    EXPECT_NE(only.rc, 0);
    EXPECT_TRUE(only.out.ends_with("; the run has no older checkpoint to read instead\n")) << only.out;
}

TEST_F(DamagedCheckpoint, TruncatedOptimizerState) {
    const std::string path = newest + "/optimizer.safetensors";
    const std::string bytes = read_file(path);
    write_file(path, bytes.substr(0, bytes.size() - 100));
    expect_refused(path, "truncated");
}

TEST_F(DamagedCheckpoint, MissingStateFile) {
    fs::remove(newest + "/state.json");
    expect_refused(newest, "state.json");
}

TEST_F(DamagedCheckpoint, MovingTheBadOneAsideResumesFromTheOlder) {
    std::string bytes = read_file(newest + "/model.safetensors");
    bytes[bytes.size() - 1] ^= 1;
    write_file(newest + "/model.safetensors", bytes);
    fs::rename(newest, newest + ".bad");
    const CommandResult r = resume();
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("step_00000003"), std::string::npos) << r.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(9));
    // The run log's config is the resumed run's (max_steps 9, not 6).
    EXPECT_NE(RunLogReader(dir / "run/metrics.h5").str_attr("config_yaml").find("max_steps: 9"), std::string::npos);
}

TEST_F(DamagedCheckpoint, TruncatedStateFile) {
    const std::string path = newest + "/state.json";
    const std::string bytes = read_file(path);
    write_file(path, bytes.substr(0, bytes.size() / 2));
    expect_refused(path, "not a valid checkpoint state");
}

// A hand-edited state.json: counts that are negative, beyond int64 or not whole are named, not taken.
TEST_F(DamagedCheckpoint, StateCountsOutOfRange) {
    const std::string path = newest + "/state.json";
    const std::string good = read_file(path);
    for (const std::string key : {"step", "epoch", "cursor"}) {
        // `"key": digits` as the checkpoint wrote it
        const size_t at = good.find("\"" + key + "\": ");
        ASSERT_NE(at, std::string::npos) << good;
        const size_t digits = at + key.size() + 4;
        const size_t end = good.find_first_not_of("0123456789", digits);
        ASSERT_GT(end, digits) << good;
        for (const std::string bad : {"-7", "99999999999999999999", "6.5"}) {
            write_file(path, good.substr(0, digits) + bad + good.substr(end));
            expect_refused(path, fmt::format("not a valid checkpoint state: {} is ", key));
        }
    }
}

// A value changed within its range (a resume would cut metrics.h5 back to run_log_step, reread windows from the
// cursor, correct AdamW's bias for another step count) is caught by the state's own checksum, and named.
TEST_F(DamagedCheckpoint, StateEditedWithinRange) {
    const std::string path = newest + "/state.json";
    const std::string good = read_file(path);
    for (const auto& [key, value] : {std::pair{"run_log_step", 3}, std::pair{"optimizer_steps", 2}}) {
        nlohmann::ordered_json state = nlohmann::ordered_json::parse(good);
        ASSERT_TRUE(state.contains(key)) << state.dump();
        state[key] = value;
        write_file(path, state.dump(2));
        expect_refused(path, "was changed since it was written: its fields do not match their state_checksum");
    }
    nlohmann::ordered_json state = nlohmann::ordered_json::parse(good);
    state["train_data"]["cursor"] = 0;
    write_file(path, state.dump(2));
    expect_refused(path, "was changed since it was written");
    write_file(path, good);
    ASSERT_EQ(resume().rc, 0);
}

// A file where the newest checkpoint's folder was: refused, named, not passed over for the older checkpoint (the run
// went on from it, its rows past it dropped, and failed at the step of the file's name).
TEST_F(DamagedCheckpoint, AFileNamedLikeACheckpointIsRefused) {
    fs::remove_all(newest);
    write_file(newest, "x");
    expect_refused(newest, "is named like the checkpoint of step 6 but is no folder");
}

// One made while a run trains does not end it at its next checkpoint (pruning passes over the folder, as over a
// checkpoint it cannot remove); the next start names it.
TEST(CheckpointWrite, AFileNamedLikeACheckpointMadeMidRunDoesNotEndTheRun) {
    const TempDir dir("ckpt_stray_file");
    const std::string args =
        small_run(dir, "run", 6, "--set run.threads=1 --set checkpoint.every=2 --set checkpoint.keep=1");
    {
        Background run(fmt::format("env SINKLAB_FAULT_INJECT=stop@3 {} {}", SINKLAB_BINARY, args), dir / "run.log");
        ASSERT_TRUE(run.wait_stopped(60)) << read_file(dir / "run.log");
        write_file(dir / "run/checkpoints/step_00000099", "x");
        run.signal(SIGCONT);
        ASSERT_EQ(run.wait(60), 0) << read_file(dir / "run.log");
    }
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(6));
    EXPECT_TRUE(fs::is_directory(ckpt(dir, "run", 6)));
    const CommandResult resumed = run_sinklab(args + " --resume");
    EXPECT_EQ(resumed.rc, 1) << resumed.out;
    EXPECT_NE(resumed.out.find("step_00000099 is named like the checkpoint of step 99 but is no folder"),
              std::string::npos)
        << resumed.out;
}

// The checksum ("f1:" and 16 hex digits) is of the fields as the file holds them (but `files` and itself, keys
// sorted, compact), not of what this sinklab would write for them: a state.json with a field this version does not
// know, checksummed so, resumes, and the same file with that field changed does not.
TEST_F(DamagedCheckpoint, TheStateChecksumIsOfTheFileAsWritten) {
    const std::string path = newest + "/state.json";
    nlohmann::ordered_json state = nlohmann::ordered_json::parse(read_file(path));
    state["from_a_later_sinklab"] = "x";
    nlohmann::json fields = nlohmann::json::parse(state.dump());
    fields.erase("files");
    fields.erase("state_checksum");
    const std::string text = fields.dump();
    state["state_checksum"] = fmt::format("f1:{:016x}", checksum64(text.data(), text.size()));
    state["from_a_later_sinklab"] = "y";
    write_file(path, state.dump(2));
    expect_refused(path, "was changed since it was written");
    state["from_a_later_sinklab"] = "x";
    write_file(path, state.dump(4));
    const CommandResult r = resume();
    ASSERT_EQ(r.rc, 0) << r.out;
}

// A checkpoint of a sinklab whose ranks each validated on val_batches micro-batches of their own (no "validation" in
// state.json), written by 2 ranks: the resume notes that the val curve may step where validation became shared.
TEST_F(DamagedCheckpoint, AResumeFromPerRankValidationSaysTheCurveMayStep) {
    const std::string path = newest + "/state.json";
    nlohmann::ordered_json state = nlohmann::ordered_json::parse(read_file(path));
    ASSERT_EQ(state.at("validation"), "shared") << state.dump();
    state.erase("validation");
    state.erase("state_checksum");
    state["world_size"] = 2;
    write_file(path, state.dump(2));
    const CommandResult r = resume();
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("note: validation reads the first 2 micro-batches of data.val on any number of ranks now; "
                         "the run's rows up to step 6 were measured on 4 of them (2 ranks x 2), so its val curve may "
                         "step there"),
              std::string::npos)
        << r.out;
    EXPECT_EQ(resume().out.find("note: validation reads"), std::string::npos) << "its new checkpoints are shared";
}

// Resume and pruning go by the folders' names: a copy under another step's name is refused, and a name that is no
// step's (more digits than a step has, no zero padding) is no checkpoint, neither resumed from nor removed.
TEST_F(DamagedCheckpoint, FolderNamesMustBeTheirSteps) {
    const std::string older = ckpt(dir, "run", 3);
    const fs::path root = fs::path(older).parent_path();
    fs::copy(older, root / "step_00000009");
    expect_refused((root / "step_00000009").string(), "holds step 3, its folder's name another");
    fs::remove_all(root / "step_00000009");

    for (const char* stray : {"step_99999999999999999999999", "step_7"}) fs::copy(older, root / stray);
    const CommandResult r = resume();
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("step_00000006 at step 6"), std::string::npos) << r.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(9));
    for (const char* stray : {"step_99999999999999999999999", "step_7"}) EXPECT_TRUE(fs::exists(root / stray));
}

// A resume may raise train.max_steps; compare takes it from the run folder's config.yaml, which the resume
// rewrites, not from metrics.h5's config_yaml attribute, which keeps the first start's.
TEST_F(DamagedCheckpoint, CompareSeesTheStepsAResumeAskedFor) {
    ASSERT_EQ(resume().rc, 0);
    const CommandResult c = run_sinklab("compare " + (dir / "run"));
    ASSERT_EQ(c.rc, 0) << c.out;
    EXPECT_NE(c.out.find(" 9/9 "), std::string::npos) << c.out;
}

TEST_F(DamagedCheckpoint, ChangedConfigIsRefusedAndHarmlessChangesAreNot) {
    const CommandResult r = resume("--set train.beta2=0.9 --set model.rope_theta=500");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("train.beta2 (0.95 -> 0.9)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("model.rope_theta"), std::string::npos) << r.out;
    EXPECT_EQ(resume("--set checkpoint.keep=1 --set train.log_every=3").rc, 0);
}

// What the message after a non-finite loss advises: continue from the last good checkpoint with gentler updates.
TEST_F(DamagedCheckpoint, ALowerLearningRateAndGradientClipMayResume) {
    const CommandResult r = resume("--set train.lr=0.001 --set train.min_lr=0.0001 --set train.grad_clip=0.5");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(9));
    for (const std::string& log : {r.out, read_file(dir / "run/train.log")})
        for (const char* change : {"train.lr (0.003 -> 0.001)", "train.min_lr (0.0003 -> 0.0001)", "train.grad_clip ("})
            EXPECT_NE(log.find(change), std::string::npos) << change << " in: " << log;
    for (const std::string& file : {dir / "run/config.yaml", ckpt(dir, "run", 9) + "/config.yaml"})
        EXPECT_EQ(load_config(file).train.lr, 0.001f) << file;
    const std::vector<double> lr = column(dir / "run/metrics.h5", "train", "lr");
    for (size_t i = 6; i < lr.size(); i++) EXPECT_LE(lr[i], 0.001 * (1 + 1e-6)) << "step " << i + 1;
}

// How a run resumed on other ranks keeps its global batch: tokens_per_step set where it was 0 (one micro-batch of
// 8 x 64 per rank). Here one rank doubles it; the run log's tokens and its attribute follow.
TEST_F(DamagedCheckpoint, TheGlobalBatchMayBeSetOnResume) {
    const CommandResult r = resume("--set train.tokens_per_step=1024");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(read_file(dir / "run/train.log").find("train.tokens_per_step (0 -> 1024)"), std::string::npos) << r.out;
    const RunLogReader log(dir / "run/metrics.h5");
    EXPECT_EQ(log.num_attr("tokens_per_step"), 1024.0);
    const std::vector<double> tokens = log.read("train", "tokens").data;
    ASSERT_EQ(tokens.size(), 9u);
    EXPECT_EQ(tokens[5], 6.0 * 512);
    EXPECT_EQ(tokens[8], 6.0 * 512 + 3 * 1024);
}

// A checkpoint from before state.json recorded the data's token count and checksum resumes as before: unchecked.
TEST_F(DamagedCheckpoint, ACheckpointWithoutTheDataTokenCountResumes) {
    const std::string path = newest + "/state.json";
    const nlohmann::json before = nlohmann::json::parse(read_file(path));
    ASSERT_TRUE(before.at("train_data").contains("tokens")) << before.dump();
    ASSERT_TRUE(before.at("train_data").contains("checksum")) << before.dump();
    nlohmann::ordered_json state = nlohmann::ordered_json::parse(read_file(path));
    state["train_data"].erase("tokens");
    state["train_data"].erase("checksum");
    state.erase("state_checksum");  // nor its own checksum
    write_file(path, state.dump(2));
    const CommandResult r = resume();
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(9));
}

// A checkpoint from before state.json recorded the tokens: they are counted with the step geometry of the config
// the checkpoint was written with (512 a step), not the resumed run's.
TEST_F(DamagedCheckpoint, ACheckpointWithoutTokensCountsThemWithItsOwnBatch) {
    const std::string path = newest + "/state.json";
    nlohmann::ordered_json state = nlohmann::ordered_json::parse(read_file(path));
    ASSERT_TRUE(state.contains("tokens")) << state.dump();
    state.erase("tokens");
    state.erase("state_checksum");  // nor its own checksum
    write_file(path, state.dump(2));
    ASSERT_EQ(resume("--set train.tokens_per_step=1024").rc, 0);
    const std::vector<double> tokens = RunLogReader(dir / "run/metrics.h5").read("train", "tokens").data;
    ASSERT_EQ(tokens.size(), 9u);
    EXPECT_EQ(tokens[6], 6.0 * 512 + 1024);
}

TEST(Resume, ADamagedOnlyCheckpointSaysSoAndAStartOverKeepsTheRows) {
    const TempDir dir("resume_only_checkpoint");
    const std::string args = small_run(dir, "run", 3, "--set run.threads=1");
    ASSERT_EQ(run_sinklab(args).rc, 0);
    const std::string only = ckpt(dir, "run", 3);
    std::string bytes = read_file(only + "/model.safetensors");
    bytes[bytes.size() / 2] ^= 0x10;
    write_file(only + "/model.safetensors", bytes);
    const CommandResult damaged = run_sinklab(args + " --resume");
    EXPECT_NE(damaged.rc, 0);
    EXPECT_NE(damaged.out.find("no older checkpoint"), std::string::npos) << damaged.out;
    EXPECT_NE(damaged.out.find("--overwrite"), std::string::npos) << damaged.out;
    EXPECT_EQ(damaged.out.find("mv "), std::string::npos) << "there is nothing to fall back to: " << damaged.out;
    // Moved aside anyway, as a requeued job that ended before its first checkpoint: --resume starts over at step 0
    // and keeps the rows logged before in metrics.restart1.h5 (then restart2, ...), where they were dropped.
    fs::rename(only, only + ".bad");
    for (int k = 1; k <= 2; k++) {
        const CommandResult none = run_sinklab(args + " --resume");
        ASSERT_EQ(none.rc, 0) << none.out;
        const std::string aside = fmt::format("metrics.restart{}.h5", k);
        EXPECT_NE(none.out.find("starting at step 0"), std::string::npos) << none.out;
        EXPECT_NE(none.out.find(aside), std::string::npos) << none.out;
        EXPECT_EQ(column(dir / ("run/" + aside), "train", "step"), steps_1_to(3));
        EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(3));
        fs::remove_all(ckpt(dir, "run", 3));  // the next start finds no checkpoint again
    }
    // --overwrite replaces the whole run, the rows kept aside included.
    ASSERT_EQ(run_sinklab(args + " --overwrite").rc, 0);
    EXPECT_FALSE(fs::exists(dir / "run/metrics.restart1.h5"));
}

TEST(CheckpointWrite, FullDiskKeepsTheOlderCheckpoint) {
    const TempDir dir("ckpt_full");
    // No /heavy rows: metrics.h5 stays below the limit, so that the checkpoint is what fails.
    const std::string base = "--set run.threads=1 --set checkpoint.every=3 --set metrics.heavy_every=0";
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 6, base)).rc, 0);
    // A file-size limit makes the next checkpoint's first big write fail as a full disk would (EFBIG instead of
    // ENOSPC, the same failing write()).
    const CommandResult r = run_command(fmt::format("bash -c \"ulimit -f 420; exec {} {}\"",
                                                    SINKLAB_BINARY, small_run(dir, "run", 9, base + " --resume")));
    EXPECT_NE(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("model.safetensors"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("older checkpoints"), std::string::npos) << r.out;
    EXPECT_EQ(checkpoint_names(dir, "run"), (std::vector<std::string>{"step_00000003", "step_00000006"}));
    const CommandResult again = run_sinklab(small_run(dir, "run", 9, base + " --resume"));
    ASSERT_EQ(again.rc, 0) << again.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(9));
}

// A disk that fills while metrics.h5 is written: one error line with the system's reason (HDF5's own detail held a
// line break, and the run log's destructor printed the error again), exit 1 (it was a segfault in HDF5's cleanup at
// exit), and the rows up to the last checkpoint resume. A file-size limit stands in for the full disk; its SIGXFSZ
// is sinklab's to catch (it ended the process without a word).
TEST(RunLogWrite, FullDiskEndsTheRunWithOneLineAndItResumes) {
    const TempDir dir("runlog_full");
    // The limit lets a checkpoint through (its largest file, the optimizer's, is 970 KiB) and stops metrics.h5, which
    // grows by an attention map a step, within the run.
    const std::string base = "--set run.threads=1 --set checkpoint.every=10 --set metrics.flush_every=5 "
                             "--set metrics.heavy_every=1";
    ASSERT_EQ(run_sinklab(small_run(dir, "data", 10, base)).rc, 0);  // the synthetic shards, made unlimited
    const CommandResult r = run_command(fmt::format("bash -c \"ulimit -f 1000; exec {} {}\"",
                                                    SINKLAB_BINARY, small_run(dir, "run", 400, base)));
    EXPECT_EQ(r.rc, 1) << r.out;
    const size_t error = r.out.find("sinklab: error: ");
    ASSERT_NE(error, std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("sinklab: error: ", error + 1), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("[error]"), std::string::npos) << r.out;
    const std::string line = r.out.substr(error);
    EXPECT_EQ(line.find('\n'), line.size() - 1) << r.out;
    EXPECT_NE(line.find("metrics.h5"), std::string::npos) << line;
    EXPECT_NE(line.find("File too large"), std::string::npos) << line;
    EXPECT_EQ(line.find("time ="), std::string::npos) << line;
    ASSERT_FALSE(checkpoint_names(dir, "run").empty()) << r.out;
    const CommandResult again = run_sinklab(small_run(dir, "run", 60, base + " --resume"));
    ASSERT_EQ(again.rc, 0) << again.out;
    EXPECT_NE(again.out.find("resumed from " + dir / "run/checkpoints/step_"), std::string::npos) << again.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(60));
}

// A write to train.log that fails (a full disk: /dev/full here) stops the run with the file named; spdlog went on
// with a hole in the log and one line on stderr, and the run exited 0.
TEST(RunLogWrite, AFailedWriteToTrainLogStopsTheRun) {
    const TempDir dir("trainlog_full");
    std::filesystem::create_directories(dir / "run");
    std::filesystem::create_symlink("/dev/full", dir / "run/train.log");
    const CommandResult r = run_sinklab(small_run(dir, "run", 20, "--set run.threads=1"));
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_NE(r.out.find("sinklab: error: " + dir / "run/train.log: a write to it failed ("), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("No space left on device"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("LOG ERROR"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("done: "), std::string::npos) << r.out;
}

// A metrics.h5 that ends short of the checkpoint a resume starts from (rows lost to a crash of the machine, before
// sinklab synced them ahead of each checkpoint) is refused, naming both steps: the run went on with a gap in its
// curves. Resumed from an older checkpoint it continues without one.
// The run's own metrics.h5 of step 6 put back over the one of step 12 (a restored backup, a disk that lied about a
// sync).
TEST(Resume, RowsLostBeforeTheCheckpointAreRefused) {
    const TempDir dir("resume_gap");
    const std::string base = "--set run.threads=1 --set checkpoint.every=4 --set checkpoint.keep=5";
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 6, base)).rc, 0);
    std::filesystem::copy_file(dir / "run/metrics.h5", dir / "at_step_6.h5");
    // Raised from 6 to 12 steps, step 7 leaves min_lr, where the run's cosine had ended: train.log notes it.
    const CommandResult longer = run_sinklab(small_run(dir, "run", 12, base + " --resume"));
    ASSERT_EQ(longer.rc, 0) << longer.out;
    EXPECT_NE(read_file(dir / "run/train.log").find("note: the learning-rate schedule changed: step 7 runs at lr "),
              std::string::npos)
        << longer.out;
    std::filesystem::copy_file(dir / "at_step_6.h5", dir / "run/metrics.h5",
                               std::filesystem::copy_options::overwrite_existing);
    const CommandResult r = run_sinklab(small_run(dir, "run", 16, base + " --resume"));
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_NE(r.out.find("metrics.h5 ends at step 6, but " + dir / "run/checkpoints/step_00000012 is of step 12"),
              std::string::npos)
        << r.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(6));

    for (const std::string newer : {"step_00000008", "step_00000012"})
        std::filesystem::rename(dir / ("run/checkpoints/" + newer), dir / newer);
    const CommandResult again = run_sinklab(small_run(dir, "run", 16, base + " --resume"));
    ASSERT_EQ(again.rc, 0) << again.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(16));
}

// Another run's metrics.h5 copied over the run's own would get the resumed rows and config after the other run's
// rows: refused before the file is touched, and the run's own file resumes.
TEST(Resume, AnotherRunsLogIsRefused) {
    const TempDir dir("resume_foreign");
    const std::string base = "--set run.threads=1 --set checkpoint.every=2";
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 4, base)).rc, 0);
    ASSERT_EQ(run_sinklab(small_run(dir, "other", 4, base + " --set run.seed=7")).rc, 0);
    std::filesystem::rename(dir / "run/metrics.h5", dir / "own.h5");
    std::filesystem::copy_file(dir / "other/metrics.h5", dir / "run/metrics.h5");
    const std::string foreign = read_file(dir / "run/metrics.h5"), config = read_file(dir / "run/config.yaml");
    const CommandResult r = run_sinklab(small_run(dir, "run", 6, base + " --resume"));
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_NE(r.out.find(fmt::format(
                  "sinklab: error: cannot resume: {} is the run log of another run (run_id {}) than the one {} "
                  "continues ({}); put that run's own metrics.h5 back, or start over with --overwrite",
                  dir / "run/metrics.h5", RunLogReader(dir / "other/metrics.h5").str_attr("run_id"),
                  dir / "run/checkpoints/step_00000004", RunLogReader(dir / "own.h5").str_attr("run_id"))),
              std::string::npos)
        << r.out;
    EXPECT_EQ(read_file(dir / "run/metrics.h5"), foreign);
    EXPECT_EQ(read_file(dir / "run/config.yaml"), config);  // the folder as it was (train.log records the refusal)
    // An eval's output in its place is named as such (it read as a log of other columns).
    ASSERT_EQ(run_sinklab("eval " + dir / "other --batches 1 --out " + dir / "ev.h5").rc, 0);
    std::filesystem::copy_file(dir / "ev.h5", dir / "run/metrics.h5",
                               std::filesystem::copy_options::overwrite_existing);
    const CommandResult eval_file = run_sinklab(small_run(dir, "run", 6, base + " --resume"));
    EXPECT_EQ(eval_file.rc, 1);
    EXPECT_NE(eval_file.out.find(fmt::format("sinklab: error: cannot resume: {} is the output of sinklab eval, not the "
                                             "run's log; put the run's own metrics.h5 back",
                                             dir / "run/metrics.h5")),
              std::string::npos)
        << eval_file.out;

    std::filesystem::rename(dir / "own.h5", dir / "run/metrics.h5");
    const CommandResult own = run_sinklab(small_run(dir, "run", 6, base + " --resume"));
    ASSERT_EQ(own.rc, 0) << own.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(6));
    // The resumed run's checkpoints carry the identity on.
    std::filesystem::copy_file(dir / "other/metrics.h5", dir / "run/metrics.h5",
                               std::filesystem::copy_options::overwrite_existing);
    const CommandResult again = run_sinklab(small_run(dir, "run", 8, base + " --resume"));
    EXPECT_EQ(again.rc, 1) << again.out;
    EXPECT_NE(again.out.find("is the run log of another run"), std::string::npos) << again.out;
}

// eval and export read a checkpoint that a training run may rotate away meanwhile (checkpoint.keep): the error then
// says so, instead of calling the checkpoint damaged and advising to start the run over. An error while the
// checkpoint is still there is the reader's own.
TEST(CheckpointRead, ACheckpointDeletedWhileReadIsSaidToBe) {
    const TempDir dir("ckpt_vanished");
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 2, "--set run.threads=1")).rc, 0);
    const std::string ckpt = dir / "run/checkpoints/step_00000002";
    const auto fails = [](const std::string& why) { return [why] { throw Error(why); }; };
    EXPECT_NO_THROW(reading_checkpoint(ckpt, [] {}));
    try {
        reading_checkpoint(ckpt, fails("the reader's own error"));
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "the reader's own error");
    }
    try {
        reading_checkpoint(ckpt, [&] {
            std::filesystem::remove_all(ckpt);
            fails("checkpoint has no state.json: it is damaged")();
        });
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("checkpoint " + ckpt + " was deleted while it was read"), std::string::npos) << msg;
        EXPECT_NE(msg.find("checkpoint.keep"), std::string::npos) << msg;
        EXPECT_NE(msg.find("(checkpoint has no state.json: it is damaged)"), std::string::npos) << msg;
    }
}

// The old run waits in .replaced after a start that failed on another rank before its first step, and while a start
// runs its first step: eval and export say which, and where the run is, instead of "holds no checkpoint".
TEST(CheckpointRead, ARunSetAsideByAStartIsNamed) {
    const TempDir dir("ckpt_aside");
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 2, "--set run.threads=1")).rc, 0);
    const std::string run = dir / "run", aside = dir / "run/.replaced";
    std::filesystem::create_directories(aside);
    for (const char* entry : {"checkpoints", "metrics.h5", "config.yaml", "train.log"})
        std::filesystem::rename(run + "/" + entry, aside + "/" + entry);
    write_file(run + "/config.yaml", "the new run's\n");
    const std::string failed = error_of([&] { checkpoint_to_read(run, "", false); });
    EXPECT_NE(failed.find(run + " holds no checkpoint of its own now: a start that replaced its run failed before its "
                                "first step (on another rank, say) and left the run in " + aside),
              std::string::npos)
        << failed;
    const FolderLock starting(run, "run folder", "train", "");
    const std::string running = error_of([&] { checkpoint_to_read(run, "", false); });
    EXPECT_NE(running.find("a start of the run (`sinklab train` (pid " + std::to_string(getpid())), std::string::npos)
        << running;
    EXPECT_NE(running.find("keeps the old run in " + aside + " until its first step has run"), std::string::npos)
        << running;
}

// A checkpoint that lost its state.json but is still there: a prune in progress only where a newer checkpoint exists
// (a run removes one only after writing the next); else it is damaged, and the reader's own error says so.
TEST(CheckpointRead, ADamagedNewestCheckpointIsNotSaidToBeDeleted) {
    const TempDir dir("ckpt_damaged");
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 4, "--set run.threads=1 --set checkpoint.every=2")).rc, 0);
    const auto damaged = [](const std::string& ckpt) {
        EXPECT_TRUE(std::filesystem::remove(ckpt + "/state.json")) << ckpt;
        try {
            reading_checkpoint(ckpt, [] { throw Error("the reader's own error"); });
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    EXPECT_EQ(damaged(dir / "run/checkpoints/step_00000004"), "the reader's own error");
    const std::string older = damaged(dir / "run/checkpoints/step_00000002");
    EXPECT_NE(older.find("was deleted while it was read"), std::string::npos) << older;
}

// A resume whose data.train shards changed since the checkpoint (prepared again, a shard added) is refused, naming
// both token counts: the data position counts windows of the old shards, and the run went on silently on other data.
// So is one whose shards hold as many tokens as before, but others (went on silently until the checksum); the same
// tokens cut into other shards, 4 bytes wide, continue.
TEST(Resume, ChangedTrainingShardsAreRefused) {
    const TempDir dir("resume_data");
    const std::string base = "--set run.threads=1 --set checkpoint.every=4";
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 4, base)).rc, 0);
    std::filesystem::copy_file(dir / "data/train_000000.bin", dir / "data/train_000001.bin");
    const CommandResult r = run_sinklab(small_run(dir, "run", 8, base + " --resume"));
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_NE(r.out.find("cannot resume from " + dir / "run/checkpoints/step_00000004: data.train '" +
                         dir / "data/train_*.bin' holds "),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("its shards changed since"), std::string::npos) << r.out;
    std::filesystem::remove(dir / "data/train_000001.bin");
    const std::string shard = dir / "data/train_000000.bin";
    std::vector<uint32_t> ids = test::read_llmc_shard(shard);
    std::reverse(ids.begin(), ids.end());  // the same tokens, in reverse order
    test::write_llmc_shard(shard, ids, true);
    const CommandResult swapped = run_sinklab(small_run(dir, "run", 8, base + " --resume"));
    EXPECT_EQ(swapped.rc, 1) << swapped.out;
    EXPECT_NE(swapped.out.find("holds as many tokens as the run trained on"), std::string::npos) << swapped.out;
    EXPECT_NE(swapped.out.find("but not the same ones"), std::string::npos) << swapped.out;
    std::reverse(ids.begin(), ids.end());
    const size_t cut = ids.size() / 3;
    test::write_llmc_shard(shard, std::vector<uint32_t>(ids.begin(), ids.begin() + cut), false);
    test::write_llmc_shard(dir / "data/train_000001.bin", std::vector<uint32_t>(ids.begin() + cut, ids.end()), false);
    const CommandResult again = run_sinklab(small_run(dir, "run", 8, base + " --resume"));
    ASSERT_EQ(again.rc, 0) << again.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(8));
}

// A resume whose data.val shards hold other tokens than the run validated on is refused: its validation curve would
// go on over other text. The checkpoint records their count and checksum.
TEST(Resume, ChangedValidationShardsAreRefused) {
    const TempDir dir("resume_val");
    const std::string base = "--set run.threads=1 --set checkpoint.every=4";
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 4, base)).rc, 0);
    const std::string shard = dir / "data/val_000000.bin", kept = read_file(shard);
    ASSERT_FALSE(fs::exists(dir / "data/val_000001.bin"));
    std::vector<uint32_t> ids = test::read_llmc_shard(shard);
    const nlohmann::json state = nlohmann::json::parse(read_file(dir / "run/checkpoints/step_00000004/state.json"));
    EXPECT_EQ(state.at("val_data").at("tokens").get<size_t>(), ids.size());
    std::reverse(ids.begin(), ids.end());  // the same tokens, in reverse order
    test::write_llmc_shard(shard, ids, true);
    const CommandResult swapped = run_sinklab(small_run(dir, "run", 8, base + " --resume"));
    EXPECT_EQ(swapped.rc, 1) << swapped.out;
    EXPECT_NE(swapped.out.find("data.val '" + dir / "data/val_*.bin' holds as many tokens as the run validated on"),
              std::string::npos)
        << swapped.out;
    EXPECT_NE(swapped.out.find("but not the same ones"), std::string::npos) << swapped.out;
    write_file(shard, kept);
    // No validation from here on: its curve would stop at step 4 while training goes on. A run stopped before it
    // validated (val_every 0: only at the end) may go on without.
    const CommandResult off = run_sinklab(small_run(dir, "run", 8, base + " --resume --set data.val="));
    EXPECT_EQ(off.rc, 1) << off.out;
    EXPECT_NE(off.out.find("data.val is empty now, but the run validated on '" + dir / "data/val_*.bin' up to step 4"),
              std::string::npos)
        << off.out;
    const std::string quiet = base + " --set metrics.val_every=0";
    ASSERT_EQ(run_sinklab(small_run(dir, "quiet", 8, quiet), "SINKLAB_FAULT_INJECT=signal@4").rc, 0);
    const CommandResult unvalidated = run_sinklab(small_run(dir, "quiet", 8, quiet + " --resume --set data.val="));
    EXPECT_EQ(unvalidated.rc, 0) << unvalidated.out;
    const CommandResult again = run_sinklab(small_run(dir, "run", 8, base + " --resume"));
    ASSERT_EQ(again.rc, 0) << again.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(8));
}

// Checkpoints of an older sinklab resume on the same data paths: one whose data.train checksum is of the scheme
// before (s1) and that recorded nothing of data.val.
TEST(Resume, OlderCheckpointsContinueOnTheSameData) {
    const TempDir dir("resume_older");
    const std::string base = "--set run.threads=1 --set checkpoint.every=4";
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 4, base)).rc, 0);
    const std::string state = dir / "run/checkpoints/step_00000004/state.json";
    nlohmann::ordered_json old = nlohmann::ordered_json::parse(read_file(state));
    ASSERT_TRUE(old.contains("val_data"));
    old["train_data"]["checksum"] = "s1:0123456789abcdef";
    old.erase("val_data");
    old.erase("state_checksum");
    write_file(state, old.dump(2));
    const CommandResult r = run_sinklab(small_run(dir, "run", 8, base + " --resume"));
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(8));
}

// The data folder moved: the same tokens under another path continue (their count and checksum say so; before, any
// change of data.train or data.val was refused). A checkpoint without the checksum, or with one of another scheme,
// cannot show it: refused.
TEST(Resume, MovedDataContinues) {
    const TempDir dir("resume_moved");
    const std::string base = "--set run.threads=1 --set checkpoint.every=4";
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 4, base)).rc, 0);
    std::filesystem::rename(dir / "data", dir / "moved");
    const std::string moved = base + " --resume --set data.train=" + dir / "moved/train_*.bin" +
                              " --set data.val=" + dir / "moved/val_*.bin";
    const std::string state = dir / "run/checkpoints/step_00000004/state.json", kept = read_file(state);
    for (const char* checksum : {"", "s1:0123456789abcdef"}) {  // none; one of the scheme before
        nlohmann::ordered_json old = nlohmann::ordered_json::parse(kept);
        old.erase("state_checksum");
        if (*checksum)
            old["train_data"]["checksum"] = checksum;
        else
            old["train_data"].erase("checksum");
        write_file(state, old.dump(2));
        const CommandResult refused = run_sinklab(small_run(dir, "run", 8, moved));
        EXPECT_EQ(refused.rc, 1) << refused.out;
        EXPECT_NE(
            refused.out.find("data.train changed ('" + dir / "data/train_*.bin' -> '" + dir / "moved/train_*.bin'"),
            std::string::npos)
            << refused.out;
    }
    write_file(state, kept);
    const CommandResult r = run_sinklab(small_run(dir, "run", 8, moved));
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(8));
    EXPECT_NE(read_file(dir / "run/train.log").find("data.train"), std::string::npos) << "the change is logged";
}

TEST(CheckpointWrite, UnwritableOutDirIsNamedAtStart) {
    const TempDir dir("ckpt_unwritable");
    write_file(dir / "a_file", "not a folder");
    const CommandResult r = run_sinklab(small_run(dir, "run", 3, "--set run.out_dir=" + dir / "a_file/runs"));
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find(dir / "a_file/runs"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("step "), std::string::npos) << "nothing may train: " << r.out;
}

TEST(CheckpointWrite, ResumeWithoutCheckpointStartsOver) {
    const TempDir dir("ckpt_none");
    const CommandResult first = run_sinklab(small_run(dir, "run", 4, "--set run.threads=1 --resume"));
    ASSERT_EQ(first.rc, 0) << first.out;
    EXPECT_NE(first.out.find("starting at step 0"), std::string::npos) << first.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step"), steps_1_to(4));
    const CommandResult done = run_sinklab(small_run(dir, "run", 4, "--set run.threads=1 --resume"));
    ASSERT_EQ(done.rc, 0) << done.out;
    EXPECT_NE(done.out.find("complete at step 4"), std::string::npos) << done.out;
}

}  // namespace
}  // namespace sinklab::test
