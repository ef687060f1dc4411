// sinklab eval RUN [--checkpoint DIR] [--data GLOB] [--batches N] [--out FILE] [--set k=v]...: validation loss
// and every sink metric of a trained checkpoint on held-out data, into eval.h5 and a table per layer.
// --set applies to the evaluation only (e.g. an intervention: --set intervention.isolate=[5]).
#include <fmt/ranges.h>

#include <unistd.h>

#include <filesystem>

#include "cli/commands.h"
#include "data/dataloader.h"
#include "data/prepare.h"
#include "dist/comm.h"
#include "metrics/eval.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace sinklab::cli {

namespace {

struct EvalArgs {
    std::string run;
    std::string checkpoint;  // default: the run's newest
    std::string data;        // default: the run's data.val
    int batches = 16;
    std::string out;  // default: RUN/eval.h5
    std::vector<std::string> overrides;
};

// Checked before the evaluation, which may take long: --out may replace an earlier eval output, nothing else
// (it could name a run's metrics.h5 or a checkpoint's weights), and it must be writable, its folder made if missing.
void check_out(const std::string& out) {
    const fs::path folder = fs::path(out).has_parent_path() ? fs::path(out).parent_path() : fs::path(".");
    std::error_code ec;
    fs::create_directories(folder, ec);
    SL_REQUIRE(fs::is_directory(folder), "--out {}: cannot create the folder {} ({}); give another --out", out,
               folder.string(), ec ? ec.message() : "it is not a folder");
    SL_REQUIRE(!fs::exists(out) || is_eval_file(out),
               "--out {}: the file exists and is not the output of an earlier eval, which is all eval replaces; give "
               "another --out",
               out);
    check_writable("--out", out);
}

void run_eval(const EvalArgs& a) {
    const std::string out = a.out.empty() ? (fs::path(a.run) / "eval.h5").string() : a.out;
    check_out(out);
    const std::string ckpt = checkpoint_to_read(a.run, a.checkpoint);
    Config cfg = load_config((fs::path(ckpt) / "config.yaml").string(), a.overrides);
    if (!a.data.empty()) cfg.data.val = a.data;
    SL_REQUIRE(!cfg.data.val.empty(),
               "{}: data.val is empty (the run was trained without validation data, or --set emptied it); pass --data "
               "GLOB",
               a.run);
    check_prepared_tokenizer(cfg.data.val, cfg.data.tokenizer, a.data.empty() ? "data.val" : "--data");
    Communicator& comm = process_communicator();

    BackendOptions bo;
    bo.kind = cfg.backend;
    bo.cuda_compute = cfg.precision.compute == "fp32" ? DType::F32 : DType::BF16;
    bo.threads = cfg.run.threads;
    bo.device = comm.local_rank();
    auto backend = make_backend(bo);
    const int B = cfg.train.micro_batch, T = cfg.model.seq_len;
    Model model(*backend, cfg, B, T);
    const int64_t step = load_weights(ckpt, model);
    model.sync_weights();
    SinkMetrics sink(model, cfg);
    DataLoader data(cfg.data.val, B, T, comm.rank(), comm.world(), cfg.run.seed, false, cfg.model.vocab_size);

    const EvalResult r = evaluate(sink, data, a.batches, comm);
    if (comm.rank() != 0) return;
    const bool replaced = fs::exists(out);
    // Written aside and renamed over the old one, so that a failed write leaves the earlier eval as it was.
    const std::string tmp = fmt::format("{}.tmp{}", out, getpid());
    try {
        write_eval_file(tmp, r, sink, step,
                        {{"run", a.run},
                         {"checkpoint", ckpt},
                         {"data", cfg.data.val},
                         {"config_yaml", dump_config(cfg)},
                         {"sink_positions", fmt::format("[{}]", fmt::join(sink.positions(), ", "))}});
    } catch (...) {
        std::error_code ec;
        fs::remove(tmp, ec);
        throw;
    }
    fs::rename(tmp, out);
    fmt::print("eval of {} (step {}) on {}\n{}\nwrote {}{}\n", a.run, step, cfg.data.val, format_eval_table(r, sink),
               out, replaced ? " (replacing the previous one)" : "");
}

}  // namespace

void add_eval(CLI::App& app) {
    auto* cmd = app.add_subcommand("eval", "validation loss and sink metrics of a trained run on held-out data");
    auto a = std::make_shared<EvalArgs>();
    cmd->add_option("run", a->run, "run folder (<out_dir>/<name>)")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--checkpoint", a->checkpoint, "checkpoint folder (default: the run's newest)");
    cmd->add_option("--data", a->data, "glob of token shards (default: the run's data.val)");
    cmd->add_option("--batches", a->batches, "micro-batches to average over")->check(at_least(1));
    cmd->add_option("--out", a->out, "output file (default: RUN/eval.h5)");
    cmd->add_option("--set", a->overrides, "override a key for the evaluation, e.g. an intervention")
        ->allow_extra_args(false);
    cmd->callback([a] { run_eval(*a); });
}

}  // namespace sinklab::cli
