// Suite files and their expansion into runs: names, overrides in the order they apply, the configs they give,
// and the errors a person sees for a bad suite (file, line, key). Suites are written here by hand.
#include "train/suite.h"

#include "ablation_fixture.h"
#include "config/config.h"
#include "train/sweep.h"

namespace sinklab::test {
namespace {

using Strings = std::vector<std::string>;

// A suite folder below a temporary root: <root>/exp/NAME.yaml and a base config <root>/configs/base.yaml that
// inherits the repository's tiny preset.
class SuiteTest : public ::testing::Test {
protected:
    void SetUp() override {
        write_file(root() / "configs/base.yaml", fmt::format("inherit: {}/configs/tiny.yaml\nrun:\n  out_dir: {}\n",
                                                             SINKLAB_SOURCE_DIR, (root() / "runs").string()));
    }
    fs::path root() const { return fs::path(dir_.path()); }
    std::string suite(const std::string& text, const std::string& name = "suite.yaml") {
        const fs::path p = root() / "exp" / name;
        write_file(p, text);
        return p.string();
    }
    TempDir dir_;
};

const char* kTwoByTwo = R"(# a comment
base: ../configs/base.yaml
name: hvb
seeds: [7, 3]
set:
  train.max_steps: 400
  metrics: {val_every: 20}
variants:
  - name: baseline
    set: {attention.variant: standard}
  - name: headnorm
    set:
      attention:
        variant: headnorm
        headnorm: {gain: shared}
      intervention.isolate: [3, 5]
)";

TEST_F(SuiteTest, ExpandsSeedsTimesVariantsWithOverridesInOrder) {
    const std::string path = suite(kTwoByTwo);
    const Suite s = load_suite(path);
    EXPECT_EQ(s.name, "hvb");
    EXPECT_EQ(s.base, (root() / "configs/base.yaml").string());  // relative to the suite file, not the cwd
    EXPECT_EQ(s.seeds, (std::vector<uint64_t>{7, 3}));

    const Sweep sw = expand_sweep(s, {"train.lr=0.002", "attention.qk_norm=true"});
    const std::string out = (root() / "runs/hvb").string();
    EXPECT_EQ(sw.out_dir, out);
    Strings names;
    for (const SweepRun& r : sw.runs) names.push_back(r.name);
    EXPECT_EQ(names, (Strings{"baseline-s7", "headnorm-s7", "baseline-s3", "headnorm-s3"}));

    const SweepRun& hn3 = sw.runs[3];
    EXPECT_EQ(hn3.variant, "headnorm");
    EXPECT_EQ(hn3.seed, 3u);
    EXPECT_EQ(hn3.overrides,
              (Strings{"train.max_steps=400", "metrics.val_every=20", "attention.variant=headnorm",
                       "attention.headnorm.gain=shared", "intervention.isolate=[3, 5]", "train.lr=0.002",
                       "attention.qk_norm=true", "run.out_dir=" + out, "run.name=headnorm-s3", "run.seed=3"}));
    EXPECT_EQ(hn3.dir, out + "/headnorm-s3");
    EXPECT_EQ(hn3.config.attention.variant, "headnorm");
    EXPECT_EQ(hn3.config.attention.headnorm.gain, "shared");
    EXPECT_EQ(hn3.config.intervention.isolate, (std::vector<int>{3, 5}));
    EXPECT_EQ(hn3.config.run.seed, 3u);
    EXPECT_EQ(hn3.config.train.max_steps, 400);
    EXPECT_FLOAT_EQ(hn3.config.train.lr, 0.002f);  // the command line's --set reaches every run
    EXPECT_TRUE(hn3.config.attention.qk_norm);
    EXPECT_EQ(hn3.config.model.d_model, 128);  // the rest comes from the base (tiny)

    const SweepRun& b7 = sw.runs[0];
    EXPECT_EQ(b7.config.attention.variant, "standard");
    EXPECT_EQ(b7.config.attention.headnorm.gain, "per_head");  // another variant's set: does not leak
    EXPECT_TRUE(b7.config.intervention.isolate.empty());
    EXPECT_TRUE(b7.config.attention.qk_norm);
    EXPECT_EQ(b7.config.run.name, "baseline-s7");
    EXPECT_EQ(b7.config.run.seed, 7u);
}

TEST_F(SuiteTest, CommandLineOverridesWinOverTheSuiteAndMoveTheOutputFolder) {
    const Sweep sw = expand_sweep(load_suite(suite(kTwoByTwo)),
                                  {"metrics.val_every=5", "run.out_dir=" + (root() / "elsewhere").string()});
    for (const SweepRun& r : sw.runs) EXPECT_EQ(r.config.metrics.val_every, 5) << r.name;
    EXPECT_EQ(sw.out_dir, (root() / "elsewhere/hvb").string());
    EXPECT_EQ(sw.runs[1].dir, (root() / "elsewhere/hvb/headnorm-s7").string());
}

TEST_F(SuiteTest, ValuesReadBackAsWritten) {
    const Sweep sw = expand_sweep(load_suite(suite(R"(base: ../configs/base.yaml
name: q
seeds: [1]
set: {data.train: "*.bin", attention.sigmoid_bias: -5.5}
variants:
  - {name: empty, set: {data.val: ""}}
  - {name: null-text, set: {data.val: "null"}}
  - {name: spaced, set: {data.val: " x"}}
  - {name: plain, set: {data.val: .cache/x/val_*.bin}}
  - {name: quoted-plain, set: {data.val: "a/b"}}
)")),
                                  {});
    EXPECT_EQ(sw.runs[0].overrides[0], "data.train=\"*.bin\"");  // an alias on its own
    EXPECT_EQ(sw.runs[0].overrides[1], "attention.sigmoid_bias=-5.5");
    EXPECT_EQ(sw.runs[0].config.data.train, "*.bin");
    EXPECT_FLOAT_EQ(sw.runs[0].config.attention.sigmoid_bias, -5.5f);
    // Quotes only where the text alone would read back as something else: nothing, null, trimmed.
    const Strings want_set{"data.val=\"\"", "data.val=\"null\"", "data.val=\" x\"", "data.val=.cache/x/val_*.bin",
                           "data.val=a/b"};
    const Strings want_val{"", "null", " x", ".cache/x/val_*.bin", "a/b"};
    ASSERT_EQ(sw.runs.size(), want_set.size());
    for (size_t i = 0; i < sw.runs.size(); i++) {
        EXPECT_EQ(sw.runs[i].overrides[2], want_set[i]) << sw.runs[i].name;
        EXPECT_EQ(sw.runs[i].config.data.val, want_val[i]) << sw.runs[i].name;
    }
}

TEST_F(SuiteTest, RunNamesSplitBackIntoVariantAndSeed) {
    EXPECT_EQ(run_name("headnorm", 12), "headnorm-s12");
    std::string variant;
    uint64_t seed = 0;
    ASSERT_TRUE(split_run_name("amplify-l30-s2", variant, seed));
    EXPECT_EQ(variant, "amplify-l30");
    EXPECT_EQ(seed, 2u);
    EXPECT_FALSE(split_run_name("tiny", variant, seed));
    EXPECT_FALSE(split_run_name("x-s", variant, seed));
    EXPECT_FALSE(split_run_name("-s3", variant, seed));
}

// Each bad suite: the error names the file (and the line where there is one) and the key.
TEST_F(SuiteTest, BadSuitesNameTheFileLineAndKey) {
    struct Case {
        const char* what;
        std::string text;
        Strings parts;
    };
    const std::string head = "base: ../configs/base.yaml\nname: s\nseeds: [1]\n";
    const Case cases[] = {
        {"unknown top-level key",
         head + "variants: [{name: a}]\nseed: 3\n",
         {"bad.yaml:5", "unknown key 'seed'", "variants"}},
        {"misspelt config key",
         head + "variants:\n  - name: a\n    set: {attention.varient: headnorm}\n",
         {"bad.yaml:6", "attention.varient", "did you mean attention.variant"}},
        {"a section as a value", head + "set: {attention: 3}\nvariants: [{name: a}]\n", {"bad.yaml:4", "attention"}},
        {"no name", "base: ../configs/base.yaml\nseeds: [1]\nvariants: [{name: a}]\n", {"bad.yaml", "name: missing"}},
        {"no variants", head, {"bad.yaml", "variants: missing"}},
        {"base not found",
         "base: nope.yaml\nname: s\nseeds: [1]\nvariants: [{name: a}]\n",
         {"bad.yaml:1", "base:", "nope.yaml", "relative to the suite file"}},
        {"bad seed",
         "base: ../configs/base.yaml\nname: s\nseeds: [1, x]\nvariants: [{name: a}]\n",
         {"bad.yaml:3", "seeds", "'x'"}},
        {"repeated seed",
         "base: ../configs/base.yaml\nname: s\nseeds: [2, 2]\nvariants: [{name: a}]\n",
         {"bad.yaml:3", "seeds", "2 appears twice"}},
        {"repeated variant", head + "variants: [{name: a}, {name: a}]\n", {"bad.yaml:4", "'a' appears twice"}},
        {"variant without name", head + "variants:\n  - set: {train.lr: 1}\n", {"bad.yaml:5", "no name"}},
        {"variant name like a run", head + "variants: [{name: a-s3}]\n", {"bad.yaml:4", "a-s3", "seed suffix"}},
        {"name with a slash",
         "base: ../configs/base.yaml\nname: a/b\nseeds: [1]\nvariants: [{name: a}]\n",
         {"bad.yaml:2", "name", "'a/b'"}},
        {"seed set by hand",
         head + "variants:\n  - name: a\n    set: {run.seed: 4}\n",
         {"bad.yaml:6", "run.seed", "seeds:"}},
        {"variant moves its folder",
         head + "variants:\n  - name: a\n    set: {run.out_dir: x}\n",
         {"bad.yaml:6", "run.out_dir", "suite-wide"}},
        {"key set twice",
         head + "variants:\n  - name: a\n    set: {attention.variant: gated, attention: {variant: sigmoid}}\n",
         {"bad.yaml:6", "attention.variant is set twice"}},
        {"YAML syntax", head + "variants: [{name: a}\n", {"bad.yaml:", "YAML syntax error"}},
        {"unknown variant key", head + "variants: [{name: a, sett: {}}]\n", {"bad.yaml:4", "'sett'", "name, set"}},
        {"slurm option", head + "variants: [{name: a}]\nslurm: {sbatch: [time=3]}\n", {"bad.yaml:5", "time=3"}},
        // yaml-cpp reads the first of a key written twice, and one document of several: neither may pass unseen.
        {"top-level key twice", head + "seeds: [2, 3]\nvariants: [{name: a}]\n", {"bad.yaml:4", "seeds", "twice"}},
        {"variant key twice",
         head + "variants:\n  - name: a\n    name: b\n",
         {"bad.yaml:6", "name: the key appears twice"}},
        {"second document",
         head + "variants: [{name: a}]\n---\nvariants: [{name: b}]\n",
         {"bad.yaml", "2 YAML documents"}},
        {"alias inside itself", head + "variants: [{name: a, set: &r {k: *r}}]\n", {"bad.yaml:4", "alias"}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.what);
        const std::string path = suite(c.text, "bad.yaml");
        const std::string msg = error_of([&] { load_suite(path); });
        for (const std::string& part : c.parts) EXPECT_NE(msg.find(part), std::string::npos) << part << " in: " << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    EXPECT_NE(error_of([&] { load_suite((root() / "exp/absent.yaml").string()); }).find("absent.yaml"),
              std::string::npos);
    // A trailing '---' starts a document that holds nothing: no second suite to lose.
    EXPECT_EQ(load_suite(suite(head + "variants: [{name: a}]\n---\n", "trailing.yaml")).variants.size(), 1u);
}

// Config errors of every run come together, before anything runs, each naming its runs and the bad key.
TEST_F(SuiteTest, ConfigErrorsOfAllRunsAreReportedTogether) {
    const std::string path = suite(R"(base: ../configs/base.yaml
name: s
seeds: [1, 2]
variants:
  - name: ok
  - name: badlr
    set: {train.lr: fast}
  - name: badheads
    set: {model.n_head: 5}
)");
    const std::string msg = error_of([&] { expand_sweep(load_suite(path), {}); }, Lines::Several);
    expect_has(msg, {path, "4 of 6 runs have config errors", "nothing was run", "badlr-s1, badlr-s2: ", "train.lr",
                     "'fast'", "badheads-s1, badheads-s2: ", "model.n_head"});
    EXPECT_EQ(msg.find("ok-s1"), std::string::npos);
    // Each bad value named where it was written: the suite file's line, or the sweep's --set.
    expect_has(msg, {path + ":7: train.lr", "model.n_head=5 (" + path + ":9)"});
    expect_has(error_of([&] { expand_sweep(load_suite(path), {"train.min_lr=slow"}); }, Lines::Several),
               {"--set: train.min_lr: expected a number, got 'slow'"});

    const std::string cli = error_of([&] { expand_sweep(load_suite(path), {"run.name=x"}); });
    expect_has(cli, {"--set run.name=x", "the sweep sets run.name"});
    expect_has(error_of([&] { expand_sweep(load_suite(path), {" run.seed = 4"}); }), {"run.seed"});
}

}  // namespace
}  // namespace sinklab::test

namespace sinklab::test {
namespace {

Sweep shipped(const std::string& file) {
    return expand_sweep(load_suite(std::string(SINKLAB_SOURCE_DIR) + "/experiments/" + file), {});
}

// The suites in experiments/ load and validate, and hold the arms the ablation plan asks for.
TEST(ShippedSuites, LoadAndHoldTheIntendedArms) {
    const Sweep hvb = shipped("headnorm-vs-baseline/suite.yaml");
    ASSERT_EQ(hvb.runs.size(), 6u);
    EXPECT_EQ(hvb.suite.seeds.size(), 3u);
    EXPECT_EQ(hvb.runs[0].config.attention.variant, "standard");
    EXPECT_EQ(hvb.runs[1].config.attention.variant, "headnorm");
    EXPECT_EQ(hvb.runs[0].config.data.train, ".cache/shards/corpus-bytes/train_*.bin");  // the default corpus
    EXPECT_EQ(hvb.runs[0].config.data.missing, "corpus");
    EXPECT_EQ(hvb.runs[0].config.backend, "cpu");

    const Sweep quick = shipped("headnorm-vs-baseline/quickstart.yaml");
    EXPECT_EQ(quick.runs.size(), 2u);
    EXPECT_EQ(quick.out_dir, "runs/quickstart");  // where scripts/quickstart.sh compares them

    const Sweep paper = shipped("headnorm-vs-baseline/suite-152m.yaml");
    ASSERT_EQ(paper.runs.size(), 8u);
    const Config& p = paper.runs[1].config;
    EXPECT_EQ(p.attention.variant, "headnorm");
    EXPECT_EQ(p.model.d_model, 768);
    EXPECT_EQ(p.model.seq_len, 4096);
    EXPECT_EQ(p.train.max_steps, 40000);  // the paper's schedule: 2000 warmup, cosine 1e-3 -> 1e-4
    EXPECT_EQ(p.train.warmup_steps, 2000);
    EXPECT_FLOAT_EQ(p.train.lr, 1e-3f);
    EXPECT_FLOAT_EQ(p.train.min_lr, 1e-4f);
    EXPECT_FALSE(paper.suite.slurm.sbatch.empty());

    const Sweep inter = shipped("sink-interventions/suite.yaml");
    std::map<std::string, const Config*> by_variant;
    for (const SweepRun& r : inter.runs) by_variant[r.variant] = &r.config;
    ASSERT_EQ(by_variant.size(), 6u);
    EXPECT_EQ(by_variant.at("isolate")->intervention.isolate, (std::vector<int>{8}));
    for (const auto& [name, lambda] : std::vector<std::pair<std::string, float>>{
             {"amplify-l1", 1}, {"amplify-l5", 5}, {"amplify-l10", 10}, {"amplify-l30", 30}}) {
        const Config& c = *by_variant.at(name);
        EXPECT_EQ(c.intervention.amplify.position, 8) << name;
        EXPECT_EQ(c.intervention.amplify.lambda, lambda) << name;
        EXPECT_EQ(c.intervention.amplify.mode, "centered_causal") << name;
    }
    EXPECT_EQ(by_variant.at("scale-l30")->intervention.amplify.mode, "scale");
    for (const auto& [name, c] : by_variant) {
        EXPECT_EQ(c->attention.variant, "standard") << name;  // interventions act on standard attention
        EXPECT_EQ(c->metrics.positions, (std::vector<int>{0, 8})) << name;
    }

    const Sweep variants = shipped("variants/suite.yaml");
    std::map<std::string, std::pair<std::string, bool>> arms;
    for (const SweepRun& r : variants.runs) arms[r.variant] = {r.config.attention.variant, r.config.attention.qk_norm};
    EXPECT_EQ(arms, (std::map<std::string, std::pair<std::string, bool>>{{"standard", {"standard", false}},
                                                                         {"headnorm", {"headnorm", false}},
                                                                         {"gated", {"gated", false}},
                                                                         {"sink_logit", {"sink_logit", false}},
                                                                         {"sigmoid", {"sigmoid", false}},
                                                                         {"qk_norm", {"standard", true}}}));

    // The search's lead: standard vs HeadNorm at 32 heads of 4 and a high, undecayed learning rate.
    const Sweep search = shipped("sink-search/suite.yaml");
    ASSERT_EQ(search.runs.size(), 6u);
    EXPECT_EQ(search.runs[0].config.attention.variant, "standard");
    EXPECT_EQ(search.runs[1].config.attention.variant, "headnorm");
    for (const SweepRun& r : search.runs) {
        EXPECT_EQ(r.config.model.head_dim(), 4) << r.name;
        EXPECT_EQ(r.config.train.schedule, "constant") << r.name;
        EXPECT_FLOAT_EQ(r.config.train.lr, 2e-2f) << r.name;
        EXPECT_EQ(r.config.data.train, ".cache/shards/corpus-bytes/train_*.bin") << r.name;
    }
}

}  // namespace
}  // namespace sinklab::test
