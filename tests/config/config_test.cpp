// Config loading, validation and dumping. Expected values come from the brief and the presets' text, never
// from the loader: YAML files are written here by hand and read back; errors are matched on the parts a
// person needs (file, key, value, hint).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include "backend/backend.h"
#include "config/config.h"
#include "config/schema.h"
#include "config/suggest.h"
#include "config/validate.h"
#include "core/check.h"
#include "test_util.h"

namespace sinklab {
namespace {
namespace fs = std::filesystem;
using test::error_of;

const fs::path kConfigs = fs::path(SINKLAB_SOURCE_DIR) / "configs";

class ConfigTest : public ::testing::Test {
  protected:
    void SetUp() override {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        dir_ = fs::path(::testing::TempDir()) / fmt::format("sinklab_config_{}_{}", getpid(), info->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write(const std::string& name, const std::string& text) {
        const fs::path p = dir_ / name;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
        return p.string();
    }

    fs::path dir_;
};

void expect_has(const std::string& message, std::initializer_list<std::string> parts) {
    for (const std::string& part : parts)
        EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' missing from: " << message;
}

// Loads one file of `text` and returns the error it causes.
class ConfigErrorTest : public ConfigTest {
  protected:
    std::string load_error(const std::string& text, const std::vector<std::string>& overrides = {}) {
        const std::string file = write("cfg.yaml", text);
        return error_of([&] { load_config(file, overrides); });
    }
};

// ------------------------------------------------------------------------------------------- errors

TEST_F(ConfigErrorTest, UnknownKeySuggestsTheClosestKey) {
    expect_has(load_error("model:\n  d_model: 256\n  n_haed: 4\n"),
               {"cfg.yaml:3", "model.n_haed", "'4'", "did you mean model.n_head?"});
    // A right name in the wrong section, and a section name misspelt.
    expect_has(load_error("training:\n  lr: 0.1\n"), {"cfg.yaml:2", "training.lr", "'0.1'", "train.lr"});
    expect_has(load_error("d_model: 64\n"), {"cfg.yaml:1", "'d_model'", "'64'", "model.d_model"});
    expect_has(load_error("modle:\n  seq_len: 64\n"), {"modle.seq_len", "did you mean model.seq_len?"});
    expect_has(load_error("train:\n  warmup: 10\n"), {"train.warmup", "did you mean train.warmup_steps?"});
    expect_has(load_error("zzzz:\n  qqqq: 1\n"), {"zzzz.qqqq", "no key is close"});
}

TEST_F(ConfigErrorTest, ValueWhereASectionBelongs) {
    expect_has(load_error("model: 5\n"), {"cfg.yaml:1", "model", "section", "'5'", "model.vocab_size"});
}

TEST_F(ConfigErrorTest, WrongTypes) {
    expect_has(load_error("model:\n  d_model: abc\n"),
               {"cfg.yaml:2", "model.d_model: expected an integer, got 'abc'", "768"});
    expect_has(load_error("model:\n  n_layer: 3.5\n"), {"model.n_layer: expected an integer, got '3.5'"});
    expect_has(load_error("train:\n  lr: fast\n"), {"cfg.yaml:2", "train.lr: expected a number, got 'fast'"});
    expect_has(load_error("train:\n  lr: .nan\n"), {"train.lr", "'.nan'"});
    expect_has(load_error("attention:\n  qk_norm: maybe\n"), {"attention.qk_norm: expected true or false", "'maybe'"});
    expect_has(load_error("intervention:\n  isolate: 3\n"), {"intervention.isolate: expected a list", "'3'"});
    expect_has(load_error("intervention:\n  isolate: [3, x]\n"), {"intervention.isolate", "[3, x]"});
    expect_has(load_error("model:\n  d_model: [1, 2]\n"), {"model.d_model", "a list [1, 2]"});
    expect_has(load_error("model:\n  d_model:\n    x: 1\n"), {"model.d_model", "a map"});
    expect_has(load_error("run:\n  seed: -1\n"), {"run.seed", "non-negative integer", "'-1'"});
    expect_has(load_error("model:\n  d_model: 99999999999\n"), {"model.d_model", "99999999999", "too large"});
    expect_has(load_error("train:\n  lr: 1e-400\n"), {"train.lr", "1e-400 is too close to 0", "write 0 or a larger"});
    // 0 is no way out where the key must be above it.
    expect_has(load_error("model:\n  rope_theta: 1e-300\n"), {"model.rope_theta", "write a larger value (> 0)"});
    expect_has(load_error("train:\n  lr: \"fa\\nst\"\n"), {"got 'fa\\x0ast'"});  // one line: error_of checks
    // A long value is shown by its start and its length, not whole.
    const std::string message = load_error("train:\n  lr: " + std::string(100000, 'a') + "\n");
    expect_has(message, {"train.lr: expected a number, got 'aaaa", "... (100000 characters)'"});
    EXPECT_LT(message.size(), 300u) << message;
}

TEST_F(ConfigErrorTest, OutOfRange) {
    expect_has(load_error("train:\n  beta2: 1.0\n"), {"cfg.yaml:2", "train.beta2", "1 is out of range", "[0, 1)"});
    expect_has(load_error("model:\n  n_layer: 0\n"), {"model.n_layer", "0 is out of range", ">= 1"});
    expect_has(load_error("model:\n  norm_eps: 0\n"), {"model.norm_eps", "> 0"});
    expect_has(load_error("run:\n  name: \"\"\n"), {"cfg.yaml:2", "run.name", "must not be empty"});
    expect_has(load_error("attention:\n  ds_scratch_mib: -1\n"), {"attention.ds_scratch_mib", ">= 0"});
    expect_has(load_error("run:\n  threads: 100000\n"), {"run.threads", "100000 is out of range", "[0, 1024]"});
    expect_has(load_error("metrics:\n  wo_std_positions: 0\n"), {"metrics.wo_std_positions", "0 is out of range"});
}

TEST_F(ConfigErrorTest, RunNameMustBeAPlainFolderName) {
    // Each would put the run elsewhere than in a folder of its own under run.out_dir (--overwrite of "." once
    // deleted the other runs there), or is a folder name that shell commands and job scripts trip over.
    for (const std::string name : {".", "..", "../escaped", "/abs/path", "a/b", "a b", "x ", ".hidden"}) {
        expect_has(load_error("run:\n  name: \"" + name + "\"\n"),
                   {"cfg.yaml:2", "run.name", "'" + name + "'", "not a usable folder name", "no spaces or slashes"});
    }
    for (const std::string name : {".", "../escaped", "/abs/path", "a b"})
        expect_has(load_error("{}\n", {"run.name=" + name}), {"--set", "run.name", "'" + name + "'"});
    const std::string ok = write("ok.yaml", "run:\n  name: x-s1.b_c+d\n");
    EXPECT_EQ(load_config(ok).run.name, "x-s1.b_c+d");
    // At most a file system's 255 bytes; 200,000 characters once overflowed the stack of the name's check.
    EXPECT_EQ(load_config(write("long.yaml", "run:\n  name: " + std::string(255, 'n') + "\n")).run.name.size(), 255u);
    for (size_t length : {256, 200000})
        expect_has(load_error("run:\n  name: " + std::string(length, 'n') + "\n"),
                   {"run.name", "not a usable folder name", "at most 255"});
}

TEST_F(ConfigErrorTest, BadEnumListsTheAllowedValues) {
    expect_has(load_error("train:\n  schedule: cosin\n"),
               {"cfg.yaml:2", "train.schedule", "'cosin'", "cosine, wsd, constant, linear"});
    expect_has(load_error("backend: gpu\n"), {"cfg.yaml:1", "backend", "'gpu'", "auto, cpu, cuda"});
}

TEST_F(ConfigErrorTest, InconsistentShapes) {
    expect_has(load_error("model:\n  d_model: 100\n  n_head: 12\n"),
               {"model.d_model=100 (", "cfg.yaml:2", "model.n_head=12", "cfg.yaml:3"});
    expect_has(load_error("model:\n  n_kv_head: 5\n"), {"model.n_head=12 (default)", "model.n_kv_head=5"});
    // 36 / 12 = 3 channels per head: RoPE needs pairs.
    expect_has(load_error("model:\n  d_model: 36\n"), {"head_dim", "3", "odd", "model.d_model=36"});
    // 1536 / 6 = 256 channels per head: more than any attention kernel takes (found by the first step, after an
    // --overwrite start had already removed the old run).
    expect_has(load_error("model:\n  d_model: 1536\n  n_head: 6\n  n_kv_head: 6\n"),
               {"head_dim", "256", "128", "model.d_model=1536", "model.n_head=6"});
    expect_has(load_error("train:\n  tokens_per_step: 1000\n"),
               {"train.tokens_per_step=1000", "4096", "train.micro_batch=4", "model.seq_len=1024"});
    expect_has(load_error("model:\n  vocab_size: 300\ndata:\n  tokenizer: gpt2\n"),
               {"model.vocab_size=300", "data.tokenizer=\"gpt2\"", "50257"});
}

TEST_F(ConfigErrorTest, ScheduleOrder) {
    expect_has(load_error("train:\n  max_steps: 100\n  warmup_steps: 200\n"),
               {"train.warmup_steps=200", "train.max_steps=100", "cfg.yaml:3"});
    expect_has(load_error("train:\n  lr: 1e-4\n  min_lr: 1e-3\n"), {"train.min_lr=0.001", "train.lr=0.0001"});
    // A decay that would end inside the warmup.
    expect_has(load_error("train:\n  max_steps: 100\n  warmup_steps: 20\n  decay_steps: 20\n"),
               {"train.decay_steps=20", "train.warmup_steps=20", "decay_steps > warmup_steps"});
    expect_has(load_error("train:\n  max_steps: 100\n  warmup_steps: 20\n  schedule: wsd\n  wsd_decay_frac: 0.9\n"),
               {"train.wsd_decay_frac=0.9", "last 90 of", "train.max_steps=100", "train.warmup_steps=20"});
}

TEST_F(ConfigErrorTest, VariantGrammar) {
    for (const char* bad : {"headnorm+sigmoid+sink_logit", "headnorm+headnorm", "standard+gated", "fancy",
                            "headnorm+", "Headnorm"}) {
        expect_has(load_error(fmt::format("attention:\n  variant: \"{}\"\n", bad)),
                   {"cfg.yaml:2", "attention.variant", bad, "sink_logit, off_by_one, sigmoid"});
    }
    // A part in other letters is named with the part it likely meant; an unknown one is not.
    expect_has(load_error("attention:\n  variant: \"HeadNorm+Gated\"\n"),
               {"'HeadNorm' is not a part (parts are lower case: 'headnorm')"});
    EXPECT_EQ(load_error("attention:\n  variant: fancy\n").find("lower case"), std::string::npos);
}

TEST_F(ConfigErrorTest, InterventionPositions) {
    expect_has(load_error("intervention:\n  isolate: [3, 1024]\n"),
               {"intervention.isolate=[3, 1024]", "1024 is outside [0, 1024)", "model.seq_len=1024"});
    expect_has(load_error("intervention:\n  isolate: [-1]\n"), {"intervention.isolate", "-1 is outside"});
    expect_has(load_error("intervention:\n  isolate: [5, 5]\n"), {"intervention.isolate", "5", "twice"});
    expect_has(load_error("intervention:\n  amplify:\n    position: 2\n    layers: [0, 12]\n"),
               {"intervention.amplify.layers=[0, 12]", "12 is outside [0, 12)", "model.n_layer=12"});
    expect_has(load_error("intervention:\n  amplify:\n    position: 1024\n    layers: [0]\n"),
               {"intervention.amplify.position=1024", "model.seq_len=1024"});
    expect_has(load_error("intervention:\n  amplify:\n    position: 3\n"),
               {"intervention.amplify.position=3", "intervention.amplify.layers=[]"});
    expect_has(load_error("intervention:\n  amplify: {position: 0, layers: [1], mode: centered_causal}\n"),
               {"intervention.amplify.position=0", "intervention.amplify.mode=\"centered_causal\"",
                "leaves token 0's W_O input as it is", "mode scale"});
}

TEST_F(ConfigErrorTest, IsolateListLongerThanTheKernelsTake) {
    // Before: refused only once the model was built, as "at most 16 rows", without the value or its origin.
    std::string rows;
    for (int k = 0; k <= AttnSpec::kMaxIsolate; k++) rows += fmt::format("{}{}", k ? ", " : "", k);
    expect_has(load_error("intervention:\n  isolate: [" + rows + "]\n"),
               {"intervention.isolate=[0, 1,", "cfg.yaml:2",
                fmt::format("lists {} positions", AttnSpec::kMaxIsolate + 1),
                fmt::format("at most {}", AttnSpec::kMaxIsolate)});
    rows = rows.substr(0, rows.rfind(','));
    EXPECT_EQ(load_config(write("ok.yaml", "intervention:\n  isolate: [" + rows + "]\n")).intervention.isolate.size(),
              size_t(AttnSpec::kMaxIsolate));
}

TEST_F(ConfigErrorTest, SizesBeyondSixtyFourBitCounts) {
    // Before: sinklab info printed negative parameter counts (d_model) and 4e18 tokens per step (micro_batch x
    // seq_len) and exited 0.
    expect_has(load_error("model:\n  d_model: 2000000000\n  n_head: 1\n"),
               {"model.d_model=2000000000 (", "cfg.yaml:2)", "model.n_layer=12", "weights", "2^50", "lower them"});
    expect_has(load_error("model:\n  vocab_size: 2000000000\n  d_model: 1048576\n  n_head: 8\n"),
               {"model.vocab_size=2000000000", "model.d_model=1048576", "weights"});
    expect_has(load_error("train:\n  micro_batch: 2000000000\nmodel:\n  seq_len: 2000000000\n"),
               {"train.micro_batch=2000000000 (", "cfg.yaml:2)", "model.seq_len=2000000000 (", "cfg.yaml:4)",
                "activations"});
    // Too large for any machine yet countable: refused later, when the memory is not there.
    const Config big =
        load_config(write("big.yaml", "model:\n  d_ff: 2147483647\n  d_model: 16384\n  n_head: 128\n  n_layer: 1\n"));
    EXPECT_EQ(big.model.d_ff, 2147483647);
}

TEST_F(ConfigErrorTest, SizesBeyondTheCudaKernels) {
    // Before: accepted, then the first attention launch failed (grid z above 65535), or the first norm backward did
    // (its gain sums in shared memory), after a whole forward pass.
    const std::string tiny = "model:\n  seq_len: 16\nmetrics:\n  wo_std_positions: 16\n";
    expect_has(load_error(tiny + fmt::format("train:\n  micro_batch: {}\n", kMaxMicroBatch + 1)),
               {fmt::format("train.micro_batch={} (", kMaxMicroBatch + 1), "cfg.yaml:6)",
                fmt::format("the {} a CUDA kernel's grid holds", kMaxMicroBatch)});
    EXPECT_EQ(load_config(write("b.yaml", tiny + fmt::format("train:\n  micro_batch: {}\n", kMaxMicroBatch)))
                  .train.micro_batch,
              kMaxMicroBatch);
    // The attention kernels' tiles go on a grid's y (kernels/cuda/attention.cuh, tile_grid).
    const std::string one = "model:\n  n_layer: 1\n  d_model: 64\n  n_head: 1\n  seq_len: ";
    expect_has(load_error(one + std::to_string(kMaxSeqLen + 1) + "\n"),
               {fmt::format("model.seq_len={} (", kMaxSeqLen + 1), "cfg.yaml:5)",
                fmt::format("the {} a CUDA attention grid holds", kMaxSeqLen)});
    EXPECT_EQ(load_config(write("t.yaml", one + std::to_string(kMaxSeqLen) + "\n")).model.seq_len, kMaxSeqLen);
    const int C = kMaxNormChannels;  // 192 heads of 128
    expect_has(load_error(fmt::format("model:\n  d_model: {}\n  n_head: {}\n  n_layer: 1\n", C + 128, C / 128 + 1)),
               {fmt::format("model.d_model={} (", C + 128), fmt::format("the {} the CUDA norm backward", C)});
    const std::string wide = fmt::format("model:\n  d_model: {}\n  n_head: {}\n  n_layer: 1\n", C / 2, C / 256);
    EXPECT_EQ(load_config(write("w.yaml", wide + "attention:\n  qk_norm: true\n")).model.d_model, C / 2);
    EXPECT_EQ(load_config(write("c.yaml", fmt::format("model:\n  d_model: {}\n  n_head: {}\n  n_layer: 1\n", C,
                                                      C / 128)))
                  .model.d_model,
              C);
    // QK-norm normalizes q and k heads together: 2 d_model channels with a key head per query head.
    const std::string wider =
        fmt::format("model:\n  d_model: {}\n  n_head: {}\n  n_layer: 1\n", C / 2 + 128, C / 256 + 1);
    expect_has(load_error(wider + "attention:\n  qk_norm: true\n"),
               {"attention.qk_norm=true (", fmt::format("= {} channels", C + 256), "model.n_kv_head=0",
                "attention.qk_norm: false"});
    EXPECT_EQ(load_config(write("g.yaml", wider + "  n_kv_head: 1\nattention:\n  qk_norm: true\n")).model.n_kv_head,
              1);
}

TEST_F(ConfigErrorTest, CudnnRunsOnlyStandardAndHeadnorm) {
    expect_has(load_error("attention:\n  impl: cudnn\n  variant: headnorm+gated\n"),
               {"attention.impl=\"cudnn\"", "attention.variant=\"headnorm+gated\"", "cfg.yaml:3", "sinklab"});
    expect_has(load_error("attention:\n  impl: cudnn\n  variant: sigmoid\n"), {"attention.variant=\"sigmoid\""});
    expect_has(load_error("attention:\n  impl: cudnn\nintervention:\n  isolate: [4]\n"),
               {"attention.impl", "intervention.isolate=[4]"});
    expect_has(load_error("attention:\n  impl: cudnn\nprecision:\n  compute: fp32\n"),
               {"attention.impl=\"cudnn\"", "precision.compute=\"fp32\"", "bf16 only"});
    expect_has(load_error("attention:\n  impl: cudnn\nmodel:\n  d_model: 240\n  n_head: 20\n"),
               {"attention.impl=\"cudnn\"", "multiple of 8", "it is 12", "model.n_head=20"});
    const std::string ok = write("ok.yaml", "attention:\n  impl: cudnn\n  variant: headnorm\n");
    EXPECT_EQ(load_config(ok).attention.impl, "cudnn");
}

TEST_F(ConfigErrorTest, WgmmaRunsBf16AndHeadDim64Only) {
    expect_has(load_error("attention:\n  impl: sinklab_wgmma\nprecision:\n  compute: fp32\n"),
               {"attention.impl=\"sinklab_wgmma\"", "precision.compute=\"fp32\"", "bf16 only"});
    expect_has(load_error("attention:\n  impl: sinklab_wgmma\nmodel:\n  d_model: 256\n  n_head: 2\n"),
               {"attention.impl=\"sinklab_wgmma\"", "it is 128", "model.d_model=256", "attention.impl: sinklab"});
    const std::string ok = write("ok.yaml", "attention:\n  impl: sinklab_wgmma\nmodel:\n  d_model: 256\n  n_head: 4\n");
    EXPECT_EQ(load_config(ok).attention.impl, "sinklab_wgmma");
}

TEST_F(ConfigErrorTest, MetricPositions) {
    expect_has(load_error("model:\n  seq_len: 64\nmetrics:\n  positions: [0, 64]\n  wo_std_positions: 8\n"),
               {"metrics.positions=[0, 64]", "cfg.yaml:4", "64 is outside [0, 64)"});
    expect_has(load_error("model:\n  seq_len: 32\n"), {"metrics.wo_std_positions=64 (default)", "model.seq_len=32"});
    // At most 32 tracked positions: 0, metrics.positions and the interventions' together, repeats counted once.
    std::string positions = "1";
    for (int p = 2; p <= 30; p++) positions += ", " + std::to_string(p);
    const std::string tracked = "metrics:\n  positions: [" + positions + "]\nintervention:\n  isolate: [30, 31";
    EXPECT_NO_THROW(load_config(write("ok.yaml", tracked + "]\n")));
    expect_has(load_error(tracked + ", 40]\n"),
               {"metrics.positions=[1, 2,", "cfg.yaml:2", "intervention.isolate=[30, 31, 40] (", "cfg.yaml:4)",
                "track 33 key positions; at most 32"});
}

TEST_F(ConfigErrorTest, MissingFileAndSyntax) {
    expect_has(error_of([&] { load_config((dir_ / "nope.yaml").string()); }), {"nope.yaml", "not found"});
    ASSERT_EQ(mkfifo((dir_ / "pipe.yaml").c_str(), 0600), 0);  // would block a reader that opened it
    expect_has(error_of([&] { load_config((dir_ / "pipe.yaml").string()); }), {"pipe.yaml", "not a regular file"});
    expect_has(load_error("inherit: parent.yaml\n"), {"parent.yaml", "not found", "inherited by", "cfg.yaml:1"});
    expect_has(load_error("model:\n  d_model: 64\n  n_head: [1, 2\n"), {"cfg.yaml:", "YAML syntax error"});
    // The line yaml-cpp blames must be one of the two lines of the broken flow sequence.
    const std::string msg = load_error("run:\n  name: x\nmodel:\n  n_head: [1, 2\n  d_model: 64\n");
    EXPECT_TRUE(msg.find("cfg.yaml:4") != std::string::npos || msg.find("cfg.yaml:5") != std::string::npos) << msg;
    expect_has(load_error("model:\n  d_model: 1\n  d_model: 2\n"), {"cfg.yaml:3", "model.d_model", "twice"});
    expect_has(load_error("- 1\n- 2\n"), {"cfg.yaml", "top level", "a list [1, 2]"});
}

TEST_F(ConfigErrorTest, SecondYamlDocumentIsRefused) {
    // Before: the second document's lr 5 was dropped without a word and lr stayed 0.001.
    expect_has(load_error("train:\n  lr: 1e-3\n---\ntrain:\n  lr: 5\n"),
               {"cfg.yaml", "2 YAML documents", "'---'", "merge"});
    write("parent.yaml", "model:\n  n_head: 8\n---\nmodel:\n  n_head: 4\n");
    expect_has(load_error("inherit: parent.yaml\n"), {"parent.yaml", "2 YAML documents"});
    // A leading '---' only opens the one document.
    EXPECT_EQ(load_config(write("lead.yaml", "---\ntrain:\n  lr: 2e-3\n")).train.lr, 2e-3f);
    // A trailing '---' (as YAML writers leave) starts a document that holds nothing to lose, as in a suite file.
    EXPECT_EQ(load_config(write("trail.yaml", "train:\n  lr: 3e-3\n---\n")).train.lr, 3e-3f);
    expect_has(load_error("---\n---\n"), {"cfg.yaml", "empty"});
}

TEST_F(ConfigErrorTest, OneKeySpelledDottedAndNestedIsRefused) {
    // Before: the later spelling won silently.
    expect_has(load_error("train.lr: 5e-3\ntrain:\n  lr: 1e-3\n"),
               {"cfg.yaml:3: train.lr", "twice", "(also at ", "cfg.yaml:1)", "keep one"});
    expect_has(load_error("train:\n  lr: 1e-3\ntrain.lr: 5e-3\n"), {"cfg.yaml:3: train.lr", "cfg.yaml:2)"});
    expect_has(load_error("intervention:\n  amplify.position: 1\n  amplify:\n    position: 2\n"),
               {"cfg.yaml:4: intervention.amplify.position", "twice", "cfg.yaml:2)"});
    // One dotted spelling alone is fine, and so is a child setting what its parent set.
    EXPECT_EQ(load_config(write("dotted.yaml", "train.lr: 5e-3\n")).train.lr, 5e-3f);
    write("parent.yaml", "train.lr: 5e-3\n");
    EXPECT_EQ(load_config(write("child.yaml", "inherit: parent.yaml\ntrain:\n  lr: 1e-3\n")).train.lr, 1e-3f);
}

TEST_F(ConfigErrorTest, EmptyFileIsRefused) {
    // Before: the defaults were taken, and the run failed later on data.train ''.
    expect_has(load_error(""), {"cfg.yaml: the file is empty", "configs/base.yaml"});
    expect_has(load_error("# every key commented out\n# train:\n#   lr: 1e-3\n"), {"cfg.yaml", "empty"});
    write("blank.yaml", "\n");
    expect_has(load_error("inherit: blank.yaml\n"), {"blank.yaml", "empty"});
    // A file that only inherits is not empty.
    write("parent.yaml", "model:\n  n_head: 8\n");
    EXPECT_EQ(load_config(write("child.yaml", "inherit: parent.yaml\n")).model.n_head, 8);
}

TEST_F(ConfigErrorTest, FolderInsteadOfAFile) {
    const std::string folder = write("sub/x.yaml", "model:\n  n_head: 8\n");
    expect_has(error_of([&] { load_config(fs::path(folder).parent_path().string()); }),
               {"sub", "is a folder", "YAML file"});
    expect_has(load_error("inherit: sub\n"), {"sub", "(inherited by ", "cfg.yaml:1", "is a folder", "YAML file"});
}

// ------------------------------------------------------------------------------------------- inherit

TEST_F(ConfigTest, InheritDeepMergesChildOverParent) {
    write("parent.yaml", "model:\n  d_model: 256\n  n_head: 4\ntrain:\n  lr: 2e-3\n  min_lr: 1e-5\n");
    const std::string child = write("sub/child.yaml", "inherit: ../parent.yaml\nmodel:\n  n_head: 8\n");
    const std::string grandchild = write("grandchild.yaml", "inherit: sub/child.yaml\ntrain:\n  min_lr: 2e-5\n");
    const Config c = load_config(grandchild);
    EXPECT_EQ(c.model.d_model, 256);  // parent
    EXPECT_EQ(c.model.n_head, 8);     // child over parent, sibling keys kept
    EXPECT_EQ(c.train.lr, 2e-3f);     // parent
    EXPECT_EQ(c.train.min_lr, 2e-5f);  // grandchild
    EXPECT_EQ(c.model.n_layer, 12);   // default
    EXPECT_EQ(c.source, grandchild);
    EXPECT_EQ(load_config(child).train.min_lr, 1e-5f);
}

TEST_F(ConfigTest, MessagesNameTheFileEachValueCameFrom) {
    write("parent.yaml", "model:\n  d_model: 100\n  n_layer: x\n");
    const std::string child = write("child.yaml", "inherit: parent.yaml\nmodel:\n  n_head: 12\n");
    expect_has(error_of([&] { load_config(child); }), {"parent.yaml:3", "model.n_layer"});
    const std::string fixed = write("fixed.yaml", "inherit: parent.yaml\nmodel:\n  n_layer: 2\n  n_head: 12\n");
    expect_has(error_of([&] { load_config(fixed); }),
               {"model.d_model=100 (" + (dir_ / "parent.yaml").string() + ":2)",
                "model.n_head=12 (" + (dir_ / "fixed.yaml").string() + ":4)"});
}

TEST_F(ConfigTest, InheritCycleIsReported) {
    write("a.yaml", "inherit: b.yaml\n");
    write("b.yaml", "inherit: c.yaml\n");
    const std::string c = write("c.yaml", "inherit: a.yaml\n");
    expect_has(error_of([&] { load_config(c); }), {"cycle", "c.yaml -> a.yaml -> b.yaml -> c.yaml"});
    const std::string self = write("self.yaml", "inherit: ./self.yaml\n");
    expect_has(error_of([&] { load_config(self); }), {"cycle", "self.yaml -> self.yaml"});
    const std::string bad = write("bad.yaml", "inherit: [a.yaml]\n");
    expect_has(error_of([&] { load_config(bad); }), {"bad.yaml:1", "inherit"});
}

// ------------------------------------------------------------------------------------------- --set

TEST_F(ConfigTest, OverridesApplyAfterTheFiles) {
    const std::string file = write("cfg.yaml", "model:\n  d_model: 256\n  n_head: 4\nrun:\n  name: file\n");
    const Config c = load_config(file, {"model.d_model=512", "intervention.isolate=[3,7]", "run.out_dir = a=b",
                                        "data.val=", "attention.qk_norm=true", "metrics.positions=[0, 1, 2]"});
    EXPECT_EQ(c.model.d_model, 512);
    EXPECT_EQ(c.model.n_head, 4);
    EXPECT_EQ(c.intervention.isolate, (std::vector<int>{3, 7}));
    EXPECT_EQ(c.run.out_dir, "a=b");
    EXPECT_EQ(c.data.val, "");
    EXPECT_TRUE(c.attention.qk_norm);
    EXPECT_EQ(c.metrics.positions, (std::vector<int>{0, 1, 2}));
    // Text that is not YAML (a leading * reads as an alias) is taken as it is.
    EXPECT_EQ(load_config(file, {"data.train=*.bin"}).data.train, "*.bin");
    // A whole section as a flow map, and the last override of a key wins.
    const Config d = load_config(file, {"model={d_model: 64, n_head: 2}", "model.n_head=4"});
    EXPECT_EQ(d.model.d_model, 64);
    EXPECT_EQ(d.model.n_head, 4);
}

TEST_F(ConfigTest, OverrideErrors) {
    const std::string file = write("cfg.yaml", "model:\n  d_model: 256\n");
    auto err = [&](const std::string& o) { return error_of([&] { load_config(file, {o}); }); };
    expect_has(err("model.d_modle=512"), {"--set", "model.d_modle", "'512'", "did you mean model.d_model?"});
    expect_has(err("model.d_model=abc"), {"--set", "model.d_model: expected an integer, got 'abc'"});
    expect_has(err("model.d_model"), {"--set", "model.d_model", "missing '='"});
    expect_has(err("=5"), {"--set", "not a key path"});
    expect_has(err("intervention.isolate=[3,7"), {"--set", "intervention.isolate", "expected a list", "'[3,7'"});
    expect_has(err("model=5"), {"--set", "model", "section"});
    expect_has(err("model.n_head=7"), {"model.d_model=256 (", "cfg.yaml:2", "model.n_head=7 (--set)"});
}

// ------------------------------------------------------------------------------------------- presets

// Every "a.b.c" key path of a YAML file, read here without the loader: maps are sections, anything else a value.
void key_paths(const YAML::Node& node, const std::string& prefix, std::set<std::string>& out) {
    for (const auto& kv : node) {
        const std::string path = prefix.empty() ? kv.first.Scalar() : prefix + "." + kv.first.Scalar();
        if (kv.second.IsMap()) key_paths(kv.second, path, out);
        else out.insert(path);
    }
}

std::set<std::string> schema_paths() {
    std::set<std::string> paths;
    for (const config::Field& f : config::schema()) paths.emplace(f.path);
    return paths;
}

TEST(ConfigPresets, BaseListsEverySchemaKeyAndTheDefaults) {
    std::set<std::string> in_base;
    key_paths(YAML::LoadFile((kConfigs / "base.yaml").string()), "", in_base);
    EXPECT_EQ(in_base, schema_paths());
    Config loaded = load_config((kConfigs / "base.yaml").string());
    loaded.source = "";
    EXPECT_EQ(loaded, Config{});
    EXPECT_NO_THROW(validate_config(Config{}));
}

TEST(ConfigPresets, EveryKeyLineHasAComment) {
    const std::regex key_line(R"(^\s*[A-Za-z_]+:)");
    for (const char* name :
         {"base.yaml", "tiny.yaml", "tiny-synthetic.yaml", "llama-152m.yaml", "llama-152m-headnorm.yaml"}) {
        std::ifstream in(kConfigs / name);
        ASSERT_TRUE(in) << name;
        int keys = 0;
        for (std::string line; std::getline(in, line);) {
            if (!std::regex_search(line, key_line)) continue;
            keys++;
            const bool is_section = line.find_first_not_of(" :", line.find(':')) == std::string::npos;
            EXPECT_TRUE(is_section || line.find('#') != std::string::npos) << name << ": " << line;
        }
        EXPECT_GT(keys, 3) << name;
    }
}

TEST(ConfigPresets, TinyIsTheCpuModelOfTheBrief) {
    const Config c = load_config((kConfigs / "tiny.yaml").string());
    EXPECT_EQ(c.model.vocab_size, 264);
    EXPECT_EQ(c.model.vocab_size % 8, 0);
    EXPECT_EQ(c.model.d_model, 128);
    EXPECT_EQ(c.model.n_layer, 4);
    EXPECT_EQ(c.model.n_head, 4);
    EXPECT_EQ(c.model.d_ff, 384);
    EXPECT_EQ(c.model.seq_len, 256);
    EXPECT_EQ(c.train.micro_batch, 8);
    EXPECT_EQ(c.train.max_steps, 600);
    EXPECT_EQ(c.train.lr, 3e-3f);
    EXPECT_EQ(c.train.min_lr, 3e-4f);
    EXPECT_EQ(c.train.warmup_steps, 50);
    EXPECT_EQ(c.train.schedule, "cosine");
    EXPECT_EQ(c.metrics.val_every, 100);
    EXPECT_EQ(c.metrics.val_batches, 4);
    EXPECT_EQ(c.metrics.heavy_every, 100);
    EXPECT_EQ(c.backend, "cpu");
    EXPECT_EQ(c.data.train, ".cache/shards/corpus-bytes/train_*.bin");
    EXPECT_EQ(c.data.val, ".cache/shards/corpus-bytes/val_*.bin");
    EXPECT_EQ(c.data.tokenizer, "bytes");
    EXPECT_EQ(c.data.missing, "corpus");
    const Config syn = load_config((kConfigs / "tiny-synthetic.yaml").string());
    EXPECT_EQ(syn.data.train, ".cache/shards/synthetic/train_*.bin");
    EXPECT_EQ(syn.data.missing, "synthetic");
    EXPECT_EQ(syn.model, c.model);
    EXPECT_EQ(c.run.name, "tiny");
    EXPECT_EQ(c.run.out_dir, "runs");
    EXPECT_EQ(c.attention.variant, "headnorm");
    EXPECT_TRUE(c.attention.headnorm_on());
}

TEST(ConfigPresets, Llama152mIsThePapersSetup) {
    const Config c = load_config((kConfigs / "llama-152m.yaml").string());
    EXPECT_EQ(c.model.vocab_size, 50304);
    EXPECT_EQ(c.model.d_model, 768);
    EXPECT_EQ(c.model.n_layer, 12);
    EXPECT_EQ(c.model.n_head, 12);
    EXPECT_EQ(c.model.kv_heads(), 12);
    EXPECT_EQ(c.model.d_ff, 3072);
    EXPECT_EQ(c.model.seq_len, 4096);
    EXPECT_EQ(c.model.init_std, 0.02f);
    EXPECT_EQ(c.model.norm_eps, 1e-6f);
    EXPECT_EQ(c.model.rope_theta, 10000.f);
    EXPECT_EQ(c.train.beta1, 0.9f);
    EXPECT_EQ(c.train.beta2, 0.95f);
    EXPECT_EQ(c.train.weight_decay, 0.1f);
    EXPECT_EQ(c.train.grad_clip, 1.f);
    EXPECT_EQ(c.train.lr, 1e-3f);
    EXPECT_EQ(c.train.min_lr, 1e-4f);
    EXPECT_EQ(c.train.schedule, "cosine");
    EXPECT_EQ(c.train.warmup_steps, 2000);
    EXPECT_EQ(c.train.max_steps, 40000);
    EXPECT_EQ(c.train.micro_batch, 12);
    EXPECT_EQ(c.train.tokens_per_step, 12 * 4096 * 5 * 8);
    EXPECT_EQ(c.data.tokenizer, "gpt2");
    EXPECT_EQ(c.data.train, ".cache/shards/owt/train_*.bin");
    EXPECT_EQ(c.data.val, ".cache/shards/owt/val_*.bin");
    EXPECT_EQ(c.precision.compute, "bf16");
    EXPECT_EQ(c.backend, "auto");
    EXPECT_EQ(c.attention.variant, "standard");

    Config headnorm = load_config((kConfigs / "llama-152m-headnorm.yaml").string());
    EXPECT_TRUE(headnorm.attention.headnorm_on());
    headnorm.attention.variant = c.attention.variant;
    headnorm.run.name = c.run.name;
    headnorm.source = c.source;
    EXPECT_EQ(headnorm, c);  // nothing else differs
}

// ------------------------------------------------------------------------------------------- dump and hash

TEST_F(ConfigTest, DumpLoadRoundTripIsExact) {
    Config c;
    c.run.name = "true";
    c.run.out_dir = "we\"ird: #name\\ *x";
    c.run.seed = 18446744073709551557ull;
    c.run.threads = 3;
    c.model = {.vocab_size = 264, .d_model = 96, .n_layer = 3, .n_head = 6, .n_kv_head = 2, .d_ff = 250,
               .seq_len = 100, .rope_theta = 500000.f, .norm_eps = 1e-5f, .init_std = 0.0123456789f};
    c.attention.variant = "sink_logit+headnorm+gated";
    c.attention.qk_norm = true;
    c.attention.headnorm = {.gain = "shared", .init = "ones", .weight_decay = false, .eps = 3.3333333e-7f};
    c.attention.gate = "head";
    c.attention.sigmoid_bias = -4.6051702f;
    c.attention.sink_init = 0.1f;
    c.intervention.isolate = {3, 99};
    c.intervention.amplify = {.position = 7, .lambda = 30.f, .layers = {0, 2}, .mode = "scale"};
    c.data = {.train = "a/*.bin\tb\n\x7f", .val = "null", .tokenizer = "bytes", .missing = "corpus"};
    c.train.micro_batch = 5;
    c.train.tokens_per_step = 5 * 100 * 6;
    c.train.max_steps = 123456789012;
    c.train.lr = 0.1f;
    c.train.min_lr = 1.1754944e-38f;  // the smallest normal float
    c.train.warmup_steps = 10;
    c.train.schedule = "wsd";
    c.train.decay_steps = 17;
    c.train.wsd_decay_frac = 1.f / 3.f;
    c.train.beta2 = 0.99999994f;  // the largest float below 1
    c.train.eps = 1e-30f;
    c.train.grad_clip = 0.f;
    c.precision = {.compute = "fp32", .rounding = "stochastic"};
    c.metrics.positions = {0, 1, 50};
    c.metrics.wo_std_positions = 100;
    c.metrics.sink_eps = 0.7f;
    c.checkpoint = {.every = 50, .keep = 9};
    c.fault = {.nan_policy = "skip", .spike_zscore = 6.5f, .spike_window = 20, .check_every = 7};
    c.backend = "cuda";
    ASSERT_NO_THROW(validate_config(c));

    const std::string dumped = write("dumped.yaml", dump_config(c));
    const Config back = load_config(dumped);
    c.source = dumped;
    EXPECT_EQ(back, c) << dump_config(c);
    EXPECT_EQ(dump_config(back), dump_config(c));

    // The dump is plain YAML with every schema key.
    std::set<std::string> in_dump;
    key_paths(YAML::LoadFile(dumped), "", in_dump);
    EXPECT_EQ(in_dump, schema_paths());
}

TEST_F(ConfigTest, PresetsRoundTrip) {
    for (const char* name : {"tiny.yaml", "tiny-synthetic.yaml", "llama-152m.yaml", "llama-152m-headnorm.yaml"}) {
        Config c = load_config((kConfigs / name).string());
        const std::string dumped = write(name, dump_config(c));
        c.source = dumped;
        EXPECT_EQ(load_config(dumped), c) << name;
    }
}

uint64_t fnv1a(const std::string& s) {
    uint64_t h = 14695981039346656037ull;
    for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
    return h;
}

TEST(ConfigHash, IsFnv1aOfTheDumpAndSeesEveryKey) {
    ASSERT_EQ(fnv1a("a"), 0xaf63dc4c8601ec8cull);  // the published FNV-1a 64 test vector
    const Config base;
    EXPECT_EQ(config_hash(base), fnv1a(dump_config(base)));
    Config moved = base;
    moved.source = "elsewhere.yaml";
    EXPECT_EQ(config_hash(moved), config_hash(base));  // where it was read from is not a setting

    // Change each key in turn: the hash must change, so no key is missing from the dump.
    std::set<uint64_t> hashes = {config_hash(base)};
    for (const config::Field& f : config::schema()) {
        Config changed = base;
        std::visit(
            [&]<typename T>(const config::Ref<T>& ref) {
                T& v = ref.mut(changed);
                if constexpr (std::is_same_v<T, bool>) v = !v;
                else if constexpr (std::is_same_v<T, std::string>) v += "x";
                else if constexpr (std::is_same_v<T, std::vector<int>>) v.push_back(9);
                else v = v + 1;
            },
            f.ref);
        EXPECT_NE(changed, base) << f.path;
        EXPECT_TRUE(hashes.insert(config_hash(changed)).second) << f.path;
    }
}

// ------------------------------------------------------------------------------------------- schema, helpers

TEST(ConfigSchema, SectionsAreContiguousAndKeysUnique) {
    std::set<std::string> closed, keys;
    std::string current;
    for (const config::Field& f : config::schema()) {
        EXPECT_TRUE(keys.emplace(f.path).second) << f.path;
        EXPECT_FALSE(f.doc.empty()) << f.path;
        // Every enclosing section of this key must be open now, or never have been seen.
        const std::string path(f.path);
        for (size_t dot = path.find('.'); dot != std::string::npos; dot = path.find('.', dot + 1)) {
            const std::string section = path.substr(0, dot);
            const bool open = current.starts_with(section + ".");
            EXPECT_TRUE(open || !closed.count(section)) << section << " reopened at " << path;
        }
        for (size_t dot = current.find('.'); dot != std::string::npos; dot = current.find('.', dot + 1)) {
            const std::string section = current.substr(0, dot);
            if (!path.starts_with(section + ".")) closed.insert(section);
        }
        current = path;
    }
}

TEST(ConfigVariant, PartsOfTheVariant) {
    AttentionConfig a;
    EXPECT_FALSE(a.headnorm_on());
    EXPECT_FALSE(a.gated_on());
    EXPECT_EQ(a.score(), "softmax");
    a.variant = "sigmoid+headnorm";
    EXPECT_TRUE(a.headnorm_on());
    EXPECT_FALSE(a.gated_on());
    EXPECT_EQ(a.score(), "sigmoid");
    a.variant = "gated+off_by_one";
    EXPECT_FALSE(a.headnorm_on());
    EXPECT_TRUE(a.gated_on());
    EXPECT_EQ(a.score(), "off_by_one");
    a.variant = "headnorm+gated";
    EXPECT_TRUE(a.headnorm_on() && a.gated_on());
    EXPECT_EQ(a.score(), "softmax");
    a.variant = "sink_logit";
    EXPECT_EQ(a.score(), "sink_logit");
    a.variant = "sigmoid+sigmoid";
    expect_has(error_of([&] { a.score(); }), {"attention.variant", "sigmoid+sigmoid", "twice"});
}

TEST(ConfigSuggest, EditDistance) {
    EXPECT_EQ(config::edit_distance("kitten", "sitting"), 3);
    EXPECT_EQ(config::edit_distance("", "abc"), 3);
    EXPECT_EQ(config::edit_distance("lr", "lr"), 0);
    EXPECT_EQ(config::edit_distance("d_modle", "d_model"), 2);
}

TEST(ConfigValidate, CodeBuiltConfigsNameTheirSource) {
    Config c;
    c.model.n_head = 7;
    expect_has(error_of([&] { validate_config(c); }), {"model.d_model=768 (config built in code)", "model.n_head=7"});
    c.source = "my.yaml";
    expect_has(error_of([&] { validate_config(c); }), {"model.n_head=7 (my.yaml)"});
}

// Settings that change nothing the config computes get a note each; the same settings where they apply get none.
TEST(ConfigValidate, IneffectiveSettingsAreNamed) {
    Config c;
    EXPECT_TRUE(config::ineffective_settings(c).empty());
    c.attention.sigmoid_bias = -5.5f;
    c.attention.sink_init = 3.f;
    c.attention.gate = "head";
    c.attention.headnorm.gain = "shared";
    c.intervention.amplify.lambda = 10.f;
    c.intervention.isolate = {4, 0};
    const std::vector<std::string> notes = config::ineffective_settings(c);
    ASSERT_EQ(notes.size(), 6u);
    expect_has(notes[0], {"attention.sigmoid_bias = -5.5 has no effect", "'standard' has no sigmoid"});
    expect_has(notes[1], {"attention.sink_init = 3 has no effect", "no sink_logit"});
    expect_has(notes[2], {"attention.gate = head has no effect", "no gated"});
    expect_has(notes[3], {"attention.headnorm settings have no effect"});
    expect_has(notes[4], {"intervention.amplify is off (position -1)"});
    expect_has(notes[5], {"intervention.isolate lists 0"});

    c.attention.variant = "headnorm+gated+sigmoid";
    c.intervention.isolate = {4};
    c.intervention.amplify.position = 3;
    c.intervention.amplify.layers = {0};
    const std::vector<std::string> left = config::ineffective_settings(c);
    ASSERT_EQ(left.size(), 1u);
    expect_has(left[0], {"attention.sink_init = 3 has no effect"});
    c.intervention.amplify.lambda = 1.f;
    expect_has(config::ineffective_settings(c).back(), {"intervention.amplify.lambda = 1 leaves token 3's W_O input"});
}

// A training run with the centered amplification's mean over the whole sequence is told that token k then carries
// later tokens; eval (ineffective_settings) is not, and neither are the causal mean, plain scaling or lambda 1.
TEST(ConfigValidate, TrainingWithANonCausalMeanIsNoted) {
    Config c;
    c.model.seq_len = 256;
    c.intervention.amplify = {.position = 8, .lambda = 30.f, .layers = {0, 1}, .mode = "centered"};
    const std::vector<std::string> notes = config::training_notes(c);
    ASSERT_EQ(notes.size(), 1u);
    expect_has(notes[0], {"intervention.amplify.mode = centered", "all 256 positions", "token 8's W_O input carries "
                          "later tokens", "centered_causal takes mu over positions 0..8"});
    EXPECT_TRUE(config::ineffective_settings(c).empty());
    for (const char* mode : {"centered_causal", "scale"}) {
        c.intervention.amplify.mode = mode;
        EXPECT_TRUE(config::training_notes(c).empty()) << mode;
    }
    // At the last position the mean over all positions is the mean over those it sees.
    c.intervention.amplify.mode = "centered";
    c.intervention.amplify.position = 255;
    EXPECT_TRUE(config::training_notes(c).empty());
    c.intervention.amplify.position = 8;
    c.intervention.amplify.mode = "centered";
    c.intervention.amplify.lambda = 1.f;
    const std::vector<std::string> at_one = config::training_notes(c);
    ASSERT_EQ(at_one.size(), 1u);
    expect_has(at_one[0], {"intervention.amplify.lambda = 1 leaves token 8's W_O input"});
}

// Schedules that do not do what their keys suggest: no learning at all, a decay cut off by the end of the run, spike
// detection whose window outlasts the run. The base config's schedule gets no note, and neither do wsd's or
// constant's for decay_steps (which they do not use), or a run that is all warmup (short smoke runs are).
TEST(ConfigValidate, SchedulesThatDoNotDoWhatTheySuggestAreNoted) {
    Config c;
    EXPECT_TRUE(config::training_notes(c).empty());
    const auto note_of = [](const Config& edited) {
        const std::vector<std::string> notes = config::training_notes(edited);
        return notes.size() == 1 ? notes[0] : fmt::format("{} notes: {}", notes.size(), fmt::join(notes, " | "));
    };
    Config zero = c;
    zero.train.lr = zero.train.min_lr = 0;
    expect_has(note_of(zero), {"train.lr = 0", "the weights never change"});
    Config warm = c;
    warm.train.max_steps = warm.train.warmup_steps = 20;
    EXPECT_TRUE(config::training_notes(warm).empty());
    Config cut = c;
    cut.train.max_steps = 20;
    cut.train.warmup_steps = 2;
    cut.train.decay_steps = 1000;
    expect_has(note_of(cut), {"train.decay_steps = 1000 is beyond train.max_steps = 20", "above train.min_lr"});
    cut.train.schedule = "linear";
    expect_has(note_of(cut), {"its linear decay"});
    for (const char* other : {"wsd", "constant"}) {
        cut.train.schedule = other;
        EXPECT_TRUE(config::training_notes(cut).empty()) << other;
    }
    cut.train.schedule = "cosine";
    cut.train.decay_steps = 20;
    EXPECT_TRUE(config::training_notes(cut).empty());
    // Spike detection judges step W + 1 first: a run of W steps or fewer never is.
    cut.fault.spike_zscore = 6;
    cut.fault.spike_window = 20;
    expect_has(note_of(cut), {"fault.spike_window = 20 losses before it, but the run has 20 steps: no step is judged"});
    cut.fault.spike_window = 19;
    EXPECT_TRUE(config::training_notes(cut).empty());
}

// GPT-2's 50257 ids unpadded slow the LM head on a GPU; the note names the padded size.
TEST(ConfigValidate, AVocabNotAMultipleOf8IsNoted) {
    Config c;
    c.model.vocab_size = 50257;
    const std::vector<std::string> notes = config::training_notes(c);
    ASSERT_EQ(notes.size(), 1u);
    expect_has(notes[0], {"model.vocab_size = 50257 is not a multiple of 8", "pad it to 50264 (or 50304, a multiple "
                          "of 64"});
    for (int64_t padded : {50264, 50304, 264}) {
        c.model.vocab_size = padded;
        EXPECT_TRUE(config::training_notes(c).empty()) << padded;
    }
}

// So do the model's other GEMM widths: d_ff by LLaMA's 8/3 rule (2730 for 1024), a d_model of 6 heads of 18.
TEST(ConfigValidate, GemmWidthsNotAMultipleOf8AreNoted) {
    Config c;
    c.model.d_ff = 2730;
    std::vector<std::string> notes = config::training_notes(c);
    ASSERT_EQ(notes.size(), 1u);
    expect_has(notes[0], {"model.d_ff = 2730 is not a multiple of 8", "FFN's GEMMs", "pad it to 2736"});
    c.model.d_ff = 2736;
    EXPECT_TRUE(config::training_notes(c).empty());
    c.model.d_model = 6 * 18;
    c.model.n_head = 6;
    notes = config::training_notes(c);
    ASSERT_EQ(notes.size(), 1u);
    expect_has(notes[0], {"model.d_model = 108 is not a multiple of 8", "every GEMM", "model.n_head = 6"});
}

}  // namespace
}  // namespace sinklab
