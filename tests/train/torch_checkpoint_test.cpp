// Checkpoint and export files checked by PyTorch (/usr/bin/python3, tests/train/torch_checkpoint.py) with its
// own safetensors reader: the checkpoint's weights give the validation loss the run logged, torch.optim.AdamW
// training on from one checkpoint reaches the next ones with the losses the run logged, every column of an eval.h5
// is its metric's definition computed on those weights, and an exported standard-attention run, run by a Llama
// written with Hugging Face's conventions, gives sinklab's logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "core/folder_lock.h"
#include "core/rng.h"
#include "train/checkpoint.h"
#include "train/train_util.h"

namespace sinklab::test {
namespace {

bool torch_available() {
    static const bool ok = std::system("/usr/bin/python3 -c 'import torch, numpy, yaml' >/dev/null 2>&1") == 0;
    return ok;
}

std::string script() { return std::string(SINKLAB_TEST_DIR) + "/train/torch_checkpoint.py"; }

std::vector<double> read_f64(const std::string& path) {
    const std::string bytes = read_file(path);
    std::vector<double> v(bytes.size() / sizeof(double));
    std::memcpy(v.data(), bytes.data(), v.size() * sizeof(double));
    return v;
}

TEST(TorchCheckpoint, WeightsGiveTheLoggedValidationLoss) {
    if (!torch_available()) GTEST_SKIP() << "skipped: /usr/bin/python3 lacks torch, numpy or yaml";
    const TempDir dir("torch_val");
    const CommandResult r = run_sinklab(small_run(dir, "run", 8, "--set run.threads=1"));  // the HeadNorm default
    ASSERT_EQ(r.rc, 0) << r.out;
    const CommandResult py = run_command(fmt::format("/usr/bin/python3 {} val-loss {}/run/checkpoints/step_00000008",
                                                     script(), dir.path()));
    ASSERT_EQ(py.rc, 0) << py.out;
    const double torch_loss = std::stod(py.out);
    const double logged = column(dir / "run/metrics.h5", "val", "loss").back();  // stored as float32
    EXPECT_NEAR(torch_loss, logged, 1e-5 * logged) << "torch " << torch_loss << " logged " << logged;
}

TEST(TorchCheckpoint, HfExportGivesTheSameLogits) {
    if (!torch_available()) GTEST_SKIP() << "skipped: /usr/bin/python3 lacks torch, numpy or yaml";
    const TempDir dir("torch_hf");
    // GQA (2 kv heads for 4 query heads) and a wider init, so that attention is far from uniform and a RoPE
    // convention mix-up shows in the logits.
    const CommandResult r = run_sinklab(small_run(
        dir, "run", 8,
        "--set run.threads=1 --set attention.variant=standard --set model.n_kv_head=2 --set model.init_std=0.3"));
    ASSERT_EQ(r.rc, 0) << r.out;
    const CommandResult ex = run_sinklab(fmt::format("export {}/run --format hf --out {}/hf", dir.path(), dir.path()));
    ASSERT_EQ(ex.rc, 0) << ex.out;
    // The config's float values as written in it, not as their float32 values widened.
    const std::string hf_config = read_file(dir / "hf/config.json");
    for (const char* value : {"\"rms_norm_eps\": 1e-06,", "\"initializer_range\": 0.3,"})
        EXPECT_NE(hf_config.find(value), std::string::npos) << value << " in " << hf_config;

    const std::string ckpt = dir / "run/checkpoints/step_00000008";
    const Config cfg = checkpoint_config(ckpt);
    const int B = 2, T = cfg.model.seq_len, V = cfg.model.vocab_size;
    auto be = make_cpu_backend(DType::F32, 1);
    Model model(*be, cfg, B, T);
    load_weights(ckpt, model);
    model.sync_weights();
    std::vector<int32_t> ids(size_t(B) * T), targets(size_t(B) * T, -1);
    Rng rng(5, 6);
    for (int32_t& id : ids) id = int32_t(rng.below(uint64_t(V)));
    model.forward(ids.data(), targets.data(), 0.f);
    std::vector<double> ours(size_t(B) * T * V);
    be->read(ours.data(), DType::F64, model.acts().logits);

    write_file(dir / "ids.bin", std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * 4));
    write_file(dir / "ids.bin.shape", fmt::format("{} {}", B, T));
    const CommandResult py = run_command(fmt::format("/usr/bin/python3 {} hf-logits {}/hf {}/ids.bin {}/hf_logits.bin",
                                                     script(), dir.path(), dir.path(), dir.path()));
    ASSERT_EQ(py.rc, 0) << py.out;
    const std::vector<double> hf = read_f64(dir / "hf_logits.bin"), wrong = read_f64(dir / "hf_logits.bin.wrong_rope");
    ASSERT_EQ(hf.size(), ours.size());
    double err = 0, wrong_err = 0, scale = 0;
    for (size_t i = 0; i < ours.size(); i++) {
        err = std::max(err, std::abs(hf[i] - ours[i]));
        wrong_err = std::max(wrong_err, std::abs(wrong[i] - ours[i]));
        scale = std::max(scale, std::abs(ours[i]));
    }
    EXPECT_LT(err, 1e-4 * std::max(1.0, scale)) << "max |logit| " << scale;
    EXPECT_GT(wrong_err, 100 * 1e-4 * std::max(1.0, scale)) << "the negative control must be far off: " << wrong_err;
}

// Training on from a checkpoint, as torch.optim.AdamW does it on the float64 model: every logged loss, gradient
// norm, learning rate and sink metric of the steps after it, and every weight of the last checkpoint. `extra` sets
// the optimizer and schedule; the run clips some steps' gradients and not others.
void expect_training_like_torch(const std::string& extra) {
    const TempDir dir("torch_train");
    constexpr int kFirst = 1, kLast = 6;
    // Two micro-batches a step; weight decay strong enough that a tensor decayed by the wrong rule shows.
    const CommandResult r = run_sinklab(small_run(
        dir, "run", kLast,
        "--set run.threads=1 --set train.tokens_per_step=1024 --set checkpoint.every=1 --set checkpoint.keep=10 "
        "--set train.lr=3e-3 --set train.weight_decay=0.5 --set train.grad_clip=1 --set metrics.heavy_every=2 " +
            extra));
    ASSERT_EQ(r.rc, 0) << r.out;
    const CommandResult py = run_command(
        fmt::format("/usr/bin/python3 {} train-steps {}/run {} {}", script(), dir.path(), kFirst, kLast));
    ASSERT_EQ(py.rc, 0) << py.out;
    const nlohmann::json torch = nlohmann::json::parse(py.out);

    const std::string h5 = dir / "run/metrics.h5";
    const std::vector<double> loss = column(h5, "train", "loss"), norm = column(h5, "train", "grad_norm"),
                              lr = column(h5, "train", "lr"), skipped = column(h5, "train", "skipped");
    ASSERT_EQ(loss.size(), size_t(kLast));
    ASSERT_EQ(torch["steps"].size(), size_t(kLast - kFirst));
    int clipped = 0;
    for (const auto& s : torch["steps"]) {
        const size_t i = s["step"].get<size_t>() - 1;  // rows are steps 1, 2, ...
        EXPECT_EQ(skipped[i], 0) << "step " << i + 1;
        EXPECT_NEAR(loss[i], s["loss"].get<double>(), 1e-5 * loss[i]) << "step " << i + 1;
        EXPECT_NEAR(norm[i], s["grad_norm"].get<double>(), 1e-5 * norm[i]) << "step " << i + 1;
        EXPECT_NEAR(lr[i], s["lr"].get<double>(), 1e-6 * lr[i]) << "step " << i + 1;  // stored as float32
        clipped += s["clip"].get<double>() < 1;
    }
    EXPECT_GT(clipped, 0) << "no step was clipped: the test misses the clipping";
    EXPECT_LT(clipped, kLast - kFirst) << "every step was clipped: the test misses unclipped steps";
    // The float32 run and the float64 replay differ by rounding alone: measured at most 3e-7 over five updates of
    // up to lr = 3e-3, where a decay rule applied to the wrong tensor moves its largest weights by 3e-4 or more.
    int decayed = 0;
    for (const auto& [name, w] : torch["weights"].items()) {
        EXPECT_LT(w["max_diff"].get<double>(), 2e-6) << name << " (largest |weight| " << w["max_abs"] << ")";
        decayed += w["decayed"].get<bool>();
    }
    EXPECT_GT(decayed, 0);
    EXPECT_LT(decayed, int(torch["weights"].size()));

    // The /sink row of every step and the /heavy row of every second: the metrics of its last micro-batch's forward
    // pass, before its update.
    EXPECT_TRUE(torch["uncovered"].empty()) << "columns the oracle does not compute: " << torch["uncovered"];
    for (const auto& [group, rows] : {std::pair{"sink", kLast - kFirst}, std::pair{"heavy", kLast / 2 - kFirst / 2}}) {
        EXPECT_GE(torch["metrics"][group].size(), std::string(group) == "sink" ? 8u : 5u);
        for (const auto& [name, c] : torch["metrics"][group].items()) {
            EXPECT_EQ(c["rows"].get<int>(), rows) << group << "/" << name;
            EXPECT_LE(c["max_diff"].get<double>(), 2e-6 * std::max(1.0, c["max_abs"].get<double>()))
                << group << "/" << name;
        }
    }
}

TEST(TorchCheckpoint, TrainingOnFromACheckpointIsTorchAdamWWithCosineWarmupAndClipping) {
    if (!torch_available()) GTEST_SKIP() << "skipped: /usr/bin/python3 lacks torch, numpy or yaml";
    // Every kind of parameter: per-head HeadNorm gain (decayed), gate, sink logits, QK-norm gains.
    expect_training_like_torch(
        "--set attention.variant=headnorm+gated+sink_logit --set attention.qk_norm=true --set train.warmup_steps=2");
}

TEST(TorchCheckpoint, TrainingOnFromACheckpointIsTorchAdamWWithLinearDecayAndUndecayedGain) {
    if (!torch_available()) GTEST_SKIP() << "skipped: /usr/bin/python3 lacks torch, numpy or yaml";
    expect_training_like_torch(
        "--set attention.variant=headnorm --set attention.headnorm.gain=shared "
        "--set attention.headnorm.weight_decay=false --set model.n_kv_head=2 --set train.warmup_steps=0 "
        "--set train.schedule=linear --set train.decay_steps=5 --set train.beta1=0.8 --set train.beta2=0.99 "
        "--set train.eps=1e-6 --set train.grad_clip=1.12");
}

// Every column of an eval.h5 against its definition computed on the float64 model from the checkpoint's weights and
// the same validation windows: `extra` sets the eval's interventions and positions. metrics.sink_eps lies halfway
// between the middle two heads' mass on token 0 of this very eval, so that sink_rate counts some heads and not
// others, none of them near the threshold.
void expect_eval_like_torch(const TempDir& dir, const std::string& out, const std::string& extra) {
    const std::string eval = fmt::format("eval {}/run --batches 3 --out {} {}", dir.path(), out, extra);
    const CommandResult first = run_sinklab(eval);
    ASSERT_EQ(first.rc, 0) << first.out;
    const std::vector<double> mass = column(out, "eval", "attn_mass");  // [L, H, P], position 0 first
    const int P = int(nlohmann::json::parse(RunLogReader(out).str_attr("sink_positions")).size());
    std::vector<double> token0;
    for (size_t i = 0; i < mass.size(); i += size_t(P)) token0.push_back(mass[i]);
    std::sort(token0.begin(), token0.end());
    const double lo = token0[token0.size() / 2 - 1], hi = token0[token0.size() / 2];
    ASSERT_GT(hi - lo, 1e-5) << "two heads with nearly the same mass on token 0";
    const CommandResult ev = run_sinklab(eval + fmt::format(" --set metrics.sink_eps={:.9g}", (lo + hi) / 2));
    ASSERT_EQ(ev.rc, 0) << ev.out;
    const std::vector<double> rate = column(out, "eval", "sink_rate");
    EXPECT_NEAR(std::accumulate(rate.begin(), rate.end(), 0.0) / double(rate.size()), 0.5, 1e-9);

    const CommandResult py = run_command(fmt::format(
        "/usr/bin/python3 {} eval-metrics {}/run/checkpoints/step_00000012 {}", script(), dir.path(), out));
    ASSERT_EQ(py.rc, 0) << py.out;
    const nlohmann::json torch = nlohmann::json::parse(py.out);
    EXPECT_TRUE(torch["uncovered"].empty()) << "columns the oracle does not compute: " << torch["uncovered"];
    EXPECT_GE(torch["columns"].size(), 16u);
    for (const auto& [name, c] : torch["columns"].items()) {
        // The float32 CPU backend against float64: measured at most 2e-7 of the values' scale.
        EXPECT_LE(c["max_diff"].get<double>(), 2e-6 * std::max(1.0, c["max_abs"].get<double>())) << out << " " << name;
    }
}

TEST(TorchCheckpoint, EvalMetricsAreTheirDefinitionsOnTheTorchModel) {
    if (!torch_available()) GTEST_SKIP() << "skipped: /usr/bin/python3 lacks torch, numpy or yaml";
    const TempDir dir("torch_eval");
    const CommandResult r = run_sinklab(small_run(dir, "run", 12,
                                                  "--set run.threads=1 --set attention.qk_norm=true "
                                                  "--set attention.variant=headnorm+gated+sink_logit "
                                                  "--set model.n_kv_head=2"));
    ASSERT_EQ(r.rc, 0) << r.out;
    expect_eval_like_torch(dir, dir / "isolate.h5", "--set intervention.isolate=[5] --set metrics.positions=[3]");
    expect_eval_like_torch(dir, dir / "amplify.h5",
                           "--set intervention.amplify.position=2 --set intervention.amplify.lambda=5 "
                           "--set intervention.amplify.layers=[0] --set intervention.amplify.mode=centered");
}

TEST(TorchCheckpoint, ExportRefusesWhatHfLlamaCannotCompute) {
    const TempDir dir("export_refuse");
    ASSERT_EQ(run_sinklab(small_run(dir, "hn", 2, "--set run.threads=1")).rc, 0);
    ASSERT_EQ(run_sinklab(small_run(dir, "qk", 2, "--set run.threads=1 --set attention.variant=standard "
                                                  "--set attention.qk_norm=true")).rc, 0);
    const CommandResult hn = run_sinklab(fmt::format("export {}/hn --format hf", dir.path()));
    EXPECT_NE(hn.rc, 0);
    EXPECT_NE(hn.out.find("attention.variant has headnorm: LlamaAttention has no RMSNorm"), std::string::npos)
        << hn.out;
    const CommandResult qk = run_sinklab(fmt::format("export {}/qk --format hf", dir.path()));
    EXPECT_NE(qk.rc, 0);
    EXPECT_NE(qk.out.find("attention.qk_norm"), std::string::npos) << qk.out;
    EXPECT_FALSE(std::filesystem::exists(dir / "hn/hf/model.safetensors"));
}

// An export into a folder that another export is writing is refused, naming it, and writes nothing.
TEST(TorchCheckpoint, ExportIntoABusyFolderIsRefused) {
    const TempDir dir("export_busy");
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 2, "--set run.threads=1 --set attention.variant=standard")).rc, 0);
    const FolderLock held(dir / "run/hf", "export folder", "export", "give another --out");
    // The holder has renamed one of its two files: a look at the folder before the lock would take it for someone
    // else's export (a refusal that blames the folder, seen under mpirun).
    std::filesystem::create_directories(dir / "run/hf");
    write_file(dir / "run/hf/config.json", "{}\n");
    const CommandResult r = run_sinklab(fmt::format("export {} --format hf", dir / "run"));
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("export folder " + dir / "run/hf is in use by another `sinklab export` (pid "),
              std::string::npos)
        << r.out;
    EXPECT_FALSE(std::filesystem::exists(dir / "run/hf/model.safetensors"));
}

// An export that fails on a full disk (a file-size limit here) takes its temporary files with it (a full-size one
// stayed) and leaves the earlier export whole.
TEST(TorchCheckpoint, AFailedExportLeavesTheEarlierOneAndNoTemporaryFile) {
    const TempDir dir("export_full");
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 2, "--set run.threads=1 --set attention.variant=standard")).rc, 0);
    const std::string export_cmd = fmt::format("export {} --format hf", dir / "run");
    ASSERT_EQ(run_sinklab(export_cmd).rc, 0);
    const std::string earlier = read_file(dir / "run/hf/model.safetensors");
    const CommandResult r =
        run_command(fmt::format("bash -c \"ulimit -f 16; exec {} {}\"", SINKLAB_BINARY, export_cmd));
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_NE(r.out.find("File too large"), std::string::npos) << r.out;
    std::vector<std::string> left;
    for (const auto& e : std::filesystem::directory_iterator(dir / "run/hf")) left.push_back(e.path().filename());
    std::sort(left.begin(), left.end());
    EXPECT_EQ(left, (std::vector<std::string>{"config.json", "model.safetensors"}));
    EXPECT_TRUE(read_file(dir / "run/hf/model.safetensors") == earlier);
}

TEST(TorchCheckpoint, ExportReplacesOnlyItsOwnEarlierExport) {
    const TempDir dir("export_out");
    ASSERT_EQ(run_sinklab(small_run(dir, "run", 2, "--set run.threads=1 --set attention.variant=standard")).rc, 0);
    const std::string run = dir / "run", ckpt = run + "/checkpoints/step_00000002";
    const std::string weights = read_file(ckpt + "/model.safetensors");
    for (const std::string& folder : {ckpt, run}) {
        const CommandResult r = run_sinklab(fmt::format("export {} --format hf --out {} --overwrite", run, folder));
        EXPECT_NE(r.rc, 0);
        EXPECT_NE(r.out.find("sinklab: error: --out " + folder + ": it is a sinklab run or checkpoint folder"),
                  std::string::npos)
            << r.out;
    }
    EXPECT_EQ(read_file(ckpt + "/model.safetensors"), weights);
    EXPECT_FALSE(std::filesystem::exists(run + "/config.json"));

    write_file(dir / "mine/config.json", "{\"mine\": true}\n");
    const CommandResult mine = run_sinklab(fmt::format("export {} --format hf --out {}", run, dir / "mine"));
    EXPECT_NE(mine.rc, 0);
    EXPECT_NE(mine.out.find("it already holds config.json, not written by sinklab export; give another --out, or "
                            "pass --overwrite"),
              std::string::npos)
        << mine.out;
    EXPECT_EQ(read_file(dir / "mine/config.json"), "{\"mine\": true}\n");
    const CommandResult forced =
        run_sinklab(fmt::format("export {} --format hf --out {} --overwrite", run, dir / "mine"));
    EXPECT_EQ(forced.rc, 0) << forced.out;
    EXPECT_NE(read_file(dir / "mine/config.json"), "{\"mine\": true}\n");

    // An earlier export (the default RUN/hf) is replaced without --overwrite.
    ASSERT_EQ(run_sinklab(fmt::format("export {} --format hf", run)).rc, 0);
    const CommandResult again = run_sinklab(fmt::format("export {} --format hf", run));
    EXPECT_EQ(again.rc, 0) << again.out;
}

}  // namespace
}  // namespace sinklab::test
