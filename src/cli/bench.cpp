// sinklab bench CONFIG: training-step throughput on random tokens, the share of time per op family, and
// the same for other attention variants in the same process, so that ratios compare like with like.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/config_args.h"
#include "core/rng.h"
#include "metrics/sink_metrics.h"
#include "model/model.h"
#include "train/optimizer.h"

namespace sinklab::cli {

namespace {

struct BenchArgs {
    ConfigArgs config;
    int steps = 10;
    int warmup = 2;
    std::vector<std::string> variants;  // empty: the config's own
    bool profile = true;
    bool metrics = false;  // also time each variant with the per-step sink metrics
};

struct BenchResult {
    std::string label;
    double tokens_per_s = 0, step_s = 0, mfu = 0;
    std::array<double, size_t(OpFamily::kCount)> op_s{};
};

BenchResult bench_one(Backend& be, const Config& cfg, const BenchArgs& args, bool metrics, const std::string& label) {
    const int B = cfg.train.micro_batch, T = cfg.model.seq_len;
    Model model(be, cfg, B, T);
    model.init(cfg.run.seed);
    AdamW optim(model, cfg.train, cfg.precision, cfg.run.seed);
    SinkMetrics sink(model, cfg);
    Rng rng(cfg.run.seed, 99);
    std::vector<int32_t> inputs(size_t(B) * T), targets(size_t(B) * T);
    for (size_t i = 0; i < inputs.size(); i++) {
        inputs[i] = int32_t(rng.below(uint64_t(cfg.model.vocab_size)));
        targets[i] = int32_t(rng.below(uint64_t(cfg.model.vocab_size)));
    }
    auto step = [&] {
        model.zero_grad();
        model.forward(inputs.data(), targets.data(), 1.f / float(B * T));
        model.backward();
        if (metrics) sink.compute();
        optim.step(cfg.train.lr, std::min(1.0, 1.0 / (optim.grad_norm() + 1e-6)));
    };
    for (int i = 0; i < args.warmup; i++) step();
    be.synchronize();
    be.set_profiling(args.profile);
    be.reset_profile();
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < args.steps; i++) step();
    be.synchronize();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    BenchResult r;
    r.label = label;
    r.op_s = be.profile();
    be.set_profiling(false);
    r.step_s = dt / args.steps;
    r.tokens_per_s = double(B) * T / r.step_s;
    r.mfu = be.peak_flops() > 0 ? model.flops_per_token() * r.tokens_per_s / be.peak_flops() : 0.0;
    return r;
}

void run_bench(const BenchArgs& args) {
    const Config base = load_config(args.config.path, args.config.overrides);
    BackendOptions bo;
    bo.kind = base.backend;
    bo.cuda_compute = base.precision.compute == "fp32" ? DType::F32 : DType::BF16;
    bo.threads = base.run.threads;
    auto be = make_backend(bo);
    std::printf("bench %s on %s: micro-batch %d x %d tokens, %d timed steps after %d warm-up%s\n",
                base.source.c_str(), be->device_name().c_str(), base.train.micro_batch, base.model.seq_len, args.steps,
                args.warmup, args.profile ? " (per-op timing on: adds synchronization)" : "");

    std::vector<BenchResult> results;
    const std::vector<std::string> variants = args.variants.empty() ? std::vector{base.attention.variant} : args.variants;
    for (const std::string& v : variants) {
        Config cfg = base;
        cfg.attention.variant = v;
        validate_config(cfg);
        results.push_back(bench_one(*be, cfg, args, false, v));
        if (args.metrics) results.push_back(bench_one(*be, cfg, args, true, v + " +metrics"));
    }

    std::printf("\n%-24s %12s %10s %8s %9s\n", "variant", "tokens/s", "step ms", "MFU", "vs first");
    for (const auto& r : results)
        std::printf("%-24s %12.0f %10.2f %7.1f%% %8.3fx\n", r.label.c_str(), r.tokens_per_s, 1e3 * r.step_s,
                    100 * r.mfu, r.tokens_per_s / results[0].tokens_per_s);
    if (!args.profile) return;
    std::printf("\nshare of op time per family (%%)\n%-14s", "op");
    for (const auto& r : results) std::printf(" %12.12s", r.label.c_str());
    std::printf("\n");
    for (size_t f = 0; f < size_t(OpFamily::kCount); f++) {
        std::printf("%-14s", op_family_name(OpFamily(f)));
        for (const auto& r : results) {
            double total = 0;
            for (double s : r.op_s) total += s;
            std::printf(" %12.1f", total > 0 ? 100 * r.op_s[f] / total : 0.0);
        }
        std::printf("\n");
    }
}

}  // namespace

void add_bench(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench", "measure training throughput and time per op family on random tokens");
    auto args = std::make_shared<BenchArgs>();
    add_config_args(*cmd, args->config);
    cmd->add_option("--steps", args->steps, "timed training steps")->check(CLI::PositiveNumber);
    cmd->add_option("--warmup", args->warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
    cmd->add_option("--variants", args->variants, "attention variants to compare in this process, e.g. standard headnorm");
    cmd->add_flag("--profile,!--no-profile", args->profile, "time each op family (default on)");
    cmd->add_flag("--metrics", args->metrics, "also time each variant with the per-step sink metrics (metrics.every = 1)");
    cmd->callback([args] { run_bench(*args); });
}

}  // namespace sinklab::cli
