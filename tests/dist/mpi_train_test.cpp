// Data-parallel training through `mpiexec -n 2 sinklab train`: two ranks equal one rank with the doubled batch
// (and one rank with two accumulation steps), a failing or dying rank ends the whole job within seconds, ranks
// that disagree on the config or drift apart are stopped with a clear error, and SIGUSR1 to mpirun stops the
// job cleanly at a checkpoint from which it resumes exactly.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <tuple>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "data/shard.h"
#include "tests/data/data_test_util.h"
#include "test_util.h"
#include "train/safetensors.h"
#include "train/train_util.h"

namespace fs = std::filesystem;

namespace sinklab::test {
namespace {

#ifdef SINKLAB_MPIEXEC
// mpiexec as root on a 2-core machine, running the command line `program` as each rank; ranks inherit `env` (they
// are children of the local mpiexec).
std::string mpiexec_program(int ranks, const std::string& program, const std::string& env = "") {
    return fmt::format("env {} OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                       "OMPI_MCA_rmaps_base_oversubscribe=1 {} -n {} {}",
                       env, SINKLAB_MPIEXEC, ranks, program);
}
#define REQUIRE_MPI()
#else
std::string mpiexec_program(int, const std::string&, const std::string& = "") { return ""; }
#define REQUIRE_MPI() GTEST_SKIP() << "skipped: built without MPI"
#endif
// sinklab with `args` as each rank.
std::string mpiexec(int ranks, const std::string& args, const std::string& env = "") {
    return mpiexec_program(ranks, std::string(SINKLAB_BINARY) + " " + args, env);
}

double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); i++) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
    return std::sqrt(num / std::max(den, 1e-300));
}

// Each tensor of two checkpoints' weights agrees to `tol` in relative L2 norm.
void expect_close_weights(const std::string& a, const std::string& b, double tol) {
    const SafetensorsFile fa(a), fb(b);
    ASSERT_EQ(fa.tensors().size(), fb.tensors().size());
    for (const StoredTensor& t : fa.tensors()) {
        const StoredTensor& u = fb.get(t.name, t.dtype, t.shape);
        const auto* x = reinterpret_cast<const float*>(t.data);
        const auto* y = reinterpret_cast<const float*>(u.data);
        const size_t n = t.bytes / 4;
        EXPECT_LT(rel_diff(std::vector<double>(x, x + n), std::vector<double>(y, y + n)), tol) << t.name;
    }
}

struct Timed {
    CommandResult r;
    double seconds;
};
Timed timed(const std::string& cmd) {
    const auto t0 = std::chrono::steady_clock::now();
    CommandResult r = run_command(cmd);
    return {r, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()};
}

TEST(MpiTraining, TwoRanksEqualOneRankWithTheDoubleBatch) {
    REQUIRE_MPI();
    const TempDir dir("mpi_equal");
    const int N = 20;
    const std::string one = "--set run.threads=1";
    const CommandResult two = run_command(mpiexec(2, small_run(dir, "two", N, one + " --set train.micro_batch=4")));
    ASSERT_EQ(two.rc, 0) << two.out;
    EXPECT_NE(two.out.find("2 ranks"), std::string::npos) << two.out;
    EXPECT_EQ(count(two.out, fmt::format("step {:>6}/{}", N, N)), 1u) << "only rank 0 logs: " << two.out;
    ASSERT_EQ(run_sinklab(small_run(dir, "double", N, one + " --set train.micro_batch=8")).rc, 0);
    const std::string accum = one + " --set train.micro_batch=4 --set train.tokens_per_step=512";
    ASSERT_EQ(run_sinklab(small_run(dir, "accum", N, accum)).rc, 0);

    const auto loss_two = column(dir / "two/metrics.h5", "train", "loss");
    ASSERT_EQ(loss_two.size(), size_t(N));
    for (const char* single : {"double", "accum"}) {
        const auto loss = column(dir / (std::string(single) + "/metrics.h5"), "train", "loss");
        ASSERT_EQ(loss.size(), size_t(N));
        for (int i = 0; i < N; i++) EXPECT_NEAR(loss_two[i], loss[i], 1e-5 * loss[i]) << single << " step " << i + 1;
        expect_close_weights(dir / "two/checkpoints/step_00000020/model.safetensors",
                             dir / (std::string(single) + "/checkpoints/step_00000020/model.safetensors"), 1e-5);
    }
    // The per-step sink metrics that are means over the micro-batch's sequences: the mean of the ranks' means is the
    // double batch's. (Ratios and maxima of the whole batch, such as /sink/massive, are each rank's own, averaged.)
    for (const char* metric : {"attn_mass", "wo_input_std", "attn_out_std", "dominance"}) {
        const auto two_ranks = column(dir / "two/metrics.h5", "sink", metric);
        const auto one_rank = column(dir / "double/metrics.h5", "sink", metric);
        ASSERT_EQ(two_ranks.size(), one_rank.size()) << metric;
        ASSERT_FALSE(one_rank.empty()) << metric;
        for (size_t i = 0; i < one_rank.size(); i++)
            EXPECT_NEAR(two_ranks[i], one_rank[i], 1e-5 * std::abs(one_rank[i]) + 1e-9) << metric << "[" << i << "]";
    }
    // Validation: the first val_batches micro-batches of 4, the ranks taking every other one, as one rank reads
    // them; the double batch's are other windows (twice as many), so its losses differ.
    const auto val_two = column(dir / "two/metrics.h5", "val", "loss");
    const auto val_accum = column(dir / "accum/metrics.h5", "val", "loss");
    const auto val_double = column(dir / "double/metrics.h5", "val", "loss");
    ASSERT_EQ(val_two.size(), val_accum.size());
    for (size_t i = 0; i < val_two.size(); i++) EXPECT_NEAR(val_two[i], val_accum[i], 1e-5 * val_accum[i]);
    EXPECT_GT(std::abs(val_double.at(0) - val_accum.at(0)), 1e-4);
    EXPECT_EQ(RunLogReader(dir / "two/metrics.h5").num_attr("world_size"), 2.0);
}

// Every tensor of two safetensors files holds the same bits.
void expect_same_tensors(const std::string& a, const std::string& b) {
    const SafetensorsFile fa(a), fb(b);
    ASSERT_EQ(fa.tensors().size(), fb.tensors().size());
    for (const StoredTensor& t : fa.tensors()) {
        const StoredTensor& u = fb.get(t.name, t.dtype, t.shape);
        ASSERT_EQ(t.bytes, u.bytes);
        EXPECT_EQ(std::memcmp(t.data, u.data, t.bytes), 0) << t.name << " differs between " << a << " and " << b;
    }
}

// ZeRO-1 (train.shard_optimizer): the same losses, weights and checkpointed moments as unsharded, and checkpoints
// that resume either way.
TEST(MpiTraining, ShardedOptimizerTrainsTheSameModel) {
    REQUIRE_MPI();
    const TempDir dir("mpi_zero1");
    // The schedule's horizon is fixed, so that a run stopped at step 10 and resumed to 20 follows the same curve.
    const std::string opts = "--set run.threads=1 --set train.micro_batch=4 --set train.decay_steps=20 ";
    const std::string shard = "--set train.shard_optimizer=true ";
    ASSERT_EQ(run_command(mpiexec(2, small_run(dir, "plain", 20, opts))).rc, 0);
    const CommandResult sharded = run_command(mpiexec(2, small_run(dir, "sharded", 20, opts + shard)));
    ASSERT_EQ(sharded.rc, 0) << sharded.out;
    const auto plain_loss = column(dir / "plain/metrics.h5", "train", "loss");
    ASSERT_EQ(plain_loss.size(), 20u);
    EXPECT_EQ(column(dir / "sharded/metrics.h5", "train", "loss"), plain_loss);
    for (const char* file : {"model.safetensors", "optimizer.safetensors"})
        expect_same_tensors(dir / (std::string("plain/checkpoints/step_00000020/") + file),
                            dir / (std::string("sharded/checkpoints/step_00000020/") + file));

    // Stopped at 10 sharded and resumed unsharded, and the other way round.
    for (const auto& [name, first, then] : {std::tuple{"to_plain", shard, std::string()},
                                            std::tuple{"to_sharded", std::string(), shard}}) {
        SCOPED_TRACE(name);
        const CommandResult a = run_command(mpiexec(2, small_run(dir, name, 10, opts + first)));
        ASSERT_EQ(a.rc, 0) << a.out;
        const CommandResult b = run_command(mpiexec(2, small_run(dir, name, 20, opts + then) + " --resume"));
        ASSERT_EQ(b.rc, 0) << b.out;
        EXPECT_EQ(column(dir / (std::string(name) + "/metrics.h5"), "train", "loss"), plain_loss);
        expect_same_tensors(dir / "plain/checkpoints/step_00000020/optimizer.safetensors",
                            dir / (std::string(name) + "/checkpoints/step_00000020/optimizer.safetensors"));
    }
}

// Commands that run as one process refuse a launcher, once for the job: under one, each rank ran the whole command
// (3 exports into one folder raced for its lock, and the job's exit status was a coin flip).
TEST(MpiCommands, OneProcessCommandsRefuseSeveralRanks) {
    REQUIRE_MPI();
    const TempDir dir("mpi_single");
    std::filesystem::create_directories(dir / "run");
    for (const std::string& command : {"info " + std::string(SINKLAB_SOURCE_DIR) + "/configs/tiny.yaml",
                                       "export " + dir / "run" + " --format hf --out " + dir / "hf",
                                       "compare " + dir / "run"}) {
        const Timed t = timed(mpiexec(2, command));
        const std::string name = command.substr(0, command.find(' '));
        EXPECT_NE(t.r.rc, 0) << t.r.out;
        EXPECT_EQ(count(t.r.out, "sinklab " + name + " runs as one process, but this is one of 2 ranks"), 1u)
            << t.r.out;
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "hf"));
    // A process that a rank starts (the corpus build's prepare, a wrapper script's compare) inherits the launcher's
    // variables but is no rank: it runs.
    const CommandResult child = run_command(mpiexec_program(
        2, fmt::format("sh -c '{} info {}/configs/tiny.yaml >/dev/null && echo child ran'", SINKLAB_BINARY,
                       SINKLAB_SOURCE_DIR)));
    EXPECT_EQ(child.rc, 0) << child.out;
    EXPECT_EQ(count(child.out, "child ran"), 2u) << child.out;
}

// Every rank parses the same command line: a usage error is said once for the job, with a usage error's status.
TEST(MpiCommands, AUsageErrorIsSaidOnce) {
    REQUIRE_MPI();
    const CommandResult r =
        run_command(mpiexec(2, "train " + std::string(SINKLAB_SOURCE_DIR) + "/configs/tiny.yaml --bogus"));
    EXPECT_EQ(r.rc, 2) << r.out;
    EXPECT_EQ(count(r.out, "sinklab: error: The following argument was not expected: --bogus"), 1u) << r.out;
}

TEST(MpiTraining, AFailingRankEndsTheJobWithOneMessage) {
    REQUIRE_MPI();
    const TempDir dir("mpi_throw");
    const Timed t = timed(mpiexec(2, small_run(dir, "run", 200, "--set run.threads=1 --set train.micro_batch=4"),
                                  "SINKLAB_FAULT_INJECT=throw@3:1"));
    EXPECT_NE(t.r.rc, 0) << t.r.out;
    EXPECT_LT(t.seconds, 30) << t.r.out;
    EXPECT_EQ(count(t.r.out, "injected failure at step 3"), 1u) << t.r.out;
    EXPECT_NE(t.r.out.find("rank 1 of 2"), std::string::npos) << t.r.out;
}

// --overwrite under mpirun: the old run is deleted only once every rank is set up. Rank 1 failing at the end of its
// setup once cost the old run its checkpoints; now the next start puts the old run back.
TEST(MpiTraining, AnOverwriteThatFailsOnAnotherRankKeepsTheOldRun) {
    REQUIRE_MPI();
    const TempDir dir("mpi_overwrite");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 3, "--set run.threads=1")).rc, 0);
    write_file(dir / "x/notes.txt", "the user's");
    const Timed t = timed(mpiexec(2, small_run(dir, "x", 5, "--set run.threads=1 --overwrite"),
                                  "SINKLAB_FAULT_INJECT=setup@0:1"));
    EXPECT_NE(t.r.rc, 0) << t.r.out;
    EXPECT_NE(t.r.out.find("injected failure at the end of setup"), std::string::npos) << t.r.out;
    const CommandResult again = run_sinklab(small_run(dir, "x", 4, "--set run.threads=1 --resume"));
    ASSERT_EQ(again.rc, 0) << again.out;
    EXPECT_NE(again.out.find("resumed from " + (dir / "x/checkpoints/step_00000003")), std::string::npos)
        << again.out;
    EXPECT_EQ(read_file(dir / "x/notes.txt"), "the user's");
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "loss").size(), 4u);
}

// train.log's epochs note of a run resumed on more ranks counts from where the loader stands: 3000 tokens make 45
// windows of 64; after 3 steps of 8 on 1 rank (24 windows), 2 ranks take 16 a step: step 4 ends the first epoch
// (21 left), step 5 starts the second, and the 12 steps read (2 - 1 + 9) / 2 = 5 epochs of 2 batches.
TEST(MpiTraining, ARunResumedOnMoreRanksNotesItsEpochsFromWhereItStands) {
    REQUIRE_MPI();
    const TempDir dir("mpi_epochs");
    std::vector<uint32_t> tokens(3000);
    for (size_t i = 0; i < tokens.size(); i++) tokens[i] = uint32_t(i * 7 % 256);
    write_llmc_shard(dir / "small_000000.bin", tokens, true);
    const std::string data = fmt::format(
        "--set run.threads=1 --set data.train={}/small_*.bin --set data.val= --set data.missing=error", dir.path());
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 3, data)).rc, 0);
    const CommandResult r = run_command(mpiexec(2, small_run(dir, "x", 12, data + " --resume")));
    ASSERT_EQ(r.rc, 0) << r.out;
    const std::string log = read_file(dir / "x/train.log");
    EXPECT_NE(log.find("2 batches of 16 windows of 64 tokens per epoch, so the run's 12 steps read it 5.0 times, and "
                       "from step 5 on"),
              std::string::npos)
        << log;
}

// With train.tokens_per_step 0 the tokens per step follow the ranks: a run resumed on 2 ranks counts its tokens on
// from the checkpoint's, at twice the rate (1 rank x 8 x 64 = 512 tokens a step, then 1024), and back on 1 rank.
// The first checkpoint stands in for one of an older sinklab, which did not record its tokens: they are its steps
// times the tokens per step of the ranks that wrote it.
TEST(MpiTraining, ResumingOnOtherRanksCountsTheTokensOn) {
    REQUIRE_MPI();
    const TempDir dir("mpi_tokens");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 3, "--set run.threads=1")).rc, 0);
    const std::string state = dir / "x/checkpoints/step_00000003/state.json";
    nlohmann::ordered_json old = nlohmann::ordered_json::parse(read_file(state));
    ASSERT_EQ(old.at("tokens"), 1536) << old.dump();
    old.erase("tokens");
    old.erase("state_checksum");  // nor its own checksum
    write_file(state, old.dump(2));
    const Timed two = timed(mpiexec(2, small_run(dir, "x", 5, "--set run.threads=1 --resume")));
    ASSERT_EQ(two.r.rc, 0) << two.r.out;
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 6, "--set run.threads=1 --resume")).rc, 0);
    EXPECT_EQ(column(dir / "x/metrics.h5", "train", "tokens"),
              (std::vector<double>{512, 1024, 1536, 2560, 3584, 4096}));
}

TEST(MpiTraining, ADyingRankEndsTheJob) {
    REQUIRE_MPI();
    const TempDir dir("mpi_kill");
    const Timed t = timed(mpiexec(2, small_run(dir, "run", 200, "--set run.threads=1 --set train.micro_batch=4"),
                                  "SINKLAB_FAULT_INJECT=kill@3:1"));
    EXPECT_NE(t.r.rc, 0) << t.r.out;
    EXPECT_LT(t.seconds, 30) << t.r.out;
}

// A rank that stops without dying holds the others in their next collective; their hang watchdog ends the job, the
// stopped rank with it.
TEST(MpiTraining, AStoppedRankEndsTheJobAfterTheHangTimeout) {
    REQUIRE_MPI();
    const TempDir dir("mpi_stop");
    const Timed t = timed(mpiexec(2, small_run(dir, "run", 200, "--set run.threads=1 --set fault.hang_timeout=3"),
                                  "SINKLAB_FAULT_INJECT=stop@4:1"));
    EXPECT_NE(t.r.rc, 0) << t.r.out;
    EXPECT_LT(t.seconds, 60) << t.r.out;
    EXPECT_EQ(count(t.r.out, "rank 0 of 2: step 4 has not finished "), 1u) << t.r.out;
    EXPECT_NE(t.r.out.find("a rank is stopped or hung"), std::string::npos) << t.r.out;
    // "[r]un": the pattern does not match pgrep's own shell.
    EXPECT_EQ(run_command(fmt::format("pgrep -f '[r]un.out_dir={} '", dir.path())).rc, 1) << "a rank outlived the job";
}

// Eval likewise: rank 1 stops before its batch and holds rank 0 in the sums over the ranks, where eval waited for ever
// (the command's `timeout` ends it if it still does).
TEST(MpiTraining, AStoppedRankEndsTheEvalAfterTheHangTimeout) {
    REQUIRE_MPI();
    const TempDir dir("mpi_eval_stop");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 2, "--set run.threads=1")).rc, 0);
    const std::string eval = fmt::format("eval {} --batches 2 --out {} --set run.threads=1 --set fault.hang_timeout=3",
                                         dir / "x", dir / "two.h5");
    const Timed t = timed("timeout -s KILL 120 " + mpiexec(2, eval, "SINKLAB_FAULT_INJECT=stop@1:1"));
    EXPECT_NE(t.r.rc, 0) << t.r.out;
    EXPECT_LT(t.seconds, 60) << t.r.out;
    EXPECT_EQ(count(t.r.out, "rank 0 of 2: batch 1 has not finished "), 1u) << t.r.out;
    EXPECT_NE(t.r.out.find("a rank is stopped or hung"), std::string::npos) << t.r.out;
    EXPECT_FALSE(fs::exists(dir / "two.h5"));
    EXPECT_EQ(run_command(fmt::format("pgrep -f '[e]val {}/x '", dir.path())).rc, 1) << "a rank outlived the job";
    run_command(fmt::format("pkill -KILL -f '[e]val {}/x '", dir.path()));  // a rank that outlived it (stopped)
}

TEST(MpiTraining, RanksWithDifferentConfigsRefuseToStart) {
    REQUIRE_MPI();
    const TempDir dir("mpi_config");
    const std::string a = small_run(dir, "run", 5, "--set run.threads=1 --set train.micro_batch=4");
    const std::string cmd = mpiexec(1, a) + fmt::format(" : -n 1 {} {} --set train.lr=0.002", SINKLAB_BINARY, a);
    const CommandResult r = run_command(cmd);
    EXPECT_NE(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("rank(s) 1 resolved another config than rank 0"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir / "run/metrics.h5"));
}

// Nodes with their own copies of the shards: each rank runs in its own folder and reads data/ there (a relative
// data.train, so the configs agree). Identical copies train; a copy in which two tokens trade places (as many
// tokens, all valid: only the checksum tells) is refused before any step, for data.train and data.val, and by eval.
TEST(MpiTraining, RanksReadingOtherCopiesOfTheDataRefuseToStart) {
    REQUIRE_MPI();
    const TempDir dir("mpi_data");
    const std::string node0 = dir / "node0", node1 = dir / "node1";
    fs::create_directories(node0);
    fs::create_directories(node1);
    const std::string args =
        small_run(dir, "run", 2,
                  "--set run.threads=1 --set train.micro_batch=4 --set data.train='data/train_*.bin' "
                  "--set data.val='data/val_*.bin' --overwrite");
    ASSERT_EQ(run_command(fmt::format("cd {} && {} {}", node0, SINKLAB_BINARY, args)).rc, 0);  // makes node0/data
    fs::copy(node0 + "/data", node1 + "/data", fs::copy_options::recursive);
    const auto two_ranks = [&](const std::string& command) {
        return run_command(fmt::format("cd {} && {} : -n 1 -wdir {} {} {}", node0, mpiexec(1, command), node1,
                                       SINKLAB_BINARY, command));
    };
    const CommandResult same = two_ranks(args);
    ASSERT_EQ(same.rc, 0) << same.out;

    // Swaps the last two tokens that differ.
    const auto swap_tokens = [](const std::string& path) {
        std::vector<uint32_t> tokens = read_llmc_shard(path);
        const bool uint16 = fs::file_size(path) == kShardHeaderBytes + 2 * tokens.size();
        size_t at = tokens.size() - 1;
        while (tokens[at - 1] == tokens[at]) at--;
        std::swap(tokens[at - 1], tokens[at]);
        write_llmc_shard(path, tokens, uint16);
    };
    for (const std::string which : {"train", "val"}) {
        const std::string copy = node1 + "/data/" + which + "_000000.bin", kept = copy + ".kept";
        fs::copy_file(copy, kept);
        swap_tokens(copy);
        const std::string tokens = fmt::format("than rank 0 ({} tokens,", Shard(copy).tokens());
        const CommandResult r = two_ranks(args);
        EXPECT_NE(r.rc, 0) << r.out;
        EXPECT_NE(r.out.find(fmt::format("rank(s) 1 read other tokens from data.{} 'data/{}_*.bin' (relative to each "
                                         "rank's current folder) {}",
                                         which, which, tokens)),
                  std::string::npos)
            << r.out;
        EXPECT_EQ(r.out.find("step      1/"), std::string::npos) << "trained a step: " << r.out;
        const CommandResult eval = two_ranks(
            fmt::format("eval {} --batches 1 --data 'data/{}_*.bin' --out {}", dir / "run", which, dir / "eval.h5"));
        EXPECT_NE(eval.rc, 0) << eval.out;
        EXPECT_NE(eval.out.find(fmt::format("rank(s) 1 read other tokens from --data 'data/{}_*.bin'", which)),
                  std::string::npos)
            << eval.out;
        fs::rename(kept, copy);
    }
}

// `eval --batches N` reads the first N micro-batches of the data on any number of ranks, and must write the same
// metrics on 2 ranks as on 1: the loss and the sink metrics summed over the ranks' batches, the dimension-wise std
// over their sequences, the FFN's top channel voted over all of them. N odd gives the ranks unequal shares; N = 1
// leaves rank 1 without a batch.
TEST(MpiTraining, EvalOnTwoRanksEqualsOneRank) {
    REQUIRE_MPI();
    const TempDir dir("mpi_eval");
    ASSERT_EQ(run_sinklab(small_run(dir, "x", 4, "--set run.threads=1")).rc, 0);
    for (int batches : {4, 3, 1}) {
        const std::string one_h5 = dir / fmt::format("one{}.h5", batches);
        const std::string two_h5 = dir / fmt::format("two{}.h5", batches);
        const CommandResult one = run_sinklab(fmt::format("eval {} --batches {} --out {}", dir / "x", batches, one_h5));
        ASSERT_EQ(one.rc, 0) << one.out;
        const CommandResult two = run_command(mpiexec(
            2, fmt::format("eval {} --batches {} --out {} --set run.threads=1", dir / "x", batches, two_h5)));
        ASSERT_EQ(two.rc, 0) << two.out;
        const RunLogReader a(one_h5), b(two_h5);
        EXPECT_EQ(a.num_attr("sequences"), batches * 8.0);
        EXPECT_EQ(b.num_attr("sequences"), batches * 8.0);
        for (const std::string& c : a.columns("eval")) {
            const Dataset x = a.read("eval", c), y = b.read("eval", c);
            ASSERT_EQ(x.shape, y.shape) << c;
            for (size_t i = 0; i < x.data.size(); i++)
                EXPECT_NEAR(y.data[i], x.data[i], 1e-5 * std::max(1.0, std::abs(x.data[i])))
                    << batches << " batches: " << c << "[" << i << "]";
        }
    }
    EXPECT_NE(RunLogReader(dir / "one4.h5").read("eval", "loss").data,
              RunLogReader(dir / "one3.h5").read("eval", "loss").data);
}

// An eval's checkpoint and --out are rank 0's: other ranks that picked the newest checkpoint themselves could
// evaluate two models as one while the run trained, and their probe of --out (a file made and removed) could be taken
// by rank 0's own check for a file that eval must not replace (one two-rank eval in six failed so on a loaded
// machine). Each rank runs in a folder of its own where the relative run x is another run (2 and 6 steps) and --out
// is relative, so that what rank 1 reads or writes by those names shows.
TEST(MpiTraining, EvalRanksTakeRankZerosCheckpointAndOutput) {
    REQUIRE_MPI();
    const TempDir dir("mpi_eval_rank0");
    ASSERT_EQ(run_sinklab(small_run(dir, "a", 2, "--set run.threads=1")).rc, 0);
    ASSERT_EQ(run_sinklab(small_run(dir, "b", 6, "--set run.threads=1")).rc, 0);
    for (const char* rank : {"rank0", "rank1"}) std::filesystem::create_directories(dir / rank);
    std::filesystem::create_directory_symlink(dir / "a", dir / "rank0/x");
    std::filesystem::create_directory_symlink(dir / "b", dir / "rank1/x");
    auto two_folders = [&](const std::string& args0, const std::string& args1) {
        return run_command(mpiexec_program(1, fmt::format("-wdir {} {} {} : -n 1 -wdir {} {} {}", dir / "rank0",
                                                          SINKLAB_BINARY, args0, dir / "rank1", SINKLAB_BINARY,
                                                          args1)));
    };
    const std::string eval = "eval x --batches 2 --out sub/e.h5 --set run.threads=1";
    const CommandResult two = two_folders(eval, eval);
    ASSERT_EQ(two.rc, 0) << two.out;
    EXPECT_FALSE(std::filesystem::exists(dir / "rank1/sub")) << "rank 1 made --out's folder";
    for (const char* run : {"a", "b"}) {
        const std::string one = fmt::format("eval {} --batches 2 --out {} --set run.threads=1", dir / run,
                                            dir / fmt::format("{}.h5", run));
        ASSERT_EQ(run_sinklab(one).rc, 0) << one;
    }
    const double loss_two = column(dir / "rank0/sub/e.h5", "eval", "loss").at(0);
    EXPECT_NEAR(loss_two, column(dir / "a.h5", "eval", "loss").at(0), 1e-5);
    EXPECT_GT(std::abs(loss_two - column(dir / "b.h5", "eval", "loss").at(0)), 1e-3);

    // A rank that resolved another config ends the job, named, before the evaluation.
    const CommandResult other = two_folders(eval, eval + " --set metrics.sink_eps=0.5");
    EXPECT_NE(other.rc, 0) << other.out;
    EXPECT_NE(other.out.find("rank(s) 1 resolved another config than rank 0"), std::string::npos) << other.out;
}

TEST(MpiTraining, RanksThatDriftApartAreStopped) {
    REQUIRE_MPI();
    const TempDir dir("mpi_desync");
    const CommandResult r =
        run_command(mpiexec(2, small_run(dir, "run", 20, "--set run.threads=1 --set train.micro_batch=4 "
                                                          "--set fault.check_every=5"),
                            "SINKLAB_FAULT_INJECT=desync@7:1"));
    EXPECT_NE(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("step 10: the parameters of rank(s) 1 differ from rank 0's"), std::string::npos) << r.out;
    // A checkpoint is checked before it is written, whatever fault.check_every: step 8's would hold drifted weights.
    const CommandResult saving =
        run_command(mpiexec(2, small_run(dir, "saving", 20, "--set run.threads=1 --set train.micro_batch=4 "
                                                            "--set fault.check_every=5 --set checkpoint.every=8"),
                            "SINKLAB_FAULT_INJECT=desync@7:1"));
    EXPECT_NE(saving.rc, 0) << saving.out;
    EXPECT_NE(saving.out.find("step 8: the parameters of rank(s) 1 differ from rank 0's"), std::string::npos)
        << saving.out;
    EXPECT_FALSE(std::filesystem::exists(dir / "saving/checkpoints/step_00000008"));
}

TEST(MpiTraining, Sigusr1StopsAtACheckpointAndResumesExactly) {
    REQUIRE_MPI();
    const TempDir dir("mpi_usr1");
    const int N = 150;
    const std::string opts = "--set run.threads=1 --set train.micro_batch=4";
    const std::string args = small_run(dir, "run", N, opts);
    ASSERT_EQ(run_command(mpiexec(2, small_run(dir, "straight", N, opts))).rc, 0);
    {
        Background bg(mpiexec(2, args, "SINKLAB_FAULT_INJECT=slow=0.02"), dir / "out.log");
        ASSERT_TRUE(wait_until([&] { return logged_step(dir, "run", 10); }, 60)) << read_file(dir / "out.log");
        bg.signal(SIGUSR1);  // mpirun forwards it to both ranks
        ASSERT_EQ(bg.wait(60), 0) << read_file(dir / "out.log");
    }
    EXPECT_NE(read_file(dir / "out.log").find("on SIGUSR1: checkpoint written"), std::string::npos);
    const size_t rows = column(dir / "run/metrics.h5", "train", "step").size();
    EXPECT_LT(rows, size_t(N));
    EXPECT_TRUE(fs::exists(dir / fmt::format("run/checkpoints/step_{:08d}", rows)));
    const CommandResult r = run_command(mpiexec(2, args + " --resume"));
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "loss"), column(dir / "straight/metrics.h5", "train", "loss"));
    EXPECT_EQ(column(dir / "run/metrics.h5", "val", "loss"), column(dir / "straight/metrics.h5", "val", "loss"));
}

// scripts/slurm/train.sbatch outside Slurm: scontrol is a stub that records its calls other than `show` (it
// answers those with nothing), squeue one that says the job is task 3 of array 41 (whose own job id, 42, is not the
// one to requeue), the ranks start through mpirun (LAUNCHER=mpirun), and SIGUSR1 to the script stands for Slurm's
// signal before the time limit.
TEST(SlurmScript, StopsAtACheckpointRequeuesAndResumes) {
    REQUIRE_MPI();
    const TempDir dir("slurm_script");
    write_executable(dir / "bin/scontrol", fmt::format("#!/bin/sh\n[ \"$1\" = show ] && exit 0\n"
                                                       "echo \"scontrol $*\" >> {}\n",
                                                       dir / "calls"));
    write_executable(dir / "bin/squeue", "#!/bin/sh\necho 41_3\n");
    const std::string env = fmt::format(
        "PATH={}:$PATH SINKLAB={} SLURM_JOB_ID=42 SLURM_JOB_NUM_NODES=1 SLURM_NTASKS=2 SLURM_NTASKS_PER_NODE=2 "
        "LAUNCHER=mpirun OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1",
        dir / "bin", SINKLAB_BINARY);
    // small_run's arguments after the subcommand and config: the script adds `train CONFIG`.
    const std::string run = small_run(dir, "run", 150, "--set run.threads=1 --set train.micro_batch=4");
    const std::string args = run.substr(run.find(" --set"));
    const std::string script = fmt::format("{}/scripts/slurm/train.sbatch {}/configs/tiny.yaml", SINKLAB_SOURCE_DIR,
                                           SINKLAB_SOURCE_DIR);
    {
        Background bg(fmt::format("env {} SINKLAB_FAULT_INJECT=slow=0.02 {} {}", env, script, args), dir / "job1.log");
        ASSERT_TRUE(wait_until([&] { return logged_step(dir, "run", 10); }, 60)) << read_file(dir / "job1.log");
        bg.signal(SIGUSR1);
        ASSERT_EQ(bg.wait(60), 0) << read_file(dir / "job1.log");
    }
    EXPECT_EQ(read_file(dir / "calls"), "scontrol requeue 41_3\n") << read_file(dir / "job1.log");
    const CommandResult second = run_command(fmt::format("env {} {} {}", env, script, args));
    ASSERT_EQ(second.rc, 0) << second.out;
    EXPECT_NE(second.out.find("resumed from"), std::string::npos) << second.out;
    EXPECT_EQ(read_file(dir / "calls"), "scontrol requeue 41_3\n") << "a finished run is not requeued";
    EXPECT_EQ(column(dir / "run/metrics.h5", "train", "step").size(), 150u);
}

}  // namespace
}  // namespace sinklab::test
