// sinklab eval RUN [--checkpoint DIR] [--data GLOB] [--batches N] [--out FILE] [--set k=v]...: validation loss
// and every sink metric of a trained checkpoint on held-out data, into eval.h5 and a table per layer.
// --set applies to the evaluation only (e.g. an intervention: --set intervention.isolate=[5]).
#include <fmt/ranges.h>

#include <unistd.h>

#include <filesystem>
#include <set>

#include "cli/commands.h"
#include "config/schema.h"
#include "config/validate.h"
#include "data/dataloader.h"
#include "data/ensure.h"
#include "data/prepare.h"
#include "dist/comm.h"
#include "metrics/eval.h"
#include "metrics/runlog_reader.h"
#include "train/checkpoint.h"
#include "train/fault_inject.h"
#include "train/hang_watchdog.h"
#include "train/run_backend.h"

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

fs::path folder_of(const std::string& out) {
    return fs::path(out).has_parent_path() ? fs::path(out).parent_path() : fs::path(".");
}

// Checked before the evaluation, which may take long: --out may replace an earlier eval output, nothing else
// (it could name a run's metrics.h5 or a checkpoint's weights), and it must be writable, its folder made if missing.
// It must not lie in a checkpoint folder nor in another run's folder.
void check_out(const std::string& out, const std::string& run) {
    refuse_output_in_other_runs("--out", out, folder_of(out).string(), run);
    std::error_code ec;
    const fs::path folder = folder_of(out);
    fs::create_directories(folder, ec);
    SL_REQUIRE(fs::is_directory(folder), "--out {}: cannot create the folder {} ({}); give another --out", out,
               folder.string(), ec ? ec.message() : "it is not a folder");
    SL_REQUIRE(!fs::exists(out) || is_eval_file(out),
               "--out {}: the file exists and is not the output of an earlier eval, which is all eval replaces; give "
               "another --out",
               out);
    check_writable("--out", out);
}

// What --set changes of the trained model. Head counts split the checkpoint's q/k/v weights into heads they were not
// trained as (the tensors keep their shapes, so loading would not fail): refused. Other changes of what the model
// computes (sequence length, RoPE base, variant, an intervention, ...) are experiments, named on stderr and in the
// result's heading so that no result is taken for the trained model's; keys of initialization, decay and kernel
// choice change nothing an eval computes.
std::vector<std::string> model_changes(const Config& trained, const Config& cfg, const std::vector<std::string>& keys,
                                       const std::string& ckpt) {
    static const std::set<std::string> kReinterpreted = {"model.n_head", "model.n_kv_head"};
    static const std::set<std::string> kNoEffect = {"model.init_std", "attention.headnorm.init",
                                                    "attention.headnorm.weight_decay", "attention.sink_init",
                                                    "attention.impl", "attention.ds_scratch_mib"};
    std::vector<std::string> refused, changed;
    for (const std::string& key : keys) {
        const bool computes = key.starts_with("model.") || key.starts_with("attention.") ||
                              key.starts_with("intervention.");
        if (!computes || kNoEffect.contains(key)) continue;
        (kReinterpreted.contains(key) ? refused : changed).push_back(config::value_change(key, trained, cfg));
    }
    SL_REQUIRE(refused.empty(),
               "--set {}: {} was trained with other head counts, and its q/k/v weights would be split into heads they "
               "were not trained as; evaluate it with its own",
               fmt::join(refused, ", "), ckpt);
    return changed;
}

void run_eval(const EvalArgs& a) {
    const std::string out = a.out.empty() ? (fs::path(a.run) / "eval.h5").string() : a.out;
    Communicator& comm = process_communicator();
    const bool lead = comm.rank() == 0;
    // Rank 0 alone writes --out, and alone checks it: another rank's probe, a new file made and removed, could be
    // seen by rank 0's check as a file that is not an eval's (it was: under mpirun on a loaded machine).
    if (lead) check_out(out, a.run);
    // An eval anywhere in the run folder reads as the run's (directly in it, --overwrite deletes it with the run): it
    // must not land in a run that replaced the evaluated one while the evaluation ran.
    const bool into_run = lies_in(out, a.run);
    const std::string evaluated_run = into_run && lead ? run_identity(a.run) : "";  // rank 0 writes
    // Rank 0 picks the checkpoint (the newest of a run that may be writing more), reads its weights and sends them:
    // ranks that picked on their own could evaluate two checkpoints as one model (they did, while the run trained,
    // in 7 evals of 60). The others read its config from rank 0's folder, named absolutely for their own folders.
    std::string ckpt = lead ? checkpoint_to_read(a.run, a.checkpoint, into_run) : "";
    const std::string ckpt_absolute = broadcast_string(comm, lead ? fs::absolute(ckpt).string() : "", 0);
    if (!lead) ckpt = ckpt_absolute;
    const std::string trained_config = (fs::path(ckpt) / "config.yaml").string();
    Config cfg;
    std::vector<std::string> changed;  // of the model
    std::vector<std::string> heading;  // those and the changes of what the metrics measure (sink_eps, positions)
    reading_checkpoint(ckpt, [&] {
        cfg = load_config(trained_config, a.overrides, nullptr, ConfigUse::eval);
        const Config trained = load_config(trained_config, {}, nullptr, ConfigUse::eval);
        const std::vector<std::string> keys = changed_keys(trained, cfg);
        changed = heading = model_changes(trained, cfg, keys, ckpt);
        for (const std::string& key : keys)
            if (key.starts_with("metrics.")) heading.push_back(config::value_change(key, trained, cfg));
    });
    if (!a.data.empty()) cfg.data.val = a.data;
    SL_REQUIRE(!cfg.data.val.empty(),
               "{}: data.val is empty (the run was trained without validation data, or --set emptied it); pass --data "
               "GLOB",
               a.run);
    // A rank that stops without dying (SIGSTOP, a stalled file system, a lost GPU or node), or dies under a launcher
    // that leaves the others running (srun without --kill-on-bad-exit), held the others in their next collective for
    // ever: fault.hang_timeout ends the eval as it ends a training run. The first batch includes the setup, the last
    // the output.
    HangWatchdog watchdog(
        cfg.fault.hang_timeout, 0,
        [&comm](const std::string& what) {
            exit_with_error_past_a_stuck_thread(fmt::format(
                "{}: {}; the eval ends here (where a batch takes this long, --set fault.hang_timeout=SECONDS)", what,
                hang_cause(comm.world(), "the eval")));
        },
        "batch");
    require_same_config(comm, cfg);
    const std::string data_key = a.data.empty() ? "data.val" : "--data";
    check_prepared_tokenizer(cfg.data.val, cfg.data.tokenizer, data_key.c_str());

    std::string backend_note;
    auto backend = make_run_backend(cfg, comm, backend_note);
    if (lead) {
        if (!changed.empty())
            fmt::print(stderr, "sinklab: note: this eval's model differs from the trained one in {}\n",
                       fmt::join(changed, ", "));
        std::vector<std::string> notes = config::ineffective_settings(cfg);
        if (const std::string shared = val_shards_trained_on(cfg.data, data_key); !shared.empty())
            notes.push_back(shared);
        if (!backend_note.empty()) notes.insert(notes.begin(), backend_note);
        if (const std::string note = backend->attention_impl_note(cfg.attention.impl); !note.empty())
            notes.insert(notes.begin(), note);
        for (const std::string& note : notes) fmt::print(stderr, "sinklab: note: {}\n", note);
    }
    const int B = cfg.train.micro_batch, T = cfg.model.seq_len;
    Model model(*backend, cfg, B, T);
    int64_t step = 0;
    if (lead) reading_checkpoint(ckpt, [&] { step = load_weights(ckpt, model); });
    comm.broadcast(&step, sizeof step, 0);
    device_communicator(comm, *backend).broadcast(*backend, model.truth(), 0);
    model.sync_weights();
    SinkMetrics sink(model, cfg);
    DataLoader data(cfg.data.val, B, T, comm, cfg.run.seed, false, cfg.model.vocab_size, data_key);
    data.require_same_on_every_rank(comm, data_key);
    FaultInjection::from_env(comm.rank()).before_step(1);

    const EvalResult r = evaluate(sink, data, a.batches, comm, [&](int done) { watchdog.finished(done); });
    if (!lead) return;
    const bool replaced = fs::exists(out);
    // Written aside and renamed over the old one, so that a failed write leaves the earlier eval as it was.
    const std::string tmp = fmt::format("{}.tmp{}", out, getpid());
    try {
        std::vector<std::pair<std::string, std::string>> attrs = {
            {"run", a.run},
            {"checkpoint", ckpt},
            {"data", cfg.data.val},
            {"config_yaml", dump_config(cfg)},
            {"sink_positions", fmt::format("[{}]", fmt::join(sink.positions(), ", "))}};
        for (auto& attr : provenance_attrs(*backend)) attrs.push_back(std::move(attr));
        write_eval_file(tmp, r, sink, step, attrs);
        SL_REQUIRE(!into_run || run_identity(a.run) == evaluated_run,
                   "{}: another run replaced the evaluated one (train --overwrite) while this eval ran, so its result "
                   "was not written; evaluate the new run, or give an --out outside the run folder",
                   a.run);
    } catch (...) {
        std::error_code ec;
        fs::remove(tmp, ec);
        throw;
    }
    fs::rename(tmp, out);
    fmt::print("eval of {} ({}step {}) on {}{}\n{}\nwrote {}{}\n", a.run,
               a.checkpoint.empty() ? "" : fmt::format("checkpoint {}, ", ckpt), step, cfg.data.val,
               heading.empty() ? "" : fmt::format(", with {}", fmt::join(heading, ", ")), format_eval_table(r, sink),
               out, replaced ? " (replacing the previous one)" : "");
}

}  // namespace

void add_eval(CLI::App& app) {
    auto* cmd = app.add_subcommand("eval", "validation loss and sink metrics of a trained run on held-out data");
    auto a = std::make_shared<EvalArgs>();
    cmd->add_option("run", a->run, "run folder (<out_dir>/<name>)")->required()->check(CLI::ExistingDirectory);
    cmd->add_option("--checkpoint", a->checkpoint, "checkpoint folder (default: the run's newest)");
    cmd->add_option("--data", a->data, "glob of token shards (default: the run's data.val)");
    cmd->add_option("--batches", a->batches, fmt::format("micro-batches to average over (default {})", a->batches))
        ->check(at_least(1));
    cmd->add_option("--out", a->out, "output file (default: RUN/eval.h5)");
    cmd->add_option("--set", a->overrides, "override a key for the evaluation, e.g. an intervention")
        ->allow_extra_args(false);
    cmd->callback([a] { run_eval(*a); });
}

}  // namespace sinklab::cli
