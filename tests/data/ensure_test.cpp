// ensure_data: a clear error by default; data.missing: synthetic writes a deterministic dataset that a trigram
// count model (fit here, independently) predicts far better than chance, close to the source's entropy rate.
#include <fmt/format.h>

#include <cmath>
#include <tuple>
#include <unordered_map>

#include "cli_util.h"
#include "core/check.h"
#include "core/folder_lock.h"
#include "data/ensure.h"
#include "data/synthetic.h"
#include "data_test_util.h"
#include "test_util.h"

namespace sinklab {
namespace {

DataConfig synthetic_config(const test::TempDir& dir, const std::string& tokenizer = "bytes") {
    DataConfig d;
    d.train = dir / "shards/synthetic/train_*.bin";
    d.val = dir / "shards/synthetic/val_*.bin";
    d.tokenizer = tokenizer;
    d.missing = "synthetic";
    return d;
}

TEST(EnsureData, MissingShardsAreAClearErrorByDefault) {
    test::TempDir dir;
    DataConfig d = synthetic_config(dir);
    d.missing = "error";
    try {
        ensure_data(d, ModelConfig{});
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(d.train), std::string::npos) << msg;
        EXPECT_NE(msg.find("sinklab prepare"), std::string::npos) << msg;
        EXPECT_NE(msg.find("data.missing"), std::string::npos) << msg;
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "shards"));
    d.missing = "maybe";
    EXPECT_THROW(ensure_data(d, ModelConfig{}), Error);
}

// A failed write of the val shard (its folder cannot be made here; a full disk did it) leaves no train shard either:
// a lone train shard said "made" to the next start, which then found no val shard and told to run prepare.
TEST(EnsureData, AFailedSyntheticWriteLeavesNothingHalfMade) {
    test::TempDir dir;
    DataConfig d = synthetic_config(dir);
    d.val = dir / "blocked/val_*.bin";
    test::write_file(dir / "blocked", "a file where the val folder goes");
    testing::internal::CaptureStderr();
    EXPECT_THROW(ensure_data(d, ModelConfig{}), std::exception);
    testing::internal::GetCapturedStderr();
    EXPECT_FALSE(std::filesystem::exists(dir / "shards/synthetic/train_000000.bin"));

    std::filesystem::remove(dir / "blocked");  // the space freed
    testing::internal::CaptureStderr();
    ensure_data(d, ModelConfig{});
    testing::internal::GetCapturedStderr();
    EXPECT_TRUE(std::filesystem::exists(dir / "shards/synthetic/train_000000.bin"));
    EXPECT_TRUE(std::filesystem::exists(dir / "blocked/val_000000.bin"));
}

TEST(EnsureData, SyntheticDataIsLearnable) {
    test::TempDir dir;
    const DataConfig d = synthetic_config(dir);
    const std::string said = ensure_data(d, ModelConfig{});
    EXPECT_NE(said.find("synthetic"), std::string::npos) << said;
    EXPECT_NE(said.find(dir / "shards/synthetic/train_000000.bin"), std::string::npos) << said;

    const std::vector<uint32_t> train = test::read_llmc_shard(dir / "shards/synthetic/train_000000.bin");
    const std::vector<uint32_t> val = test::read_llmc_shard(dir / "shards/synthetic/val_000000.bin");
    EXPECT_GT(train.size(), 1900000u);
    EXPECT_LT(train.size(), 2200000u);
    EXPECT_GT(val.size(), 90000u);
    EXPECT_LT(val.size(), 120000u);
    EXPECT_EQ(train[0], 256u);  // EOT before the first document

    // Trigram counts on train, add-alpha smoothing over the 257 ids, cross-entropy on val.
    const double alpha = 0.01, V = 257;
    std::unordered_map<uint32_t, std::unordered_map<uint32_t, double>> counts;
    std::unordered_map<uint32_t, double> totals, unigram;
    for (size_t i = 2; i < train.size(); ++i) {
        const uint32_t ctx = train[i - 2] * 512 + train[i - 1];
        counts[ctx][train[i]] += 1;
        totals[ctx] += 1;
        unigram[train[i]] += 1;
    }
    double trigram_nats = 0, unigram_nats = 0;
    for (size_t i = 2; i < val.size(); ++i) {
        const uint32_t ctx = val[i - 2] * 512 + val[i - 1];
        trigram_nats -= std::log((counts[ctx][val[i]] + alpha) / (totals[ctx] + alpha * V));
        unigram_nats -= std::log((unigram[val[i]] + alpha) / (train.size() - 2 + alpha * V));
    }
    trigram_nats /= val.size() - 2;
    unigram_nats /= val.size() - 2;
    RecordProperty("trigram_nats", std::to_string(trigram_nats));
    EXPECT_GT(unigram_nats, 2.5);                      // not learnable from token frequencies alone
    EXPECT_LT(trigram_nats, 1.1);                      // but from two tokens of context
    EXPECT_NEAR(trigram_nats, synthetic_entropy_per_token(), 0.1);
    EXPECT_LT(synthetic_entropy_per_token(), 0.2 * std::log(V));

    // Present now: nothing is rewritten, and nothing said.
    const auto written = std::filesystem::last_write_time(dir / "shards/synthetic/train_000000.bin");
    EXPECT_EQ(ensure_data(d, ModelConfig{}), "");
    EXPECT_EQ(std::filesystem::last_write_time(dir / "shards/synthetic/train_000000.bin"), written);
}

TEST(EnsureData, SyntheticDataIsDeterministic) {
    test::TempDir a, b;
    ensure_data(synthetic_config(a), ModelConfig{});
    ensure_data(synthetic_config(b), ModelConfig{});
    for (const char* f : {"shards/synthetic/train_000000.bin", "shards/synthetic/val_000000.bin"})
        EXPECT_EQ(test::read_file(a / f), test::read_file(b / f)) << f;
    EXPECT_NE(test::read_file(a / "shards/synthetic/train_000000.bin").substr(1024, 100000),
              test::read_file(a / "shards/synthetic/val_000000.bin").substr(1024, 100000));
}

TEST(EnsureData, SyntheticDataWithGpt2) {
    SKIP_WITHOUT_VOCAB();
    test::TempDir dir;
    test::ScopedEnv env("SINKLAB_CACHE", test::cache_root());
    ensure_data(synthetic_config(dir, "gpt2"), ModelConfig{});
    const std::vector<uint32_t> train = test::read_llmc_shard(dir / "shards/synthetic/train_000000.bin");
    EXPECT_EQ(train[0], 50256u);
    EXPECT_LT(*std::max_element(train.begin(), train.end()), 50257u);
}

// A data.train that matches nothing beside other shards is taken for a typo: no data is generated in their place.
// The val shards of the dataset itself are no others (a train shard deleted is made again).
TEST(EnsureData, NoSyntheticDataBesideOtherShards) {
    test::TempDir dir;
    DataConfig d = synthetic_config(dir);
    ensure_data(d, ModelConfig{});
    std::filesystem::remove(dir / "shards/synthetic/train_000000.bin");
    EXPECT_NE(ensure_data(d, ModelConfig{}), "");
    std::filesystem::remove(dir / "shards/synthetic/train_000000.bin");  // the val shard's path spelt otherwise
    d.train = dir / "shards/./synthetic/train_*.bin";
    EXPECT_NE(ensure_data(d, ModelConfig{}), "");
    d.train = dir / "shards/synthetic/trian_*.bin";
    try {
        ensure_data(d, ModelConfig{});
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        for (const std::string& part : {"no file matches data.train '" + d.train + "'",
                                        std::string("holds other token shards (train_000000.bin): a typo?")})
            EXPECT_NE(msg.find(part), std::string::npos) << part << " in: " << msg;
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "shards/synthetic/trian_000000.bin"));
}

// Validation must be held out: a data.train glob that also catches the val shards, or a data.val that names train
// shards (also through another spelling, a symbolic or a hard link), is refused at a run's start (noted on a
// resume); shards apart are not.
TEST(EnsureData, ValidationShardsThatTrainingReadsAreRefused) {
    test::TempDir dir;
    DataConfig d = synthetic_config(dir);
    ensure_data(d, ModelConfig{});
    std::filesystem::create_symlink(dir / "shards/synthetic/train_000000.bin", dir / "linked.bin");
    std::filesystem::create_hard_link(dir / "shards/synthetic/train_000000.bin", dir / "hard.bin");
    const std::string wide = dir / "shards/synthetic/*.bin";
    for (const auto& [train, val, shared] :
         {std::tuple{wide, d.val, dir / "shards/synthetic/val_000000.bin"},
          std::tuple{d.train, std::string(dir / "shards/./synthetic/train_*.bin"),
                     dir / "shards/./synthetic/train_000000.bin"},
          std::tuple{d.train, std::string(dir / "linked.bin"), dir / "linked.bin"},
          std::tuple{d.train, std::string(dir / "hard.bin"), dir / "hard.bin"}}) {
        DataConfig overlapping = d;
        overlapping.train = train;
        overlapping.val = val;
        try {
            ensure_data(overlapping, ModelConfig{});
            ADD_FAILURE() << "no error for train " << train << ", val " << val;
        } catch (const Error& e) {
            EXPECT_EQ(std::string(e.what()),
                      fmt::format("data.val '{}' and data.train '{}' share 1 of data.val's 1 shards ({}): the "
                                  "loss measured on them is one of tokens the model trains on; give each its own "
                                  "shards (prepare writes train_*.bin and val_*.bin)",
                                  val, train, shared));
        }
        // A run that began so (before this check) resumes as it began, with a note.
        EXPECT_EQ(ensure_data(overlapping, ModelConfig{}, true),
                  fmt::format("data.val '{}' and data.train '{}' share 1 of data.val's 1 shards ({}): the loss "
                              "measured on them is one of tokens the model trains on",
                              val, train, shared));
    }
    EXPECT_EQ(ensure_data(d, ModelConfig{}), "");
}

// Generated shards that the other glob would catch are refused before any is written (they were written, then
// refused by the check above, and stayed).
TEST(EnsureData, SyntheticShardsThatTrainingWouldReadAreNotWritten) {
    test::TempDir dir;
    const std::string folder = dir / "s", dotted = dir / "s/./";
    for (const auto& [train, val, shard] :
         {std::tuple{folder + "/*.bin", folder + "/val_*.bin", folder + "/val_000000.bin"},
          std::tuple{dotted + "*.bin", folder + "/val_*.bin", folder + "/val_000000.bin"},
          std::tuple{folder + "/train_*.bin", folder + "/*", folder + "/train_000000.bin"}}) {
        DataConfig d = synthetic_config(dir);
        d.train = train;
        d.val = val;
        try {
            ensure_data(d, ModelConfig{});
            ADD_FAILURE() << "no error for train " << train << ", val " << val;
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_NE(msg.find(fmt::format("would write {} for data.{}", shard, shard == folder + "/val_000000.bin"
                                                                                  ? "val, which data.train '" + train
                                                                                  : "train, which data.val '" + val)),
                      std::string::npos)
                << msg;
        }
        EXPECT_FALSE(std::filesystem::exists(folder)) << train << " " << val;
    }
    // Existing val shards: the train shard to be written is checked alone.
    DataConfig d = synthetic_config(dir);
    d.val = folder + "/*.bin";
    test::write_file(folder + "/v.bin", "");
    d.train = folder + "/train_*.bin";
    EXPECT_NE(test::error_of([&] { ensure_data(d, ModelConfig{}); })
                  .find(fmt::format("would write {}/train_000000.bin for data.train, which data.val '{}' matches too",
                                    folder, d.val)),
              std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(folder + "/train_000000.bin"));
}

TEST(EnsureData, SyntheticNeedsRoomInTheVocabulary) {
    test::TempDir dir;
    ModelConfig small;
    small.vocab_size = 200;
    EXPECT_THROW(ensure_data(synthetic_config(dir), small), Error);
    DataConfig wild = synthetic_config(dir);
    wild.train = dir / "shards/train_?.bin";
    EXPECT_THROW(ensure_data(wild, ModelConfig{}), Error);
}

// Makes `cache` a fresh cache that already has the downloads (linked from this checkout's), so that only the shards
// are made (a few seconds). Returns why it cannot, or "".
std::string link_downloads(const test::TempDir& cache) {
    const std::string corpus = test::cache_root() + "/corpus";
    if (!std::filesystem::exists(corpus + "/corpus.jsonl") || !test::have_gpt2_vocab())
        return "no corpus and vocabulary in " + test::cache_root() +
               ": run data/fetch_gpt2_vocab.sh and data/fetch_corpus.sh (CI does)";
    std::filesystem::create_directory_symlink(corpus, cache / "corpus");
    std::filesystem::create_directory_symlink(test::gpt2_dir(), cache / "gpt2");
    return "";
}

TEST(EnsureData, CorpusModeBuildsTheCorpusShards) {
    test::TempDir cache;
    if (const std::string missing = link_downloads(cache); !missing.empty()) GTEST_SKIP() << missing;
    test::ScopedEnv env("SINKLAB_CACHE", cache.path()), bin("SINKLAB_BIN", SINKLAB_BINARY);
    DataConfig d;
    d.train = cache / "shards/corpus-bytes/train_*.bin";
    d.val = cache / "shards/corpus-bytes/val_*.bin";
    d.tokenizer = "bytes";
    d.missing = "corpus";
    testing::internal::CaptureStderr();
    ensure_data(d, ModelConfig{});
    EXPECT_NE(testing::internal::GetCapturedStderr().find("fetch_corpus.sh"), std::string::npos);
    EXPECT_TRUE(std::filesystem::exists(cache / "shards/corpus-bytes/train_000000.bin"));
    EXPECT_TRUE(std::filesystem::exists(cache / "shards/corpus-gpt2/val_000000.bin"));
}

// Runs that start together on one cache (a sweep's array tasks) build the corpus one at a time: with another build
// running (this test holds its lock, and builds the shards itself meanwhile), a train waits for it, then uses its
// shards and builds nothing. Before, its prepare was refused while the other's wrote the same folder.
TEST(EnsureData, CorpusModeWaitsForABuildAlreadyRunning) {
    test::TempDir cache;
    if (const std::string missing = link_downloads(cache); !missing.empty()) GTEST_SKIP() << missing;
    const std::string env = fmt::format("SINKLAB_CACHE={} SINKLAB_BIN={}", cache.path(), SINKLAB_BINARY);
    auto other = std::make_unique<FolderLock>(cache / "corpus", "corpus cache", "prepare", "");
    const std::string log = cache / "train.log.txt";
    test::Background train(
        fmt::format("env {} {} train {}/configs/tiny.yaml --set run.out_dir={} --set train.max_steps=1 "
                    "--set train.warmup_steps=0 --set data.train={} --set data.val={} --set run.threads=1",
                    env, SINKLAB_BINARY, SINKLAB_SOURCE_DIR, cache / "runs", cache / "shards/corpus-bytes/train_*.bin",
                    cache / "shards/corpus-bytes/val_*.bin"),
        log);
    const std::string waiting = "sinklab: waiting for `sinklab prepare`";
    test::wait_until([&] { return test::read_file(log).find(waiting) != std::string::npos || train.wait(0) >= 0; },
                     60);
    ASSERT_NE(test::read_file(log).find(waiting), std::string::npos) << test::read_file(log);
    const test::CommandResult built =
        test::run_command(env + " bash " + std::string(SINKLAB_SOURCE_DIR) + "/data/fetch_corpus.sh");
    ASSERT_EQ(built.rc, 0) << built.out;
    other.reset();
    ASSERT_EQ(train.wait(120), 0) << test::read_file(log);
    const std::string out = test::read_file(log);
    EXPECT_NE(out.find("another sinklab built the default English corpus into " + cache / "shards/corpus-bytes"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("building the default English corpus"), std::string::npos) << out;
}

// Where data/fetch_corpus.sh cannot make data.train's files, it does not run: another folder (a bare file name is
// one: the current folder's), or a file name the corpus lacks.
TEST(EnsureData, CorpusModeRefusesWhatTheCorpusCannotMake) {
    test::TempDir cache;
    test::ScopedEnv env("SINKLAB_CACHE", cache.path());
    DataConfig d;
    d.tokenizer = "bytes";
    d.missing = "corpus";
    for (const std::string& elsewhere :
         {cache / "elsewhere/train_*.bin", cache / "shards/corpus-bytes/tran_*.bin", std::string("train_*.bin")}) {
        d.train = elsewhere;
        testing::internal::CaptureStderr();
        try {
            ensure_data(d, ModelConfig{});
            ADD_FAILURE() << "no error for " << elsewhere;
        } catch (const Error& e) {
            const std::string msg = e.what();
            for (const std::string& part : {"no file matches data.train '" + elsewhere + "'",
                                            "builds the default corpus only as " + cache / "shards/corpus-bytes/" +
                                                "train_*.bin"})
                EXPECT_NE(msg.find(part), std::string::npos) << part << " in: " << msg;
        }
        EXPECT_EQ(testing::internal::GetCapturedStderr(), "") << "nothing ran for " << elsewhere;
    }
}

}  // namespace
}  // namespace sinklab
