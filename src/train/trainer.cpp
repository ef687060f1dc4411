#include "train/trainer.h"

#include <fmt/ranges.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "backend/backend.h"
#include "core/progress.h"
#include "data/dataloader.h"
#include "data/ensure.h"
#include "metrics/runlog.h"
#include "metrics/schema.h"
#include "metrics/sink_metrics.h"
#include "model/model.h"
#include "train/optimizer.h"
#include "train/schedule.h"

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
                   "{}: train.tokens_per_step = {} is not a multiple of micro_batch x seq_len x ranks = {} x {} x {} "
                   "= {}; change it or the number of ranks",
                   cfg.source, cfg.train.tokens_per_step, g.micro_batch, g.seq_len, world, per_micro);
        g.accum = int(cfg.train.tokens_per_step / per_micro);
    }
    g.tokens_per_step = per_micro * g.accum;
    return g;
}

std::string run_dir(const Config& cfg) { return (fs::path(cfg.run.out_dir) / cfg.run.name).string(); }

namespace {

std::string now_iso8601() {
    std::time_t t = std::time(nullptr);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    return buf;
}

std::string si(double v) {
    if (v >= 1e9) return fmt::format("{:.2f}G", v / 1e9);
    if (v >= 1e6) return fmt::format("{:.2f}M", v / 1e6);
    if (v >= 1e3) return fmt::format("{:.1f}k", v / 1e3);
    return fmt::format("{:.0f}", v);
}

}  // namespace

struct Trainer::Impl {
    Config cfg;
    TrainOptions opt;
    Communicator& comm;
    StepGeometry geo;
    std::string dir;
    bool lead;  // rank 0 writes files and logs
    std::shared_ptr<spdlog::logger> log;
    std::unique_ptr<Backend> backend;
    std::unique_ptr<Model> model;
    std::unique_ptr<AdamW> optim;
    std::unique_ptr<SinkMetrics> sink;
    std::unique_ptr<DataLoader> train_data, val_data;
    std::unique_ptr<RunLog> runlog;
    std::vector<int32_t> inputs, targets;  // [B, T] host staging

    Impl(const Config& c, const TrainOptions& o, Communicator& cm) : cfg(c), opt(o), comm(cm) {
        geo = step_geometry(cfg, comm.world());
        dir = run_dir(cfg);
        lead = comm.rank() == 0;
    }

    void prepare_run_dir() {
        if (!lead) return;
        const fs::path d(dir);
        if (fs::exists(d / "metrics.h5") && !opt.resume) {
            SL_REQUIRE(opt.overwrite,
                       "run folder {} already holds a run; continue it with --resume, replace it with --overwrite, or "
                       "pick another name with --set run.name=NAME",
                       dir);
            fs::remove_all(d);
        }
        std::error_code ec;
        fs::create_directories(d, ec);
        SL_REQUIRE(!ec && fs::is_directory(d), "cannot create the run folder {}: {}; check run.out_dir", dir,
                   ec.message());
        const fs::path cfg_path = d / "config.yaml";
        std::ofstream f(cfg_path);
        f << dump_config(cfg);
        SL_REQUIRE(f.good(), "cannot write {}: check permissions and free space", cfg_path.string());
    }

    void setup_logging() {
        std::vector<spdlog::sink_ptr> sinks;
        if (lead) {
            sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
            sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>((fs::path(dir) / "train.log").string()));
        }
        log = std::make_shared<spdlog::logger>("train", sinks.begin(), sinks.end());
        log->set_pattern("%v");
        log->flush_on(spdlog::level::info);
    }

    void setup() {
        prepare_run_dir();
        comm.barrier();
        setup_logging();

        BackendOptions bo;
        bo.kind = cfg.backend;
        bo.cuda_compute = cfg.precision.compute == "fp32" ? DType::F32 : DType::BF16;
        bo.threads = cfg.run.threads;
        bo.device = comm.local_rank();
        backend = make_backend(bo);

        if (lead) ensure_data(cfg.data, cfg.model);
        comm.barrier();
        const int B = geo.micro_batch, T = geo.seq_len, V = cfg.model.vocab_size;
        train_data = std::make_unique<DataLoader>(cfg.data.train, B, T, comm.rank(), comm.world(), cfg.run.seed, true, V);
        if (!cfg.data.val.empty())
            val_data = std::make_unique<DataLoader>(cfg.data.val, B, T, comm.rank(), comm.world(), cfg.run.seed, false, V);
        inputs.resize(size_t(B) * T);
        targets.resize(size_t(B) * T);

        model = std::make_unique<Model>(*backend, cfg, B, T);
        model->init(cfg.run.seed);
        optim = std::make_unique<AdamW>(*model, cfg.train, cfg.precision, cfg.run.seed);
        sink = std::make_unique<SinkMetrics>(*model, cfg);

        if (lead) {
            const auto groups = run_log_groups(cfg.model.n_layer, cfg.model.n_head, int(sink->positions().size()),
                                               sink->wo_std_positions());
            runlog = RunLog::create(
                (fs::path(dir) / "metrics.h5").string(), groups,
                {{"config_yaml", dump_config(cfg)},
                 {"sinklab_version", SINKLAB_VERSION},
                 {"git_rev", SINKLAB_GIT_REV},
                 {"backend", backend->name()},
                 {"device", backend->device_name()},
                 {"sink_positions", fmt::format("[{}]", fmt::join(sink->positions(), ", "))},
                 {"created", now_iso8601()}},
                {{"world_size", double(comm.world())},
                 {"n_params", double(model->table().count())},
                 {"flops_per_token", model->flops_per_token()},
                 {"tokens_per_step", double(geo.tokens_per_step)}});
        }
        log->info("sinklab {} | run {} | {} on {} | {} ranks | {:.2f}M parameters | {} tokens/step ({} x {} x {} ranks "
                  "x {} accum)",
                  SINKLAB_VERSION, dir, backend->name(), backend->device_name(), comm.world(),
                  double(model->table().count()) / 1e6, geo.tokens_per_step, geo.micro_batch, geo.seq_len, comm.world(),
                  geo.accum);
    }

    // Mean loss over the rank's micro-steps, averaged over ranks.
    double mean_over_ranks(double v) {
        comm.all_reduce_sum(&v, 1);
        return v / comm.world();
    }

    double validate() {
        val_data->reset();
        double sum = 0;
        for (int i = 0; i < cfg.metrics.val_batches; i++) {
            val_data->next(inputs.data(), targets.data());
            sum += model->forward(inputs.data(), targets.data(), 0.f);
        }
        return mean_over_ranks(sum / cfg.metrics.val_batches);
    }

    void log_val(int64_t step) {
        if (!val_data) return;
        const double loss = validate();
        if (!lead) return;
        runlog->append("val", {{"step", {double(step)}}, {"loss", {loss}}});
        log->info("step {:>6} | val loss {:.4f}", step, loss);
    }

    // The sink metrics of the last micro-step's forward pass (its activations are still in place).
    void log_sink_metrics(int64_t step) {
        const MetricsConfig& m = cfg.metrics;
        if (m.every > 0 && step % m.every == 0) {
            SinkValues v = sink->compute();
            sink->reduce(v, comm);
            if (lead) runlog->append("sink", sink->sink_row(step, v));
        }
        if (m.heavy_every > 0 && step % m.heavy_every == 0) {
            HeavyValues v = sink->compute_heavy();
            sink->reduce(v, comm);
            if (lead) runlog->append("heavy", SinkMetrics::heavy_row(step, v));
        }
    }

    void run() {
        using Clock = std::chrono::steady_clock;
        const int64_t max_steps = cfg.train.max_steps;
        const float grad_scale = 1.f / float(int64_t(geo.accum) * geo.micro_batch * geo.seq_len);
        const double peak = backend->peak_flops() * comm.world();
        const double flops_per_step = model->flops_per_token() * double(geo.tokens_per_step);
        Progress progress(max_steps, "train");
        const auto t_start = Clock::now();
        int64_t start_step = 0;

        if (val_data && cfg.metrics.val_every > 0) log_val(start_step);
        for (int64_t step = start_step; step < max_steps; step++) {
            const auto t0 = Clock::now();
            model->zero_grad();
            double loss = 0;
            for (int micro = 0; micro < geo.accum; micro++) {
                train_data->next(inputs.data(), targets.data());
                loss += model->forward(inputs.data(), targets.data(), grad_scale);
                model->backward();
            }
            loss = mean_over_ranks(loss / geo.accum);
            comm.all_reduce_mean(*backend, model->grads());
            log_sink_metrics(step + 1);
            const double norm = optim->grad_norm();
            SL_REQUIRE(std::isfinite(loss) && std::isfinite(norm),
                       "step {}: loss {} / gradient norm {} is not finite; lower train.lr or check the data", step + 1,
                       loss, norm);
            const double clip = cfg.train.grad_clip > 0 && norm > cfg.train.grad_clip ? cfg.train.grad_clip / norm : 1.0;
            const double lr = lr_at(cfg.train, step);
            optim->step(lr, clip);
            backend->synchronize();
            const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
            const int64_t done = step + 1;
            const double tok_s = double(geo.tokens_per_step) / dt;
            const double mfu = peak > 0 ? flops_per_step / dt / peak : 0.0;

            if (lead) {
                runlog->append("train", {{"step", {double(done)}},
                                         {"tokens", {double(done * geo.tokens_per_step)}},
                                         {"loss", {loss}},
                                         {"lr", {lr}},
                                         {"grad_norm", {norm}},
                                         {"step_time_s", {dt}},
                                         {"tokens_per_s", {tok_s}},
                                         {"mfu", {mfu}}});
                const double elapsed = std::chrono::duration<double>(Clock::now() - t_start).count();
                const double eta = elapsed / double(done - start_step) * double(max_steps - done);
                if (done % cfg.train.log_every == 0 || done == max_steps) {
                    progress.clear();
                    log->info("step {:>6}/{} | loss {:.4f} | lr {:.2e} | grad {:.3f} | {} tok/s{} | {} elapsed | ETA {}",
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
        }
        progress.finish();
        if (lead) runlog->flush();
        log->info("done: {} steps in {} | run folder {}", max_steps,
                  format_duration(std::chrono::duration<double>(Clock::now() - t_start).count()), dir);
    }
};

Trainer::Trainer(const Config& cfg, const TrainOptions& opt, Communicator& comm)
    : impl_(std::make_unique<Impl>(cfg, opt, comm)) {
    impl_->setup();
}

Trainer::~Trainer() = default;

void Trainer::run() { impl_->run(); }

}  // namespace sinklab
