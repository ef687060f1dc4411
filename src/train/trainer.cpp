#include "train/trainer.h"

#include <fmt/ranges.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include "backend/backend.h"
#include "config/validate.h"
#include "metrics/runlog_reader.h"
#include "core/progress.h"
#include "core/si.h"
#include "core/utc_time.h"
#include "data/dataloader.h"
#include "data/ensure.h"
#include "data/mapped_file.h"
#include "metrics/eval.h"
#include "metrics/runlog.h"
#include "metrics/runlog_format.h"
#include "metrics/schema.h"
#include "metrics/sink_metrics.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/fault_inject.h"
#include "train/hang_watchdog.h"
#include "train/nonfinite_report.h"
#include "train/optimizer.h"
#include "train/run_backend.h"
#include "train/run_folder.h"
#include "train/schedule.h"
#include "train/stop_signal.h"
#include "train/update_guard.h"

namespace fs = std::filesystem;

namespace sinklab {

StepGeometry step_geometry(const Config& cfg, int world) {
    StepGeometry g;
    g.micro_batch = cfg.train.micro_batch;
    g.seq_len = cfg.model.seq_len;
    g.world = world;
    const int64_t per_micro = int64_t(g.micro_batch) * g.seq_len * world;
    if (cfg.train.tokens_per_step == 0) {
        g.accum = 1;
    } else {
        SL_REQUIRE(cfg.train.tokens_per_step % per_micro == 0,
                   "train.tokens_per_step = {} is not a multiple of micro_batch x seq_len x ranks = {} x {} x {} = {}; "
                   "change it or the number of ranks",
                   cfg.train.tokens_per_step, g.micro_batch, g.seq_len, world, per_micro);
        g.accum = int(cfg.train.tokens_per_step / per_micro);
    }
    g.tokens_per_step = per_micro * g.accum;
    return g;
}

DataPasses data_passes(uint64_t windows, const StepGeometry& geo, int64_t last_step, int64_t done, uint64_t epoch,
                       uint64_t cursor) {
    DataPasses d;
    const uint64_t per_batch = uint64_t(geo.world) * uint64_t(geo.micro_batch);
    d.batches_per_epoch = int64_t(windows / per_batch);
    if (d.batches_per_epoch == 0) return d;
    // The loader starts the next epoch where fewer than a global batch of windows is left.
    const int64_t left = cursor < windows ? int64_t((windows - cursor) / per_batch) : 0;
    const int64_t batches = (last_step - done) * geo.accum;
    d.epochs = double(epoch) + double(d.batches_per_epoch - left + batches) / double(d.batches_per_epoch);
    if (epoch > 0 && batches > 0) d.first_repeat_step = done + 1;
    if (epoch == 0 && batches > left) d.first_repeat_step = done + left / geo.accum + 1;
    return d;
}

std::string run_dir(const Config& cfg) { return (fs::path(cfg.run.out_dir) / cfg.run.name).string(); }

struct Trainer::Impl {
    // Rank 0, from the start of setup: first, so that its lock goes last, once every file of the run is closed.
    std::unique_ptr<RunFolder> folder;
    // From the start: a signal during setup (a long resume, say) stops the run after its first step.
    const StopSignals signals;
    Config cfg;
    TrainOptions opt;
    Communicator& comm;
    StepGeometry geo;
    std::string dir;
    bool lead;  // rank 0 writes files and logs
    std::shared_ptr<spdlog::logger> log;
    // Rank 0: train.log alone, for the error that ends a run, which main prints on the console already.
    std::shared_ptr<spdlog::sinks::basic_file_sink_mt> log_file;
    std::optional<MappedReadFailureLog> shard_failure_log;  // rank 0: a shard's read failure into train.log
    bool start_logged = false;  // log_start() wrote this start's first line
    std::atomic<bool> error_logged = false;  // the hang watchdog's thread logs too
    std::string log_failure;  // spdlog's message of the first failed write to train.log
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Model> model;
    std::unique_ptr<AdamW> optim;
    std::unique_ptr<SinkMetrics> sink;
    std::unique_ptr<DataLoader> train_data, val_data;
    BatchCount val_batches;  // metrics.val_batches, at most the distinct batches of the validation data
    std::unique_ptr<RunLog> runlog;
    std::vector<int32_t> inputs, targets;  // [B, T] host staging
    UpdateGuard guard;
    FaultInjection inject;
    int64_t start_step = 0;
    int64_t start_tokens = 0;  // training tokens through start_step
    std::string resume_from;      // rank 0: the checkpoint folder --resume continues from ("" = from step 0)
    std::string run_id;           // rank 0: run_identity of the run log, recorded in each checkpoint
    std::string last_checkpoint;  // rank 0: the newest checkpoint folder of the run
    std::string backend_note;     // why backend: auto runs on the CPU, when that is a surprise
    std::string data_note;        // rank 0: the data ensure_data made, when it made some
    bool committed = false;       // the start stands (commit_start): a failure no longer puts the old run back
    std::vector<std::string> changed_on_resume;  // rank 0: "key (old -> new)" for each key --resume changes
    std::string lr_on_resume;                    // rank 0: schedule_change_note of the resume; "" when none
    double comm_s = 0;            // seconds in gradient and loss all-reduces (with waiting for slower ranks)

    Impl(const Config& c, const TrainOptions& o, Communicator& cm)
        : cfg(c), opt(o), comm(cm), guard(c.fault), inject(FaultInjection::from_env(cm.rank())) {
        geo = step_geometry(cfg, comm.world());
        dir = run_dir(cfg);
        lead = comm.rank() == 0;
    }

    std::string train_log() const { return (fs::path(dir) / "train.log").string(); }

    void setup_logging() {
        std::vector<spdlog::sink_ptr> sinks;
        if (lead) {
            log_file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(train_log());
            sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
            sinks.push_back(log_file);
            shard_failure_log.emplace(train_log());
        }
        log = std::make_shared<spdlog::logger>("train", sinks.begin(), sinks.end());
        log->set_pattern("%v");
        log->flush_on(spdlog::level::info);
        // spdlog only reports a failed write to train.log (a full disk) on stderr and goes on, leaving a hole in the
        // log: the failure is kept for check_log(), which stops the run in its next step.
        log->set_error_handler([this](const std::string& message) {
            if (log_failure.empty()) log_failure = message;
        });
    }

    // The error that ends the run also ends train.log, so that the log of a run that stopped on a cluster says why
    // without the job's output: a resume's error from the moment its folder is locked, a new run's once its log is
    // open (before, the folder may hold a run that --overwrite would put back). An error before this start's first
    // line is dated, or it would read as the end of the run resumed. A failure of another rank ends this one through
    // MPI_Abort and is not recorded here.
    void log_error(const std::exception_ptr& failure) {
        if (!lead || (!log_file && resume_from.empty()) || error_logged.exchange(true)) return;
        const std::string what = message_of(failure);
        const std::string line =
            start_logged ? "error: " + what : fmt::format("error: the start at {} failed: {}", utc_now_iso8601(), what);
        try {
            if (log_file) {
                log_file->log(spdlog::details::log_msg("train", spdlog::level::err, line));
                log_file->flush();
            } else {
                std::ofstream(train_log(), std::ios::app) << line << '\n';
            }
        } catch (const std::exception&) {  // a full disk: the console has the error still
        }
    }

    void check_log() const {
        SL_REQUIRE(log_failure.empty(),
                   "{}: a write to it failed ({}); free disk space, then continue the run from its last checkpoint "
                   "with --resume",
                   train_log(), log_failure);
    }

    // Rank 0: metrics.h5, new or (--resume) truncated to the checkpoint's step.
    void create_run_log(const std::optional<TrainState>& resumed) {
        if (!lead) return;
        const auto groups = run_log_groups(cfg.model.n_layer, cfg.model.n_head, int(sink->positions().size()),
                                           sink->wo_std_positions());
        const std::string h5 = (fs::path(dir) / "metrics.h5").string();
        // A resume may change the ranks (and with them tokens_per_step) and what resume_changes allows of the
        // config: those attributes say what the run is now.
        // The data's checksums, as checkpoints hold them, so that compare can tell runs on other tokens apart.
        const std::vector<std::pair<std::string, std::string>> now_str = {
            {"config_yaml", dump_config(cfg)},
            {"data_train_checksum", train_data->fingerprint()},
            {"data_val_checksum", val_data ? val_data->fingerprint() : ""}};
        const std::vector<std::pair<std::string, double>> now_num = {
            {"world_size", double(comm.world())}, {"tokens_per_step", double(geo.tokens_per_step)}};
        if (resumed) {
            runlog = RunLog::resume(h5, groups, resumed->run_log_step, now_str, now_num);
            // Rows are synced before each checkpoint; a file that still ends short of it lost them (a copy, a disk
            // that lied about a sync): the run would go on with a gap in its curves.
            const int64_t last = runlog->last_step("train");
            SL_REQUIRE(last == resumed->run_log_step,
                       "cannot resume: {} ends at step {}, but {} is of step {}: the rows between are lost; resume "
                       "from a checkpoint of step {} or less (move the newer ones out of checkpoints/), or start over "
                       "with --overwrite",
                       h5, last, resume_from, resumed->run_log_step, last);
            // Without data.val the val curve would stop where the train curve goes on, and compare would take its
            // last row, of an earlier step, for the run's final val loss.
            const int64_t validated = runlog->last_step("val");
            if (validated >= 0 && cfg.data.val.empty()) {
                const std::string val = checkpoint_config(resume_from).data.val;
                fail("cannot resume from {}: data.val is empty now, but the run validated on '{}' up to step {}; its "
                     "val curve would stop there while training goes on. Resume with data.val '{}' (or shards "
                     "elsewhere that hold the same tokens), or start a new run (another run.name)",
                     resume_from, val, validated, val);
            }
            return;
        }
        std::vector<std::pair<std::string, std::string>> str_attrs = provenance_attrs(*backend);
        str_attrs.insert(str_attrs.end(),
                         {{"sink_positions", fmt::format("[{}]", fmt::join(sink->positions(), ", "))},
                          {runlog::kRunIdAttr, run_id = runlog::new_run_id()}});
        std::vector<std::pair<std::string, double>> num_attrs = {{"n_params", double(model->table().count())},
                                                                 {"flops_per_token", model->flops_per_token()}};
        str_attrs.insert(str_attrs.begin(), now_str.begin(), now_str.end());
        num_attrs.insert(num_attrs.begin(), now_num.begin(), now_num.end());
        runlog = RunLog::create(h5, groups, str_attrs, num_attrs);
    }

    void setup() {
        require_same_config(comm, cfg);
        if (lead) {
            folder = std::make_unique<RunFolder>(dir, opt);
            resume_from = folder->resume_from();
        }
        try {
            load();
            start();
        } catch (...) {
            log_error(std::current_exception());
            throw;
        }
    }

    // The backend, the data and the model.
    void load() {
        backend = make_run_backend(cfg, comm, backend_note);

        if (lead) data_note = ensure_data(cfg.data, cfg.model, !resume_from.empty());
        comm.barrier();
        const int B = geo.micro_batch, T = geo.seq_len, V = cfg.model.vocab_size;
        train_data = std::make_unique<DataLoader>(cfg.data.train, B, T, comm, cfg.run.seed, true, V, "data.train");
        train_data->require_same_on_every_rank(comm, "data.train");
        if (!cfg.data.val.empty()) {
            val_data = std::make_unique<DataLoader>(cfg.data.val, B, T, comm, cfg.run.seed, false, V, "data.val");
            val_data->require_same_on_every_rank(comm, "data.val");
            val_batches = distinct_batches(*val_data, cfg.metrics.val_batches, B, "metrics.val_batches");
        }
        inputs.resize(size_t(B) * T);
        targets.resize(size_t(B) * T);

        model = std::make_unique<Model>(*backend, cfg, B, T);
        model->init(cfg.run.seed);
        optim = std::make_unique<AdamW>(*model, cfg.train, cfg.precision, cfg.run.seed,
                                        &device_communicator(comm, *backend));
        sink = std::make_unique<SinkMetrics>(*model, cfg);
    }

    // The checkpoint (--resume), then the run folder, train.log and metrics.h5: a failure from there on puts back a run
    // that --overwrite set aside.
    void start() {
        const std::optional<TrainState> resumed = restore();
        try {
            if (lead) folder->prepare(cfg);
            comm.barrier();
            setup_logging();
            create_run_log(resumed);
            inject.after_setup();
            log_start(resumed);
        } catch (...) {
            log_error(std::current_exception());
            undo_start(std::current_exception());
            throw;
        }
    }

    void log_start(const std::optional<TrainState>& resumed) {
        log->info("sinklab {} | run {} | {} on {} | {} ranks | {:.2f}M parameters | {} tokens/step ({} x {} x {} ranks "
                  "x {} accum)",
                  SINKLAB_VERSION, dir, backend->name(), backend->device_name(), comm.world(),
                  double(model->table().count()) / 1e6, geo.tokens_per_step, geo.micro_batch, geo.seq_len, comm.world(),
                  geo.accum);
        start_logged = true;
        if (lead && !backend_note.empty()) log->info("note: {}", backend_note);
        if (lead && !data_note.empty()) log->info("note: {}", data_note);
        if (const std::string note = backend->attention_impl_note(cfg.attention.impl); lead && !note.empty())
            log->info("{}", note);
        if (lead)
            for (const std::string& note : config::training_notes(cfg)) log->info("note: {}", note);
        // The rounding acts where the f32 master weights are copied to bf16 ones; other computes keep no such copy.
        if (lead && cfg.precision.rounding == "stochastic" && backend->compute_dtype() != DType::BF16)
            log->info("note: precision.rounding = stochastic has no effect: this run computes in {}, and its weights "
                      "are never rounded to bf16",
                      dtype_name(backend->compute_dtype()));
        if (lead)
            for (const std::string& note : folder->notes()) log->info("{}", note);
        if (resumed) {
            log->info("resumed from {} at step {}{}{}", resume_from, start_step,
                      resumed->world_size == comm.world()
                          ? ""
                          : fmt::format(" (written by {} ranks; {} tokens per step from here on)", resumed->world_size,
                                        geo.tokens_per_step),
                      changed_on_resume.empty()
                          ? ""
                          : fmt::format(" | config changed since: {}", fmt::join(changed_on_resume, ", ")));
            if (lead && !lr_on_resume.empty()) log->info("note: {}", lr_on_resume);
            if (lead && val_data && resumed->world_size > 1 && !resumed->shared_validation)
                log->info("note: validation reads the first {} micro-batches of data.val on any number of ranks now; "
                          "the run's rows up to step {} were measured on {} of them ({} ranks x {}), so its val curve "
                          "may step there",
                          val_batches.batches, start_step, int64_t(resumed->world_size) * cfg.metrics.val_batches,
                          resumed->world_size, cfg.metrics.val_batches);
        } else if (lead && !folder->kept_aside().empty())
            log->info("no checkpoint in {} to resume from: starting at step 0; the rows logged before are kept in {}",
                      dir, folder->kept_aside());
        else if (opt.resume)
            log->info("no run in {} yet: starting at step 0", dir);
        if (!val_batches.notice.empty()) log->info("{}", val_batches.notice);
        if (const std::string note = epochs_note(); lead && !note.empty()) log->info("note: {}", note);
    }

    // A run longer than its data repeats tokens, which a small corpus does without saying so: its train loss then
    // measures recall of seen tokens too.
    std::string epochs_note() const {
        const LoaderPosition at = train_data->position();
        const DataPasses d = data_passes(uint64_t(train_data->windows_per_epoch()), geo, cfg.train.max_steps,
                                         start_step, at.epoch, at.cursor);
        if (d.first_repeat_step == 0) return "";
        return fmt::format("data.train holds {} tokens: {} batches of {} windows of {} tokens per epoch, so the "
                           "run's {} steps read it {:.1f} times, and from step {} on it trains on tokens it has seen "
                           "(its train loss measures recall as well); prepare more data to train on new tokens "
                           "throughout",
                           train_data->tokens(), d.batches_per_epoch, geo.world * geo.micro_batch, geo.seq_len,
                           cfg.train.max_steps, d.epochs, d.first_repeat_step);
    }

    // A start that fails before commit_start (in setup, the first validation or the first step's passes: too
    // little memory for the first use of the backend's scratch, say) leaves the run folder as it was.
    void undo_start(const std::exception_ptr& failure) {
        if (!lead || committed) return;
        runlog.reset();  // the new metrics.h5 closed before it goes
        folder->undo(failure);
    }

    // The old run (--overwrite) goes only once every rank has run the first step's forward and backward passes:
    // the all-reduce after them is where a rank that failed before ends the job, with the old run still aside for
    // the next start to put back.
    void commit_start() {
        if (committed) return;
        if (lead)
            if (const std::string note = folder->commit(); !note.empty()) log->info("{}", note);
        committed = true;
    }

    void run() {
        try {
            run_steps();
        } catch (...) {
            log_error(std::current_exception());
            undo_start(std::current_exception());
            throw;
        }
    }

    // Refuses a resume on shards of `key` that hold other tokens than the run used (`tokens` and `checksum` as the
    // checkpoint recorded them: -1 and empty when it did not). `used_glob` is the checkpoint's glob (rank 0 only).
    void require_same_data(const std::string& key, const std::string& used, const std::string& used_glob,
                           const std::string& glob, const DataLoader& data, int64_t tokens,
                           const std::string& checksum) const {
        SL_REQUIRE(tokens < 0 || tokens == data.tokens(),
                   "cannot resume from {}: {} '{}' holds {} tokens now, but the run {} {}: its shards changed since "
                   "(prepared again, files added or removed); restore them, or start a new run (another run.name)",
                   resume_from, key, glob, data.tokens(), used, tokens);
        // Fingerprints of another scheme (or none, from before) cannot be compared, and then the glob must be the
        // one the run used.
        const std::string fingerprint = data.fingerprint();
        const auto scheme = [](const std::string& f) { return f.substr(0, f.find(':')); };
        SL_REQUIRE(!lead || used_glob == glob || scheme(checksum) == scheme(fingerprint),
                   "cannot resume from {}: {} changed ('{}' -> '{}'), and the checkpoint holds no checksum of this "
                   "sinklab's kind to show that the shards there hold the tokens the run {}; resume with {} '{}'",
                   resume_from, key, used_glob, glob, used, key, used_glob);
        SL_REQUIRE(scheme(checksum) != scheme(fingerprint) || checksum == fingerprint,
                   "cannot resume from {}: {} '{}' holds as many tokens as the run {} ({}), but not the same ones "
                   "(checksum {}, the run's {}): its shards were replaced since (prepared again from other text, "
                   "files swapped or rewritten); restore them (rerunning the sinklab prepare that made them remakes "
                   "them), or start a new run (another run.name)",
                   resume_from, key, glob, used, tokens, fingerprint, checksum);
    }

    // --resume: rank 0 verifies and reads the newest checkpoint; every rank gets its tensors and state.
    std::optional<TrainState> restore() {
        std::string text;
        std::unique_ptr<WholeMoments> moments;
        Config trained;  // rank 0: the checkpoint's config
        if (lead && !resume_from.empty()) {
            last_checkpoint = resume_from;
            moments = optim->moment_buffers();
            text = encode_state(load_checkpoint(resume_from, cfg, *model, *moments));
            trained = checkpoint_config(resume_from);
            changed_on_resume = resume_changes(trained, cfg);
        }
        text = broadcast_string(comm, std::move(text), 0);
        if (text.empty()) return std::nullopt;
        const TrainState s = decode_state(text, resume_from);
        if (lead) run_id = resumed_run_id(s);
        if (lead && s.step < cfg.train.max_steps) lr_on_resume = schedule_change_note(trained.train, cfg.train, s.step);
        // The data position counts windows of data.train's shards: other shards (prepared again since, files added
        // or removed) would continue the run on other data from a meaningless place. Other data.val shards would
        // continue its validation curve on other tokens.
        require_same_data("data.train", "trained on", trained.data.train, cfg.data.train, *train_data, s.data_tokens,
                          s.data_checksum);
        if (val_data && (s.val_tokens >= 0 || (lead && !trained.data.val.empty())))
            require_same_data("data.val", "validated on", trained.data.val, cfg.data.val, *val_data, s.val_tokens,
                              s.val_checksum);
        if (!moments) moments = optim->moment_buffers();
        Communicator& device = device_communicator(comm, *backend);
        device.broadcast(*backend, model->truth(), 0);
        moments->broadcast(*backend, device, 0);
        optim->keep_shard(*moments);
        model->sync_weights();
        optim->set_steps_taken(s.optimizer_steps);
        train_data->seek(s.train_data);
        guard.restore(s.guard);
        start_step = s.step;
        // Checkpoints from before tokens were recorded: the step's tokens of the config they were written with.
        if (s.tokens >= 0)
            start_tokens = s.tokens;
        else if (lead)
            start_tokens = s.step * step_geometry(checkpoint_config(resume_from), s.world_size).tokens_per_step;
        check_replicas(start_step);
        return s;
    }

    // Rank 0: the run log's identity, which the checkpoint `s` recorded. A run log put there by hand (another run's,
    // copied over) would get this run's rows and config after the other's: refused before the run folder is touched.
    // A missing or unreadable one is left to the resume's own diagnosis (the identity the checkpoint recorded goes
    // on).
    std::string resumed_run_id(const TrainState& s) const {
        const std::string h5 = (fs::path(dir) / "metrics.h5").string(), found = run_identity(dir);
        SL_REQUIRE(!is_eval_file(h5),
                   "cannot resume: {} is the output of sinklab eval, not the run's log; put the run's own metrics.h5 "
                   "back, or start over with --overwrite",
                   h5);
        const bool readable = !found.empty() && found != "(unreadable)";
        SL_REQUIRE(s.run_id.empty() || !readable || found == s.run_id,
                   "cannot resume: {} is the run log of another run (run_id {}) than the one {} continues ({}); put "
                   "that run's own metrics.h5 back, or start over with --overwrite",
                   h5, found, resume_from, s.run_id);
        return readable ? found : s.run_id;
    }

    // Ranks must hold the same parameters; a cheap checksum of the master weights compares them.
    void check_replicas(int64_t step) {
        if (comm.world() == 1) return;
        const std::vector<int> differ = ranks_differing_from_root(comm, backend->checksum(model->truth()));
        SL_REQUIRE(differ.empty(),
                   "step {}: the parameters of rank(s) {} differ from rank 0's (checksum every fault.check_every "
                   "steps): the ranks no longer train one model; resume from the last checkpoint with --resume",
                   step, fmt::join(differ, ", "));
    }

    // Rank 0 syncs the run log (the checkpoint's rows must be on disk first) and writes the checkpoint; every
    // rank calls this, for the sharded optimizer's moments are gathered first.
    void checkpoint(int64_t step) {
        const std::unique_ptr<WholeMoments> moments = optim->gather_moments();
        if (!lead) return;
        runlog->sync();
        TrainState s;
        s.step = step;
        s.tokens = tokens_through(step);
        s.run_log_step = step;
        s.run_id = run_id;
        s.optimizer_steps = optim->steps_taken();
        s.train_data = train_data->position();
        s.data_tokens = train_data->tokens();
        s.data_checksum = train_data->fingerprint();
        if (val_data) {
            s.val_tokens = val_data->tokens();
            s.val_checksum = val_data->fingerprint();
        }
        s.world_size = comm.world();
        s.config_hash = config_hash(cfg);
        s.guard = guard.state();
        const auto t0 = std::chrono::steady_clock::now();
        last_checkpoint = write_checkpoint(dir, cfg, *model, *moments, s, cfg.checkpoint.keep);
        log->info("step {:>6} | checkpoint {} ({:.2f} s)", step, last_checkpoint,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }

    // The mean loss over the first val_batches micro-batches of data.val, rank r taking batches r, r + world, ...:
    // the same windows on any number of ranks, so that runs on other ranks and their resumes validate alike.
    double validate() {
        double sum = 0;
        for (int64_t g = comm.rank(); g < val_batches.batches; g += comm.world()) {
            val_data->batch_at(g, inputs.data(), targets.data());
            sum += model->forward(inputs.data(), targets.data(), 0.f);
        }
        comm.all_reduce_sum(&sum, 1);
        return sum / val_batches.batches;
    }

    void log_val(int64_t step) {
        if (!val_data) return;
        const double loss = validate();
        if (!lead) return;
        runlog->append("val", {{"step", {double(step)}}, {"loss", {loss}}});
        log->info("step {:>6} | val loss {:.4f}", step, loss);
    }

    // The sink metrics of the last micro-step's forward pass (its activations are still in place); at the last step
    // as well, so that a run of any length ends with rows of its last forward pass (the weights before the last
    // update, as on every row).
    void log_sink_metrics(int64_t step) {
        const MetricsConfig& m = cfg.metrics;
        const bool last = step == cfg.train.max_steps;
        if (m.every > 0 && (step % m.every == 0 || last)) {
            SinkValues v = sink->compute();
            sink->reduce(v, comm);
            if (lead) runlog->append("sink", sink->sink_row(step, v));
        }
        if (m.heavy_every > 0 && (step % m.heavy_every == 0 || last)) {
            HeavyValues v = sink->compute_heavy();
            sink->reduce(v, comm);
            if (lead) runlog->append("heavy", SinkMetrics::heavy_row(step, v));
        }
    }

    void run_steps() {
        using Clock = std::chrono::steady_clock;
        const int64_t max_steps = cfg.train.max_steps;
        if (start_step >= max_steps) {
            commit_start();
            log->info("the run is complete at step {} (train.max_steps = {}); raise train.max_steps to train longer",
                      start_step, max_steps);
            return;
        }
        const float grad_scale = 1.f / float(int64_t(geo.accum) * geo.micro_batch * geo.seq_len);
        const double peak = backend->peak_flops() * comm.world();
        const double flops_per_step = model->flops_per_token() * double(geo.tokens_per_step);
        Progress progress(max_steps, "train");
        const auto t_start = Clock::now();
        double step_s_total = 0;
        int stop_signal = 0;

        if (val_data && cfg.metrics.val_every > 0 && start_step == 0) log_val(start_step);
        HangWatchdog watchdog(cfg.fault.hang_timeout, start_step, [this](const std::string& what) { end_hung(what); });
        for (int64_t step = start_step; step < max_steps; step++) {
            const int64_t done = step + 1;
            inject.before_step(done);
            const auto t0 = Clock::now();
            const LoaderPosition data_at = train_data->position();
            model->zero_grad();
            double loss = 0;
            for (int micro = 0; micro < geo.accum; micro++) {
                train_data->next(inputs.data(), targets.data());
                inject.on_targets(done, targets.data(), targets.size(), cfg.model.vocab_size);
                loss += model->forward(inputs.data(), targets.data(), grad_scale);
                model->backward();
            }
            inject.after_backward(done, *model);
            log_sink_metrics(done);
            // The stop request travels with the loss, so that every rank stops after the same step.
            const auto t_comm = Clock::now();
            double reduced[2] = {loss / geo.accum, double(StopSignals::received() != 0)};
            comm.all_reduce_sum(reduced, 2);
            loss = reduced[0] / comm.world();
            device_communicator(comm, *backend).all_reduce_mean(*backend, model->grads());
            comm_s += std::chrono::duration<double>(Clock::now() - t_comm).count();
            check_log();  // before an --overwrite's old run goes: the log of the setup may have failed
            commit_start();
            const bool stop = reduced[1] > 0;
            if (stop && !stop_signal) stop_signal = StopSignals::received() ? StopSignals::received() : -1;

            const double norm = optim->grad_norm();
            const double lr = lr_at(cfg.train, step);
            const Verdict verdict = guard.check(loss, norm);
            if (verdict == Verdict::AbortNonFinite) abort_nonfinite(done, loss, norm, lr, data_at);
            if (verdict == Verdict::Apply) {
                const double clip =
                    cfg.train.grad_clip > 0 && norm > cfg.train.grad_clip ? cfg.train.grad_clip / norm : 1.0;
                optim->step(lr, clip);
                inject.after_update(done, *model);
            } else {
                const GuardState g = guard.state();
                log->info("step {:>6} | update skipped: {} (skipped so far: {} non-finite, {} spikes)", done,
                          verdict == Verdict::SkipSpike
                              ? fmt::format("loss {:.4f} is a spike (z-score {:.1f} > fault.spike_zscore {})", loss,
                                            guard.last_zscore(), cfg.fault.spike_zscore)
                              : fmt::format("loss {} / gradient norm {} not finite (fault.nan_policy = skip)", loss,
                                            norm),
                          g.skipped_nonfinite, g.skipped_spike);
            }
            backend->synchronize();
            const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
            step_s_total += dt;
            const double tok_s = double(geo.tokens_per_step) / dt;
            const double mfu = peak > 0 ? flops_per_step / dt / peak : 0.0;

            if (lead) {
                append_train_row(done, loss, lr, norm, dt, tok_s, mfu, skipped_code(verdict));
                const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
                const double eta = elapsed / double(done - start_step) * double(max_steps - done);
                if (done % cfg.train.log_every == 0 || done == max_steps) {
                    progress.clear();
                    log->info("step {:>6}/{} | loss {:.4f} | lr {:.2e} | grad {:.3f} | {} tok/s{} | {} elapsed | "
                              "ETA {}",
                              done, max_steps, loss, lr, norm, si(tok_s),
                              peak > 0 ? fmt::format(" | MFU {:.1f}%", 100 * mfu) : "", format_duration(elapsed),
                              format_duration(eta));
                }
                progress.update(done, fmt::format("step {}/{} loss {:.4f} ETA {}", done, max_steps, loss,
                                                  format_duration(eta)));
            }
            const bool last = done == max_steps;
            if (val_data && ((cfg.metrics.val_every > 0 && done % cfg.metrics.val_every == 0) || last)) {
                progress.clear();
                log_val(done);
            }
            if (lead && (done % cfg.metrics.flush_every == 0 || last)) runlog->flush();
            // A checkpoint holds rank 0's weights for every rank: ranks that drifted apart are stopped before one.
            const bool save = last || stop || (cfg.checkpoint.every > 0 && done % cfg.checkpoint.every == 0);
            if (save || done % cfg.fault.check_every == 0) check_replicas(done);
            if (save) {
                progress.clear();
                checkpoint(done);
            }
            watchdog.finished(done);
            if (stop && !last) {
                progress.finish();
                log->info("stopped after step {} on {}: checkpoint written; continue with --resume", done,
                          stop_signal > 0 ? signal_name(stop_signal) : "another rank's signal");
                return;
            }
        }
        progress.finish();
        if (lead) runlog->flush();
        const int64_t steps = max_steps - start_step;
        // Skipped updates are logged one by one; a run that skipped most of them must not end looking like others.
        const GuardState g = guard.state();
        const int64_t skipped = g.skipped_nonfinite + g.skipped_spike;
        log->info("done: {} steps in {}{}{} | run folder {}", steps,
                  format_duration(std::chrono::duration<double>(Clock::now() - t_start).count()),
                  comm.world() > 1 ? fmt::format(" | all-reduce {:.1f}% of step time", 100 * comm_s / step_s_total)
                                   : "",
                  skipped ? fmt::format(" | {} of the run's {} updates skipped (non-finite {}, spikes {})", skipped,
                                        max_steps, g.skipped_nonfinite, g.skipped_spike)
                          : "",
                  dir);
        check_log();
    }

    // Training tokens through step `done`: a resume may have changed the ranks, and with them the tokens per step.
    int64_t tokens_through(int64_t done) const { return start_tokens + (done - start_step) * geo.tokens_per_step; }

    void append_train_row(int64_t done, double loss, double lr, double norm, double dt, double tok_s, double mfu,
                          int skipped) {
        runlog->append("train", {{"step", {double(done)}},
                                 {"tokens", {double(tokens_through(done))}},
                                 {"loss", {loss}},
                                 {"lr", {lr}},
                                 {"grad_norm", {norm}},
                                 {"step_time_s", {dt}},
                                 {"tokens_per_s", {tok_s}},
                                 {"mfu", {mfu}},
                                 {"skipped", {double(skipped)}}});
    }

    // The hang watchdog's end of the run, on its thread, while the training thread is stuck (train/hang_watchdog.h).
    [[noreturn]] void end_hung(const std::string& what) {
        const std::string message = fmt::format(
            "{}: {}; it ends here: {} with --resume (where a step with its checkpoint or validation takes this long, "
            "raise fault.hang_timeout)",
            what, hang_cause(comm.world(), "the run"), where_to_go_on("last"));
        // train.log may be on the file system that stalled: its line gets a few seconds, the end does not wait.
        auto logged = std::make_shared<std::atomic<bool>>(false);
        std::thread([this, message, logged] {
            log_error(std::make_exception_ptr(Error(message)));
            *logged = true;
        }).detach();
        for (int i = 0; i < 50 && !*logged; i++) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        exit_with_error_past_a_stuck_thread(message);
    }

    // Where a failed run goes on: "the <last> checkpoint is ...; resume from it", or "...; start over" where there is
    // none (a --resume then starts the run over). Only rank 0 knows the checkpoints.
    std::string where_to_go_on(const char* last) const {
        if (!lead) return fmt::format("rank 0 names the {} checkpoint; resume from it", last);
        if (!last_checkpoint.empty())
            return fmt::format("the {} checkpoint is {}; resume from it", last, last_checkpoint);
        if (cfg.checkpoint.every > 0)
            return fmt::format("no checkpoint was due yet (checkpoint.every={}); start over", cfg.checkpoint.every);
        return "no checkpoint was written (set checkpoint.every to keep some); start over";
    }

    // fault.nan_policy = abort: the step's row and a diagnostic are written, no checkpoint (the last one
    // stays the last good one), and every rank fails.
    [[noreturn]] void abort_nonfinite(int64_t done, double loss, double norm, double lr,
                                      const LoaderPosition& data_at) {
        std::string report = "a diagnostic on rank 0";
        if (lead) {
            append_train_row(done, loss, lr, norm, 0, 0, 0, skipped_code(Verdict::AbortNonFinite));
            runlog->flush();
            report = write_nonfinite_report(dir, {done, loss, norm, lr, data_at, last_checkpoint}, *model);
        }
        const std::string from = where_to_go_on("last good");
        // Before any update the weights are the initial ones, which no learning rate changes.
        SL_REQUIRE(optim->steps_taken() > 0,
                   "step {}: the loss ({}) or the gradient norm ({}) is not finite before any update, from the initial "
                   "weights; wrote {}; check model.init_std and the model's config, and start over",
                   done, loss, norm, report);
        fail("step {}: the loss ({}) or the gradient norm ({}) is not finite; wrote {}; {} with --resume and a lower "
             "train.lr, or set fault.nan_policy=skip",
             done, loss, norm, report, from);
    }
};

Trainer::Trainer(const Config& cfg, const TrainOptions& opt, Communicator& comm)
    : impl_(std::make_unique<Impl>(cfg, opt, comm)) {
    impl_->setup();
}

Trainer::~Trainer() = default;

void Trainer::run() { impl_->run(); }

}  // namespace sinklab
