// End-to-end training through the CLI: a tiny model learns a synthetic stream, runs are reproducible,
// and metrics.h5 holds one row per logged step.
#include <fmt/format.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/file.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <thread>

#include <unistd.h>

#include <fmt/format.h>

#include "core/check.h"
#include "core/folder_lock.h"
#include "data/data_test_util.h"
#include "train/safetensors.h"
#include "train/train_util.h"

namespace sinklab::test {
namespace {

TEST(Training, TinyModelLearnsTheSyntheticStream) {
    const TempDir dir("train_learns");
    const CommandResult r =
        run_sinklab(small_run(dir, "learn", 300,
                              "--set train.micro_batch=16 --set train.min_lr=1e-3 --set metrics.val_every=100"));
    ASSERT_EQ(r.rc, 0) << r.out;
    const auto loss = column(dir / "learn/metrics.h5", "train", "loss");
    ASSERT_EQ(loss.size(), 300u);
    const double first = std::accumulate(loss.begin(), loss.begin() + 5, 0.0) / 5;
    const double last = std::accumulate(loss.end() - 10, loss.end(), 0.0) / 10;
    // ln(264) = 5.58 at the start; the unigram entropy of the stream's 40 symbols is ln 40 = 3.69 and its
    // entropy rate 0.9, so getting below 3 means the model has learned context, not just symbol counts.
    EXPECT_GT(first, 5.0);
    EXPECT_LT(last, 3.0) << "first " << first << " last " << last;
    const auto val = column(dir / "learn/metrics.h5", "val", "loss");
    ASSERT_GE(val.size(), 2u);
    EXPECT_LT(val.back(), val.front() - 2.0);
}

TEST(Training, SameSeedSameCurveDifferentSeedDifferentCurve) {
    const TempDir dir("train_seeds");
    ASSERT_EQ(run_sinklab(small_run(dir, "a", 12)).rc, 0);
    ASSERT_EQ(run_sinklab(small_run(dir, "b", 12)).rc, 0);
    ASSERT_EQ(run_sinklab(small_run(dir, "c", 12, "--set run.seed=7")).rc, 0);
    const auto a = column(dir / "a/metrics.h5", "train", "loss");
    const auto b = column(dir / "b/metrics.h5", "train", "loss");
    const auto c = column(dir / "c/metrics.h5", "train", "loss");
    ASSERT_EQ(a.size(), 12u);
    EXPECT_EQ(a, b);  // bit for bit
    EXPECT_NE(a, c);
}

TEST(Training, RunLogHasTheSchemaAndOneRowPerStep) {
    const TempDir dir("train_schema");
    ASSERT_EQ(run_sinklab(small_run(dir, "s", 7, "--set metrics.heavy_every=3 --set metrics.positions=[0,5]")).rc, 0);
    const std::string h5 = dir / "s/metrics.h5";
    RunLogReader rd(h5);
    for (const char* col : {"step", "tokens", "loss", "lr", "grad_norm", "step_time_s", "tokens_per_s", "mfu"}) {
        const Dataset d = rd.read("train", col);
        EXPECT_EQ(d.shape, std::vector<int64_t>{7}) << col;
    }
    EXPECT_EQ(rd.read("train", "step").data, (std::vector<double>{1, 2, 3, 4, 5, 6, 7}));
    EXPECT_EQ(rd.read("train", "tokens").data.back(), 7.0 * 8 * 64);
    // Validation at step 0 and at the end.
    EXPECT_EQ(rd.read("val", "step").data, (std::vector<double>{0, 7}));
    // Sink metrics every step (metrics.every = 1), heavy ones every 3 and at the last step: L = 2 blocks of H = 4
    // heads, P = 2 tracked positions, Tp = 64 positions.
    const std::map<std::string, std::vector<int64_t>> sink = {
        {"step", {7}},      {"attn_mass", {7, 2, 4, 2}}, {"sink_rate", {7, 2}},         {"wo_input_std", {7, 2, 64}},
        {"attn_out_std", {7, 2, 64}},
        {"dominance", {7, 2}}, {"massive", {7, 2}},      {"token0_norm_ratio", {7, 2}}, {"ffn_max_act", {7, 2, 2}},
        {"ffn_top_channel", {7, 2}}};
    for (const auto& [col, shape] : sink) EXPECT_EQ(rd.read("sink", col).shape, shape) << col;
    EXPECT_EQ(rd.read("heavy", "step").data, (std::vector<double>{3, 6, 7}));
    EXPECT_EQ(rd.read("heavy", "effective_rank").shape, (std::vector<int64_t>{3, 2}));
    EXPECT_EQ(rd.read("heavy", "attn_map").shape, (std::vector<int64_t>{3, 2, 64, 64}));
    // Values that mean something: masses are probabilities, a softmax row of the map sums to 1, the effective
    // rank of a [64, 64] hidden state lies in [1, 64].
    for (double m : rd.read("sink", "attn_mass").data) EXPECT_TRUE(m > 0 && m <= 1) << m;
    const auto map = rd.read("heavy", "attn_map").data;
    for (int i : {0, 10, 63}) {
        double row = 0;
        for (int j = 0; j < 64; j++) row += map[size_t(i) * 64 + j];
        EXPECT_NEAR(row, 1.0, 1e-4) << i;
    }
    for (double r : rd.read("heavy", "effective_rank").data) EXPECT_TRUE(r >= 1 && r <= 64) << r;
    for (const char* col : {"ffn_gate_norm", "ffn_up_norm", "ffn_top_unit"})
        EXPECT_EQ(rd.read("heavy", col).shape, (std::vector<int64_t>{3, 2, 2})) << col;
    EXPECT_EQ(rd.str_attr("sink_positions"), "[0, 5]");
    for (const char* attr : {"config_yaml", "sinklab_version", "git_rev", "backend", "created", "run_id"})
        EXPECT_TRUE(rd.has_attr(attr)) << attr;
    // The data's checksums, those the final checkpoint records.
    const nlohmann::json state = nlohmann::json::parse(read_file(dir / "s/checkpoints/step_00000007/state.json"));
    EXPECT_EQ(rd.str_attr("data_train_checksum"), state.at("train_data").at("checksum").get<std::string>());
    EXPECT_EQ(rd.str_attr("data_val_checksum"), state.at("val_data").at("checksum").get<std::string>());
    EXPECT_TRUE(rd.str_attr("data_train_checksum").starts_with("s2:")) << rd.str_attr("data_train_checksum");
    EXPECT_NE(rd.str_attr("data_train_checksum"), rd.str_attr("data_val_checksum"));
    for (const char* attr : {"world_size", "n_params", "flops_per_token"}) EXPECT_TRUE(rd.has_attr(attr)) << attr;
    EXPECT_TRUE(std::filesystem::exists(dir / "s/config.yaml"));
    EXPECT_TRUE(std::filesystem::exists(dir / "s/train.log"));

    // The same file through h5py, as a researcher reads it.
    const std::string py = fmt::format(
        "/usr/bin/python3 -c \"import h5py; f = h5py.File('{}', 'r'); assert f['train/loss'].shape == (7,), "
        "f['train/loss'].shape; assert f['val/loss'].shape == (2,); print('ok', f.attrs['backend'])\"",
        h5);
    const CommandResult r = run_command(py);
    if (r.out.find("No module named 'h5py'") != std::string::npos)
        GTEST_SKIP() << "skipped: /usr/bin/python3 has no h5py";
    EXPECT_EQ(r.rc, 0) << r.out;
}

// The super-neuron fields of /heavy against the row norms of W_gate and W_up computed here from a checkpoint (fp32
// weights; the CPU backend trains in fp32): the largest, the median (mean of the two middle ones of an even count)
// and the unit of the largest, per layer. Step 4's metrics describe the model of step 4's forward pass, whose
// weights are those after step 3: its checkpoint's.
TEST(Training, FfnRowNormsAreThoseOfTheCheckpointsWeights) {
    const TempDir dir("train_row_norms");
    ASSERT_EQ(run_sinklab(small_run(dir, "s", 4,
                                    "--set metrics.heavy_every=4 --set checkpoint.every=1 --set checkpoint.keep=4"))
                  .rc,
              0);
    RunLogReader rd(dir / "s/metrics.h5");
    ASSERT_EQ(rd.read("heavy", "step").data, std::vector<double>{4});
    const std::vector<double> gate = rd.read("heavy", "ffn_gate_norm").data, up = rd.read("heavy", "ffn_up_norm").data,
                              unit = rd.read("heavy", "ffn_top_unit").data;  // [1, L, 2] each
    const SafetensorsFile weights(dir / "s/checkpoints/step_00000003/model.safetensors");
    const int64_t L = 2, F = 192, C = 64;  // small_run's model
    for (int64_t l = 0; l < L; l++) {
        const StoredTensor& w13 = weights.get(fmt::format("layers.{}.w13", l), "F32", {2 * F, C});
        for (int64_t half = 0; half < 2; half++) {
            std::vector<double> norms;
            for (int64_t j = 0; j < F; j++) {
                double sq = 0;
                for (int64_t c = 0; c < C; c++) {
                    float w;
                    std::memcpy(&w, w13.data + ((half * F + j) * C + c) * 4, 4);
                    sq += double(w) * w;
                }
                norms.push_back(std::sqrt(sq));
            }
            const int64_t top = std::max_element(norms.begin(), norms.end()) - norms.begin();
            const double largest = norms[size_t(top)];
            std::sort(norms.begin(), norms.end());
            const double median = (norms[F / 2 - 1] + norms[F / 2]) / 2;
            const std::vector<double>& logged = half == 0 ? gate : up;
            EXPECT_NEAR(logged[size_t(2 * l)], largest, 1e-6 * largest) << "layer " << l << " half " << half;
            EXPECT_NEAR(logged[size_t(2 * l + 1)], median, 1e-6 * median) << "layer " << l << " half " << half;
            EXPECT_EQ(unit[size_t(2 * l + half)], double(top)) << "layer " << l << " half " << half;
        }
    }
    // eval.h5 of that checkpoint holds the same values.
    ASSERT_EQ(run_sinklab(fmt::format("eval {} --batches 1 --checkpoint {}", dir / "s",
                                      dir / "s/checkpoints/step_00000003"))
                  .rc,
              0);
    RunLogReader ev(dir / "s/eval.h5");
    EXPECT_EQ(ev.read("eval", "ffn_top_unit").data, unit);
    EXPECT_EQ(ev.read("eval", "ffn_gate_norm").data, gate);
}

TEST(Training, ExistingRunIsNotOverwritten) {
    const TempDir dir("train_exists");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 3)).rc, 0);
    const CommandResult again = run_sinklab(small_run(dir, "x", 3));
    EXPECT_NE(again.rc, 0);
    EXPECT_NE(again.out.find("--resume"), std::string::npos) << again.out;
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "loss").size(), 3u);  // nothing lost
    EXPECT_EQ(run_sinklab(small_run(dir, "x", 4, "--overwrite")).rc, 0);
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "loss").size(), 4u);
}

// Checkpoints whose metrics.h5 is gone are still a run: a start among them (which pruned the old checkpoints and
// then collided with one of its steps) is refused, and so is --resume, with the same advice; --overwrite replaces it.
TEST(Training, CheckpointsWithoutTheirRunLogAreARun) {
    const TempDir dir("train_no_log");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 4, "--set checkpoint.every=2 --set checkpoint.keep=3")).rc, 0);
    std::filesystem::rename(dir / "x/metrics.h5", dir / "elsewhere.h5");
    const auto checkpoints = [&] {
        std::vector<std::string> names;
        for (const auto& e : std::filesystem::directory_iterator(dir / "x/checkpoints"))
            names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    };
    const std::vector<std::string> before = checkpoints();
    ASSERT_EQ(before, (std::vector<std::string>{"step_00000002", "step_00000004"}));
    const std::string config_before = read_file(dir / "x/config.yaml");
    for (const char* flags : {"", "--resume"}) {
        const CommandResult r = run_sinklab(small_run(dir, "x", 6, std::string(flags) + " --set checkpoint.every=3"));
        EXPECT_NE(r.rc, 0) << flags;
        EXPECT_EQ(r.out, fmt::format("sinklab: error: run folder {} holds checkpoints (the newest {}) but no "
                                     "metrics.h5, the run log they continue; put metrics.h5 back and continue with "
                                     "--resume, or replace the run with --overwrite (which deletes the checkpoints)\n",
                                     dir / "x", dir / "x/checkpoints/step_00000004"))
            << flags;
        EXPECT_EQ(checkpoints(), before) << flags;
        EXPECT_EQ(read_file(dir / "x/config.yaml"), config_before) << flags;
    }
    std::filesystem::rename(dir / "elsewhere.h5", dir / "x/metrics.h5");
    const CommandResult resumed = run_sinklab(small_run(dir, "x", 6, "--resume --set checkpoint.every=2"));
    EXPECT_EQ(resumed.rc, 0) << resumed.out;
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "step").size(), 6u);
    std::filesystem::remove(dir / "x/metrics.h5");
    EXPECT_EQ(run_sinklab(small_run(dir, "x", 2, "--overwrite")).rc, 0);
    EXPECT_EQ(checkpoints(), std::vector<std::string>{"step_00000002"});
}

// A run longer than its data: 3000 tokens make 3000 / 64 - 1 = 45 windows of 64, 5 batches of 8 per epoch, so 12
// steps of one batch read 2.4 epochs, the second from step 6 on; a run of 5 steps reads one and gets no note.
// sinklab info says so before the run.
TEST(Training, TheLogNotesARunThatRepeatsItsData) {
    const TempDir dir("train_epochs");
    std::vector<uint32_t> tokens(3000);
    for (size_t i = 0; i < tokens.size(); i++) tokens[i] = uint32_t(i * 7 % 256);
    write_llmc_shard(dir / "small_000000.bin", tokens, true);
    const std::string data = fmt::format("--set data.train={}/small_*.bin --set data.val= --set data.missing=error",
                                         dir.path());
    ASSERT_EQ(run_sinklab(small_run(dir, "long", 12, data)).rc, 0);
    const std::string log = read_file(dir / "long/train.log");
    EXPECT_NE(log.find("note: data.train holds 3000 tokens: 5 batches of 8 windows of 64 tokens per epoch, so the "
                       "run's 12 steps read it 2.4 times, and from step 6 on it trains on tokens it has seen"),
              std::string::npos)
        << log;
    ASSERT_EQ(run_sinklab(small_run(dir, "short", 5, data)).rc, 0);
    EXPECT_EQ(read_file(dir / "short/train.log").find("data.train holds"), std::string::npos);
    // A resume goes on from where the loader stands: after 3 steps, 2 batches are left of the first epoch.
    ASSERT_EQ(run_sinklab(small_run(dir, "resumed", 3, data)).rc, 0);
    ASSERT_EQ(run_sinklab(small_run(dir, "resumed", 12, data + " --resume")).rc, 0);
    const std::string resumed = read_file(dir / "resumed/train.log");
    EXPECT_NE(resumed.find("so the run's 12 steps read it 2.4 times, and from step 6 on"), std::string::npos)
        << resumed;
    // sinklab info says the same before the run, and on 2 ranks 2 batches of 16 make an epoch: 6 of them.
    const auto info_says = [&](int steps, const std::string& more, const std::string& line) {
        const CommandResult r = run_sinklab("info" + small_run(dir, "x", steps, data + more).substr(5));
        EXPECT_EQ(r.rc, 0) << r.out;
        EXPECT_NE(r.out.find("\ndata.train      " + line + "\n"), std::string::npos) << r.out;
    };
    info_says(12, "", "3000 tokens in 1 shard: the run's 12 steps read 2.4 epochs, repeating tokens from step 6 on");
    info_says(5, "", "3000 tokens in 1 shard: the run's 5 steps read 1 epoch");
    info_says(12, " --ranks 2", "3000 tokens in 1 shard: the run's 12 steps read 6 epochs, repeating tokens from "
                                "step 3 on");
    info_says(12, " --set data.train=nothere/x_*.bin", "'nothere/x_*.bin' matches no shard yet (data.missing: error)");
}

// A run asks for cuDNN's attention where there is none: the CPU backend computes the same attention and the run's
// log says so, so that its config.yaml (attention.impl: cudnn) does not pass for what ran. Settings without effect
// (a sigmoid bias without sigmoid attention, stochastic rounding without bf16 weights) are noted too.
TEST(Training, TheLogSaysWhatRunsForACudaAttentionImplOnTheCpu) {
    const TempDir dir("train_impl");
    ASSERT_EQ(run_sinklab(small_run(dir, "cudnn", 2,
                                    "--set backend=cpu --set attention.impl=cudnn --set attention.sigmoid_bias=-2 "
                                    "--set precision.rounding=stochastic"))
                  .rc,
              0);
    const std::string log = read_file(dir / "cudnn/train.log");
    EXPECT_NE(log.find("note: attention.sigmoid_bias = -2 has no effect"), std::string::npos) << log;
    EXPECT_NE(log.find("note: precision.rounding = stochastic has no effect: this run computes in f32"),
              std::string::npos)
        << log;
    ASSERT_EQ(run_sinklab(small_run(dir, "ours", 2, "--set backend=cpu")).rc, 0);
    const std::string note = "attention.impl: cudnn is a CUDA implementation; the CPU backend computes the same "
                             "attention with its own kernels";
    EXPECT_NE(log.find(note), std::string::npos) << log;
    EXPECT_EQ(read_file(dir / "ours/train.log").find("attention.impl"), std::string::npos)
        << read_file(dir / "ours/train.log");
    EXPECT_EQ(read_file(dir / "ours/train.log").find("note:"), std::string::npos) << read_file(dir / "ours/train.log");
}

TEST(Training, RunNameThatIsNoPlainFolderNameIsRefused) {
    const TempDir dir("train_run_name");
    write_file(dir / "precious/metrics.h5", "another run");
    const std::string escaped = dir.path() + "-escaped";
    // "." once trained into run.out_dir itself, and its --overwrite then removed every other run there.
    for (const std::string& extra : {std::string("--set run.name=."), std::string("--set run.name=. --overwrite"),
                                     "--set run.name=../" + std::filesystem::path(escaped).filename().string()}) {
        const CommandResult r = run_sinklab(small_run(dir, "x", 3, extra));
        EXPECT_NE(r.rc, 0) << extra;
        EXPECT_NE(r.out.find("run.name"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("not a usable folder name"), std::string::npos) << r.out;
    }
    EXPECT_EQ(read_file(dir / "precious/metrics.h5"), "another run");
    EXPECT_FALSE(std::filesystem::exists(dir / "metrics.h5"));
    EXPECT_FALSE(std::filesystem::exists(escaped));
}

TEST(Training, OverwriteRemovesOnlyWhatSinklabWrote) {
    const TempDir dir("train_overwrite");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 3)).rc, 0);
    // An eval of the old model under its own name is the old run's too, so it goes with it.
    const CommandResult eval = run_sinklab(fmt::format("eval {} --batches 1 --out {}", dir / "x", dir / "x/iso.h5"));
    ASSERT_EQ(eval.rc, 0) << eval.out;
    write_file(dir / "x/notes.txt", "the user's");
    write_file(dir / "x/mine.h5", "the user's, not an eval");
    write_file(dir / "x/other-run/metrics.h5", "another run");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 4, "--overwrite")).rc, 0);
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "loss").size(), 4u);
    EXPECT_FALSE(std::filesystem::exists(dir / "x/checkpoints/step_00000003"));
    EXPECT_FALSE(std::filesystem::exists(dir / "x/iso.h5"));
    EXPECT_EQ(read_file(dir / "x/notes.txt"), "the user's");
    EXPECT_EQ(read_file(dir / "x/mine.h5"), "the user's, not an eval");
    EXPECT_EQ(read_file(dir / "x/other-run/metrics.h5"), "another run");
}

TEST(Training, AStartThatFailsLosesAndLeavesNothing) {
    const TempDir dir("train_failed_start");
    const std::string no_data = "--set data.missing=error --set data.train=" + dir / "nothere/*.bin";
    ASSERT_EQ(run_sinklab(small_run(dir, "keep", 3)).rc, 0);
    const std::string log = read_file(dir / "keep/train.log");
    // The old run goes only once the new one could start.
    const CommandResult over = run_sinklab(small_run(dir, "keep", 3, "--overwrite " + no_data));
    EXPECT_NE(over.rc, 0);
    EXPECT_NE(over.out.find("nothere/*.bin"), std::string::npos) << over.out;
    EXPECT_EQ(column(dir / "keep/metrics.h5", "train", "loss").size(), 3u);
    EXPECT_TRUE(std::filesystem::exists(dir / "keep/checkpoints/step_00000003"));
    EXPECT_EQ(read_file(dir / "keep/train.log"), log);
    // A new run that cannot start leaves no folder behind.
    EXPECT_NE(run_sinklab(small_run(dir, "new", 3, no_data)).rc, 0);
    EXPECT_FALSE(std::filesystem::exists(dir / "new"));
}

// A run started in a sweep's suite folder would hide the suite's runs from compare.
TEST(Training, ASuiteFolderIsNoRunFolder) {
    const TempDir dir("train_in_suite");
    write_file(dir / "s/sweep.yaml", "variants: [b]\n");
    const CommandResult r = run_sinklab(small_run(dir, "s", 2));
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("run folder " + dir / "s is a sweep's suite folder"), std::string::npos) << r.out;
    EXPECT_FALSE(std::filesystem::exists(dir / "s/metrics.h5"));
}

// A file named checkpoints where the run's checkpoints go is refused at the start: it failed only at the first
// checkpoint, after training to it, and a resume took the run for one without checkpoints and started over.
TEST(Training, ACheckpointsFileIsRefusedAtTheStart) {
    const TempDir dir("train_checkpoints_file");
    write_file(dir / "x/checkpoints", "not a folder");
    for (const std::string extra : {"", " --resume"}) {
        const CommandResult r = run_sinklab(small_run(dir, "x", 2, "--set run.threads=1" + extra));
        EXPECT_NE(r.rc, 0);
        EXPECT_NE(r.out.find("run folder " + dir / "x: its entry 'checkpoints' is not a folder"), std::string::npos)
            << r.out;
        EXPECT_EQ(r.out.find("step "), std::string::npos) << extra << ": nothing may train: " << r.out;
    }
}

// Shards whose prepare manifest names another tokenizer than data.tokenizer would train on ids that mean other
// text: refused before the run starts, naming the manifest, even when model.vocab_size holds the ids.
TEST(Training, ShardsMadeWithAnotherTokenizerAreRefused) {
    const TempDir dir("train_other_tokenizer");
    std::string text;
    for (int i = 0; i < 400; ++i) text += fmt::format("Document {} says {} things.\n<|endoftext|>\n", i, i * 7919);
    write_file(dir / "in.txt", text);
    const CommandResult prepared = run_sinklab(fmt::format(
        "prepare {} --out {} --tokenizer bytes --val-fraction 0.2 --doc-separator '<|endoftext|>' -q", dir / "in.txt",
        dir / "data"));
    ASSERT_EQ(prepared.rc, 0) << prepared.out;
    const CommandResult other =
        run_sinklab(small_run(dir, "gpt2", 2, "--set data.tokenizer=gpt2 --set model.vocab_size=50304"));
    EXPECT_NE(other.rc, 0);
    EXPECT_NE(other.out.find("made with tokenizer bytes (" + dir / "data/manifest.json"), std::string::npos)
        << other.out;
    EXPECT_NE(other.out.find("data.tokenizer is 'gpt2'"), std::string::npos) << other.out;
    EXPECT_FALSE(std::filesystem::exists(dir / "gpt2"));
    const CommandResult same = run_sinklab(small_run(dir, "bytes", 2));
    EXPECT_EQ(same.rc, 0) << same.out;
}

// Every entry under `root`, relative path -> size and a hash of its bytes ("folder" for a folder): equal for a
// folder left exactly as it was, and short to print when not.
std::map<std::string, std::string> entries_under(const std::string& root) {
    std::map<std::string, std::string> found;
    for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
        const std::string bytes = e.is_directory() ? "" : read_file(e.path().string());
        found[std::filesystem::relative(e.path(), root).string()] =
            e.is_directory() ? "folder"
                             : fmt::format("{} bytes, hash {:x}", bytes.size(), std::hash<std::string>{}(bytes));
    }
    return found;
}

std::vector<std::string> hidden_entries(const std::string& folder) {
    std::vector<std::string> hidden;
    for (const auto& e : std::filesystem::directory_iterator(folder))
        if (e.path().filename().string().starts_with('.')) hidden.push_back(e.path().filename().string());
    return hidden;
}

// --overwrite sets the old run aside and deletes it only once the new run has its files: a start that fails after
// that (the disk full at metrics.h5, say) puts it back, byte for byte.
TEST(Training, OverwriteThatFailsOnceTheFolderIsWrittenKeepsTheOldRun) {
    const TempDir dir("train_overwrite_fails");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 3)).rc, 0);
    write_file(dir / "x/notes.txt", "the user's");
    const auto before = entries_under(dir / "x");
    ASSERT_EQ(before.count("checkpoints/step_00000003"), 1u);
    ASSERT_EQ(before.count("metrics.h5"), 1u);

    // At the end of setup: the new config.yaml, train.log and metrics.h5 are written.
    const CommandResult late = run_sinklab(small_run(dir, "x", 5, "--overwrite"), "SINKLAB_FAULT_INJECT=setup@0");
    EXPECT_NE(late.rc, 0);
    EXPECT_NE(late.out.find("injected failure at the end of setup"), std::string::npos) << late.out;
    EXPECT_EQ(entries_under(dir / "x"), before);

    // In the first step, before its passes have run on every rank (too little memory for the backend's first use of
    // its scratch, a head dimension a kernel refuses, ...).
    const CommandResult first = run_sinklab(small_run(dir, "x", 5, "--overwrite"), "SINKLAB_FAULT_INJECT=throw@1");
    EXPECT_NE(first.rc, 0);
    EXPECT_NE(first.out.find("injected"), std::string::npos) << first.out;
    EXPECT_EQ(entries_under(dir / "x"), before);

    // A real failure: the run log cannot be made (a folder holds its temporary name), once config.yaml and train.log
    // are written.
    write_file(dir / "x/metrics.h5.partial/blocker", "");
    const auto blocked = entries_under(dir / "x");
    const CommandResult no_log = run_sinklab(small_run(dir, "x", 5, "--overwrite"));
    EXPECT_NE(no_log.rc, 0);
    EXPECT_NE(no_log.out.find("cannot create run log"), std::string::npos) << no_log.out;
    EXPECT_EQ(entries_under(dir / "x"), blocked);
    std::filesystem::remove_all(dir / "x/metrics.h5.partial");

    // One that starts replaces the run and leaves nothing aside.
    const CommandResult over = run_sinklab(small_run(dir, "x", 4, "--overwrite"));
    ASSERT_EQ(over.rc, 0) << over.out;
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "loss").size(), 4u);
    EXPECT_FALSE(std::filesystem::exists(dir / "x/checkpoints/step_00000003"));
    EXPECT_TRUE(std::filesystem::exists(dir / "x/checkpoints/step_00000004"));
    EXPECT_EQ(read_file(dir / "x/notes.txt"), "the user's");
    EXPECT_EQ(hidden_entries(dir / "x"), std::vector<std::string>{});

    // A new run whose setup fails leaves no folder behind.
    EXPECT_NE(run_sinklab(small_run(dir, "new", 3), "SINKLAB_FAULT_INJECT=setup@0").rc, 0);
    EXPECT_FALSE(std::filesystem::exists(dir / "new"));
}

// A resume replaces config.yaml and metrics.h5 (cut back to the checkpoint's step): one that fails before it stands
// leaves both as they were, byte for byte, the rows logged past the checkpoint included, and a restart's rows too;
// one killed meanwhile has its files put back by the next start. train.log keeps the failures' lines.
TEST(Training, AResumeThatFailsLeavesTheRunsFilesAsTheyWere) {
    const TempDir dir("train_resume_fails");
    const std::string opts = "--set checkpoint.every=3 --set metrics.flush_every=1";
    const CommandResult killed = run_sinklab(small_run(dir, "x", 6, opts), "SINKLAB_FAULT_INJECT=kill@5");
    ASSERT_NE(killed.rc, 0);
    ASSERT_EQ(column(dir / "x/metrics.h5", "train", "step"), (std::vector<double>{1, 2, 3, 4}));  // checkpoint at 3
    auto files = [&] {
        std::map<std::string, std::string> all = entries_under(dir / "x");
        all.erase("train.log");
        return all;
    };
    const auto before = files();
    const std::string resume = small_run(dir, "x", 8, opts + " --resume");
    for (const char* fault : {"setup@0", "throw@4"}) {
        const CommandResult failed = run_sinklab(resume, std::string("SINKLAB_FAULT_INJECT=") + fault);
        EXPECT_NE(failed.rc, 0) << fault;
        EXPECT_NE(failed.out.find("injected"), std::string::npos) << failed.out;
        EXPECT_EQ(files(), before) << fault;
        EXPECT_EQ(hidden_entries(dir / "x"), std::vector<std::string>{}) << fault;
    }

    // Killed before its first step: the next start puts the files back, then resumes from them.
    ASSERT_NE(run_sinklab(resume, "SINKLAB_FAULT_INJECT=kill@4").rc, 0);
    EXPECT_NE(read_file(dir / "x/config.yaml"), read_file(dir / "x/.replaced/config.yaml"));
    const CommandResult resumed = run_sinklab(resume);
    ASSERT_EQ(resumed.rc, 0) << resumed.out;
    EXPECT_NE(read_file(dir / "x/train.log").find("put back the run's files that an unfinished start"),
              std::string::npos);
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "step"), (std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_EQ(hidden_entries(dir / "x"), std::vector<std::string>{});

    // A resume without a checkpoint starts over, its old rows kept as metrics.restart1.h5; failing, it keeps them as
    // metrics.h5 and leaves no second copy.
    ASSERT_NE(run_sinklab(small_run(dir, "y", 6, opts), "SINKLAB_FAULT_INJECT=kill@2").rc, 0);
    const std::string rows = read_file(dir / "y/metrics.h5");
    EXPECT_NE(run_sinklab(small_run(dir, "y", 6, opts + " --resume"), "SINKLAB_FAULT_INJECT=setup@0").rc, 0);
    EXPECT_EQ(read_file(dir / "y/metrics.h5"), rows);
    EXPECT_FALSE(std::filesystem::exists(dir / "y/metrics.restart1.h5"));
}

// Where the file system makes no hard links (link() fails here through an LD_PRELOAD stand-in), the resume keeps
// whole copies instead, made under a temporary name: a copy cut short (a file-size limit of half of metrics.h5)
// fails the start and leaves metrics.h5 as it was, where a half copy had been put back over it.
TEST(Training, AResumeWithoutHardLinksKeepsWholeCopies) {
    const TempDir dir("train_resume_copies");
    write_file(dir / "nolink.c", "#include <errno.h>\n"
                                 "int link(const char* a, const char* b) {\n"
                                 "    (void)a; (void)b; errno = EPERM; return -1; }\n"
                                 "int linkat(int a, const char* b, int c, const char* d, int e) {\n"
                                 "    (void)a; (void)b; (void)c; (void)d; (void)e; errno = EPERM; return -1; }\n");
    const CommandResult cc = run_command(fmt::format("cc -shared -fPIC -o {} {}", dir / "nolink.so", dir / "nolink.c"));
    if (cc.rc != 0) GTEST_SKIP() << "no C compiler for the link() stand-in: " << cc.out;
    const std::string opts = "--set checkpoint.every=3 --set metrics.flush_every=1";
    ASSERT_NE(run_sinklab(small_run(dir, "x", 6, opts), "SINKLAB_FAULT_INJECT=kill@5").rc, 0);
    const std::string rows = read_file(dir / "x/metrics.h5"), config = read_file(dir / "x/config.yaml");
    const std::string resume = fmt::format("LD_PRELOAD={} {} {}", dir / "nolink.so", SINKLAB_BINARY,
                                           small_run(dir, "x", 8, opts + " --resume"));
    const CommandResult cut = run_command(
        fmt::format("bash -c 'ulimit -f {}; exec env {}'", rows.size() / 2 / 1024, resume));
    EXPECT_NE(cut.rc, 0) << cut.out;
    EXPECT_NE(cut.out.find("cannot keep a copy of " + dir / "x/metrics.h5" + " until the start stands"),
              std::string::npos)
        << cut.out;
    EXPECT_EQ(read_file(dir / "x/metrics.h5"), rows);
    EXPECT_EQ(read_file(dir / "x/config.yaml"), config);
    EXPECT_EQ(hidden_entries(dir / "x"), std::vector<std::string>{});
    const CommandResult failed = run_command("env SINKLAB_FAULT_INJECT=setup@0 " + resume);
    EXPECT_NE(failed.rc, 0) << failed.out;
    EXPECT_EQ(read_file(dir / "x/metrics.h5"), rows);
    EXPECT_EQ(read_file(dir / "x/config.yaml"), config);
    const CommandResult resumed = run_command(resume);
    ASSERT_EQ(resumed.rc, 0) << resumed.out;
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "step"), (std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_EQ(hidden_entries(dir / "x"), std::vector<std::string>{});
}

// A restart (--resume without a checkpoint) killed before its first step: the next start puts metrics.h5 back and
// drops the metrics.restart1.h5 that was a second name of it, so that the rows are kept once, not once per kill.
TEST(Training, AKilledRestartLeavesNoSecondCopyOfItsRows) {
    const TempDir dir("train_restart_killed");
    const std::string opts = "--set checkpoint.every=5 --set metrics.flush_every=1";
    ASSERT_NE(run_sinklab(small_run(dir, "y", 6, opts), "SINKLAB_FAULT_INJECT=kill@3").rc, 0);
    const std::string rows = read_file(dir / "y/metrics.h5");
    ASSERT_NE(run_sinklab(small_run(dir, "y", 6, opts + " --resume"), "SINKLAB_FAULT_INJECT=kill@1").rc, 0);
    EXPECT_TRUE(std::filesystem::exists(dir / "y/metrics.restart1.h5"));
    const CommandResult restarted = run_sinklab(small_run(dir, "y", 6, opts + " --resume"));
    ASSERT_EQ(restarted.rc, 0) << restarted.out;
    EXPECT_EQ(read_file(dir / "y/metrics.restart1.h5"), rows);
    EXPECT_FALSE(std::filesystem::exists(dir / "y/metrics.restart2.h5"));
    EXPECT_NE(restarted.out.find("the rows logged before are kept in metrics.restart1.h5"), std::string::npos)
        << restarted.out;
}

// A run folder that is a link to a folder that is gone (a scratch disk not mounted): refused with or without
// --overwrite, the link left as it was (it had been replaced by a local folder).
TEST(Training, ARunFolderLinkingToNothingIsRefused) {
    const TempDir dir("train_dangling");
    std::filesystem::create_directory_symlink(dir / "scratch/run", dir / "x");
    for (const char* flags : {"", "--overwrite", "--resume"}) {
        const CommandResult r = run_sinklab(small_run(dir, "x", 2, flags));
        EXPECT_EQ(r.rc, 1) << r.out;
        EXPECT_NE(r.out.find("run folder " + dir / "x" + " is a link to " + dir / "scratch/run" + ", which does not "
                             "exist"),
                  std::string::npos)
            << r.out;
        EXPECT_TRUE(std::filesystem::is_symlink(dir / "x")) << flags;
        EXPECT_FALSE(std::filesystem::exists(dir / "scratch")) << flags;
    }
}

// The lock of a folder: one holder at a time, the message naming the kind of folder, the command that holds it and
// what to do; the lock file goes with its holder.
TEST(FolderLock, RefusesASecondHolderAndGoesWithTheFirst) {
    const TempDir dir("run_lock");
    const std::filesystem::path file = dir / "runs/.x.lock";
    const auto lock = [&](const char* name) {
        return std::make_unique<FolderLock>(dir / name, "run folder", "train", "pick another name");
    };
    {
        const auto first = lock("runs/x");
        EXPECT_EQ(first->note(), "");
        EXPECT_EQ(read_file(file).rfind(fmt::format("train\npid {} on ", ::getpid()), 0), 0u) << read_file(file);
        try {
            lock("runs/x");
            ADD_FAILURE() << "a second lock of runs/x was granted";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find("run folder " + dir / "runs/x is in use by another `sinklab train` (pid "),
                      std::string::npos)
                << msg;
            EXPECT_NE(msg.find("; wait for it to end, or pick another name"), std::string::npos) << msg;
        }
        const auto other = lock("runs/y");  // another run in the same folder of runs
        // Another command meeting the lock names the holder's command, not its own.
        try {
            FolderLock(dir / "runs/x", "export folder", "export", "give another --out");
            ADD_FAILURE() << "an export into a run's folder being trained was granted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("is in use by another `sinklab train` (pid "), std::string::npos)
                << e.what();
        }
    }
    EXPECT_FALSE(std::filesystem::exists(file));
    {  // A lock held by an older sinklab, whose file holds only where it runs.
        write_file(file, "pid 99 on oldhost");
        const int fd = ::open(file.c_str(), O_RDWR);
        ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
        try {
            lock("runs/x");
            ADD_FAILURE() << "a lock held by an older sinklab was granted";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("is in use by another sinklab process (pid 99 on oldhost)"),
                      std::string::npos)
                << e.what();
        }
        ::close(fd);
        std::filesystem::remove(file);
    }
    const auto again = lock("runs/x");
    // A lock file that cannot be made (here: a folder has its name; in practice, a parent not ours to write) stops
    // no one: the holder goes on unlocked, and its note says so.
    std::filesystem::create_directories(dir / "shared/.data.lock");
    const auto unlocked = lock("shared/data");
    EXPECT_NE(unlocked->note().find("run folder " + dir / "shared/data is not locked against a second `sinklab "
                                                          "train`: "),
              std::string::npos)
        << unlocked->note();
}

// A lock taken with on_wait waits for its holder instead of failing: on_wait hears who holds it, and the lock is
// granted once the holder lets go, not before.
TEST(FolderLock, WaitsForTheHolderWhenAskedTo) {
    const TempDir dir("lock_wait");
    auto first = std::make_unique<FolderLock>(dir / "cache/corpus", "corpus cache", "prepare", "");
    std::atomic<bool> waiting = false, granted = false;
    std::string heard;  // written before `waiting` is set
    std::thread second([&] {
        const FolderLock lock(dir / "cache/corpus", "corpus cache", "train", "", [&](const std::string& holder) {
            heard = holder;
            waiting = true;
        });
        granted = true;
    });
    // EXPECT, not ASSERT: the thread must be joined whatever happens.
    EXPECT_TRUE(wait_until([&] { return waiting.load(); }, 30)) << "on_wait was not called";
    if (waiting) {
        EXPECT_EQ(heard.rfind(fmt::format("`sinklab prepare` (pid {} on ", ::getpid()), 0), 0u) << heard;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(granted) << "granted while the first holder held the lock";
    first.reset();
    second.join();
    EXPECT_TRUE(granted);
}

// `sinklab train` in a run folder that another start holds fails without touching it, --overwrite or not.
TEST(Training, ASecondStartInABusyRunFolderIsRefused) {
    const TempDir dir("train_busy");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 3)).rc, 0);
    const auto before = entries_under(dir / "x");
    const FolderLock held(dir / "x", "run folder", "train", "pick another name");
    for (const char* flags : {"--overwrite", "--resume"}) {
        const CommandResult r = run_sinklab(small_run(dir, "x", 5, flags));
        EXPECT_NE(r.rc, 0) << flags;
        EXPECT_NE(r.out.find("is in use by another `sinklab train`"), std::string::npos) << r.out;
        EXPECT_EQ(entries_under(dir / "x"), before) << flags;
    }
}

// A start killed while it replaced a run leaves the old run in x/.replaced (and its own first files), or, killed
// while deleting the old run once the new one stood, x/.replaced.deleting. The next start puts the old run back
// first, as a failed start would have: --resume continues it, --overwrite replaces it.
TEST(Training, AnOldRunLeftAsideByAKilledStartGoesBack) {
    const TempDir dir("train_overwrite_killed");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 3)).rc, 0);
    write_file(dir / "x/notes.txt", "the user's");
    const auto left_aside_by_a_killed_start = [&] {
        std::filesystem::create_directory(dir / "x/.replaced");
        for (const char* name : {"config.yaml", "metrics.h5", "train.log", "checkpoints"})
            std::filesystem::rename(dir / "x/" + name, dir / "x/.replaced/" + name);
        write_file(dir / "x/config.yaml", "the killed start's");
        write_file(dir / "x/train.log", "the killed start's");
        write_file(dir / "x/.replaced.deleting/checkpoints/step_00000001/model.safetensors", "half deleted");
    };
    left_aside_by_a_killed_start();
    const CommandResult resumed = run_sinklab(small_run(dir, "x", 5, "--resume"));
    ASSERT_EQ(resumed.rc, 0) << resumed.out;
    EXPECT_NE(resumed.out.find("resumed from"), std::string::npos) << resumed.out;
    EXPECT_NE(resumed.out.find("put back the run's files that an unfinished start"), std::string::npos) << resumed.out;
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "step"), (std::vector<double>{1, 2, 3, 4, 5}));
    EXPECT_EQ(hidden_entries(dir / "x"), std::vector<std::string>{});

    left_aside_by_a_killed_start();
    const CommandResult over = run_sinklab(small_run(dir, "x", 2, "--overwrite"));
    ASSERT_EQ(over.rc, 0) << over.out;
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "step"), (std::vector<double>{1, 2}));
    EXPECT_FALSE(std::filesystem::exists(dir / "x/checkpoints/step_00000005"));
    EXPECT_EQ(read_file(dir / "x/notes.txt"), "the user's");
    EXPECT_EQ(hidden_entries(dir / "x"), std::vector<std::string>{});
}

struct BadInput {
    std::string name, args, must_mention;
};

class TrainRejects : public ::testing::TestWithParam<BadInput> {};

TEST_P(TrainRejects, WithOneClearLine) {
    const TempDir dir("train_bad_" + GetParam().name);
    const CommandResult r = run_sinklab(small_run(dir, "bad", 3, GetParam().args));
    EXPECT_NE(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find(GetParam().must_mention), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("error"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("terminate called"), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(
    BadInputs, TrainRejects,
    ::testing::Values(BadInput{"unknown_key", "--set train.learning_rate=1", "train.learning_rate"},
                      BadInput{"heads", "--set model.n_head=5", "model.n_head"},
                      BadInput{"type", "--set train.max_steps=many", "train.max_steps"},
                      BadInput{"range", "--set train.lr=-1", "train.lr"},
                      BadInput{"missing_data", "--set data.missing=error --set data.train=/nonexistent/x_*.bin",
                               "/nonexistent/x_*.bin"},
                      BadInput{"tokens_per_step", "--set train.tokens_per_step=1000", "train.tokens_per_step"},
                      BadInput{"val_folder", "--set data.val=/tmp", "data.val '/tmp' matches /tmp, a folder"}),
    [](const auto& info) { return info.param.name; });

TEST(TrainCli, MissingConfigFileIsNamed) {
    const CommandResult r = run_sinklab("train /nonexistent/config.yaml");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("/nonexistent/config.yaml"), std::string::npos) << r.out;
}

TEST(InfoCli, PrintsParametersFlopsAndMemory) {
    const CommandResult r =
        run_sinklab(std::string("info ") + SINKLAB_SOURCE_DIR + "/configs/llama-152m.yaml --ranks 8");
    ASSERT_EQ(r.rc, 0) << r.out;
    // 152M by the paper; computed here from the architecture: 12 x (4 x 768^2 + 3 x 768 x 3072) + 50304 x 768 + norms.
    const double expected = 12.0 * (4 * 768 * 768 + 3 * 768 * 3072 + 2 * 768) + 50304.0 * 768 + 768;
    EXPECT_NE(r.out.find(fmt::format("{:.3f}M", expected / 1e6)), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("FLOPs/token"), std::string::npos);
    EXPECT_NE(r.out.find("activations"), std::string::npos);
    EXPECT_NE(r.out.find("1966080"), std::string::npos) << r.out;  // tokens per step
    // 1966080 = 12 x 4096 x 8 x 5 does not split over 7 ranks: the key and the product are named, the value being
    // the config file's or a --set's.
    const CommandResult seven =
        run_sinklab(std::string("info ") + SINKLAB_SOURCE_DIR + "/configs/llama-152m.yaml --ranks 7");
    EXPECT_EQ(seven.rc, 1);
    EXPECT_EQ(seven.out,
              "sinklab: error: train.tokens_per_step = 1966080 is not a multiple of micro_batch x seq_len x ranks = "
              "12 x 4096 x 7 = 344064; change it or the number of ranks\n");
}

}  // namespace
}  // namespace sinklab::test
