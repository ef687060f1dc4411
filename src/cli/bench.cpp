// sinklab bench CONFIG: training-step throughput on random tokens (with text's frequencies), the share of time per
// op family, and the same for other attention variants in the same process, so that ratios compare like with like.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <tuple>

#include "cli/commands.h"
#include "cli/config_args.h"
#include "config/validate.h"
#include "core/median.h"
#include "core/rng.h"
#include "dist/comm.h"
#include "metrics/sink_metrics.h"
#include "model/model.h"
#include "train/optimizer.h"
#include "train/run_backend.h"

namespace sinklab::cli {

namespace {

constexpr double kGiB = double(1 << 30);

struct BenchArgs {
    ConfigArgs config;
    int steps = 10;
    int warmup = 2;
    std::vector<std::string> variants;  // empty: the config's own
    std::vector<std::string> impls;     // attention.impl values (sinklab, cudnn); empty: the config's own
    int rounds = 1;
    bool profile = true;
    bool metrics = false;  // also time each variant with the per-step sink metrics
};

struct BenchResult {
    std::string label;
    double tokens_per_s = 0, step_s = 0, mfu = 0;
    size_t peak_bytes = 0, estimate_bytes = 0;  // measured backend memory, and `sinklab info`'s footprint
    std::array<double, size_t(OpFamily::kCount)> op_s{};  // over the timed steps
    int steps = 0;                                        // timed
    double attn_product_flops = 0;                        // see attention_product_flops
};

// The FLOPs of one attention product (2 hd per score) over a training step's causal scores, T (T + 1) / 2 per
// sequence, head and layer.
double attention_product_flops(const Config& cfg) {
    const ModelConfig& m = cfg.model;
    const double scores = double(cfg.train.micro_batch) * m.n_head * m.seq_len * (m.seq_len + 1.0) / 2;
    return 2.0 * m.head_dim() * scores * m.n_layer;
}

// One configuration over every round: the median round, and its tokens/s against the first configuration's as the
// median of the per-round ratios (each round runs every configuration once, in order, so a ratio pairs timings taken
// close together and a drift of the clock or the machine between rounds cancels).
struct Summary {
    BenchResult median;
    double vs_first = 0, spread = 0;  // spread: (slowest - fastest) / median step time over the rounds
};

Summary summarize(const std::vector<BenchResult>& rounds, const std::vector<BenchResult>& first) {
    std::vector<double> steps, ratios;
    for (size_t r = 0; r < rounds.size(); r++) {
        steps.push_back(rounds[r].step_s);
        ratios.push_back(rounds[r].tokens_per_s / first[r].tokens_per_s);
    }
    const double step = median(steps);
    const BenchResult& one = rounds.front();
    Summary s{one};
    s.median.step_s = step;
    s.median.tokens_per_s = one.tokens_per_s * one.step_s / step;
    s.median.mfu = one.mfu * one.step_s / step;
    s.median.op_s = {};  // summed over the rounds: the shares of all of them
    s.median.steps = 0;
    for (const BenchResult& r : rounds) {
        s.median.peak_bytes = std::max(s.median.peak_bytes, r.peak_bytes);
        for (size_t f = 0; f < r.op_s.size(); f++) s.median.op_s[f] += r.op_s[f];
        s.median.steps += r.steps;
    }
    s.vs_first = median(ratios);
    s.spread = (*std::max_element(steps.begin(), steps.end()) - *std::min_element(steps.begin(), steps.end())) / step;
    return s;
}

// Ids drawn by Zipf's law, P(k) proportional to 1 / (k + 1), as text's tokens roughly are: the commonest id is 9% of
// them at V = 50304 (GPT-2's commonest token: about 4% of English text) and 16% at 257 (the space byte: 15%). The
// embedding backward sums each id's rows, which uniform ids (each about once a batch) would leave unmeasured.
std::vector<int32_t> zipf_tokens(Rng& rng, size_t n, int V) {
    std::vector<double> cdf(static_cast<size_t>(V));  // [V]
    double sum = 0;
    for (int k = 0; k < V; k++) cdf[size_t(k)] = sum += 1.0 / (k + 1);
    std::vector<int32_t> ids(n);
    for (int32_t& id : ids)
        id = int32_t(std::min<ptrdiff_t>(std::upper_bound(cdf.begin(), cdf.end(), rng.uniform() * sum) - cdf.begin(),
                                         V - 1));
    return ids;
}

BenchResult bench_one(Backend& be, const Config& cfg, const BenchArgs& args, bool metrics, const std::string& label) {
    const int B = cfg.train.micro_batch, T = cfg.model.seq_len;
    be.reset_peak_memory();
    Model model(be, cfg, B, T);
    model.init(cfg.run.seed);
    AdamW optim(model, cfg.train, cfg.precision, cfg.run.seed);
    SinkMetrics sink(model, cfg);
    Rng rng(cfg.run.seed, 99);
    const std::vector<int32_t> inputs = zipf_tokens(rng, size_t(B) * T, cfg.model.vocab_size),
                               targets = zipf_tokens(rng, size_t(B) * T, cfg.model.vocab_size);
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
    r.peak_bytes = be.peak_memory();
    r.estimate_bytes = model_footprint(cfg, B, T, be.compute_dtype()).total();
    be.set_profiling(false);
    r.steps = args.steps;
    r.attn_product_flops = attention_product_flops(cfg);
    r.step_s = dt / args.steps;
    r.tokens_per_s = double(B) * T / r.step_s;
    r.mfu = be.peak_flops() > 0 ? model.flops_per_token() * r.tokens_per_s / be.peak_flops() : 0.0;
    return r;
}

void print_op_shares(const std::vector<Summary>& results) {
    std::printf("\nshare of op time per family (%%), columns by # above\n%-14s", "op");
    for (size_t i = 0; i < results.size(); i++) std::printf(" %7s", fmt::format("#{}", i + 1).c_str());
    std::printf("\n");
    for (size_t f = 0; f < size_t(OpFamily::kCount); f++) {
        std::printf("%-14s", op_family_name(OpFamily(f)));
        for (const Summary& s : results) {
            double total = 0;
            for (double t : s.median.op_s) total += t;
            std::printf(" %7.1f", total > 0 ? 100 * s.median.op_s[f] / total : 0.0);
        }
        std::printf("\n");
    }
    // Attention's own rate, comparable across attention.impl: the forward's 2 products (S, P V) and the backward's 5
    // (S again, dP, dV, dK, dQ) over the causal scores, whatever an implementation recomputes beyond them.
    std::printf("\nattention per step: ms, and TFLOP/s of its products (forward 2, backward 5) on the causal scores\n");
    for (const auto& [f, products, name] : {std::tuple{OpFamily::AttentionFwd, 2, "fwd"},
                                            std::tuple{OpFamily::AttentionBwd, 5, "bwd"}}) {
        std::printf("%-14s", fmt::format("{} ms", name).c_str());
        for (const Summary& s : results) std::printf(" %7.3g", 1e3 * s.median.op_s[size_t(f)] / s.median.steps);
        std::printf("\n%-14s", fmt::format("{} TFLOP/s", name).c_str());
        for (const Summary& s : results) {
            const double step_s = s.median.op_s[size_t(f)] / s.median.steps;
            std::printf(" %7.3g", step_s > 0 ? products * s.median.attn_product_flops / step_s / 1e12 : 0.0);
        }
        std::printf("\n");
    }
}

// One configuration to time: a variant, an attention implementation, with or without the metrics.
struct Entry {
    Config cfg;
    bool metrics = false;
    std::string label;
    std::string error;  // why this configuration could not run (the others still do)
    std::vector<BenchResult> rounds;
};

void run_bench(const BenchArgs& args) {
    require_single_process("bench");
    config::Origins origins;
    const Config base = load_config(args.config.path, args.config.overrides, &origins);
    std::string backend_note;
    auto be = make_run_backend(base, process_communicator(), backend_note);
    std::printf("bench %s on %s: micro-batch %d x %d tokens, %d timed steps after %d warm-up%s%s\n",
                base.source.c_str(), be->device_name().c_str(), base.train.micro_batch, base.model.seq_len, args.steps,
                args.warmup, args.rounds > 1 ? fmt::format(", {} rounds", args.rounds).c_str() : "",
                args.profile ? " (per-op timing on: adds synchronization)" : "");

    std::vector<Entry> entries;
    const std::vector<std::string> variants =
        args.variants.empty() ? std::vector{base.attention.variant} : args.variants;
    const std::vector<std::string> impls = args.impls.empty() ? std::vector{base.attention.impl} : args.impls;
    // Every configuration is checked before any note: a bad --variants or --impls value is then the one line, and
    // named as the flag's, not as the config file's.
    if (!args.variants.empty()) origins.by_key.insert_or_assign("attention.variant", "--variants");
    if (!args.impls.empty()) origins.by_key.insert_or_assign("attention.impl", "--impls");
    for (const std::string& impl : impls)
        for (const std::string& v : variants) {
            Config cfg = base;
            cfg.attention.variant = v;
            cfg.attention.impl = impl;
            config::validate_config(cfg, origins);
            const std::string label = impls.size() > 1 ? v + " [" + impl + "]" : v;
            for (bool metrics : {false, true})
                if (!metrics || args.metrics)
                    entries.push_back({cfg, metrics, metrics ? label + " +metrics" : label, "", {}});
        }
    if (!backend_note.empty()) std::printf("note: %s\n", backend_note.c_str());
    for (const std::string& impl : impls)
        if (const std::string note = be->attention_impl_note(impl); !note.empty()) std::printf("%s\n", note.c_str());
    // Round-robin: every configuration once per round. One that fails is not run again.
    for (int r = 0; r < args.rounds; r++)
        for (Entry& e : entries) {
            if (!e.error.empty()) continue;
            try {
                e.rounds.push_back(bench_one(*be, e.cfg, args, e.metrics, e.label));
            } catch (const Error& err) {
                std::fprintf(stderr, "bench: %s failed: %s\n", e.label.c_str(), err.what());
                e.error = err.what();
            }
        }

    auto ran = [](const Entry& e) { return e.error.empty(); };
    const auto first = std::find_if(entries.begin(), entries.end(), ran);
    std::vector<Summary> results;
    for (const Entry& e : entries)
        if (ran(e)) results.push_back(summarize(e.rounds, first->rounds));  // some ran: first is one of them
    std::printf("\n%3s %-32s %12s %10s %8s %9s %9s %9s %7s\n", "#", "variant", "tokens/s", "step ms", "MFU", "vs first",
                "mem GiB", "estimate", "spread");
    for (size_t i = 0, k = 0; i < entries.size(); i++) {
        if (!ran(entries[i])) {
            std::printf("%3zu %-32s failed: %s\n", i + 1, entries[i].label.c_str(), entries[i].error.c_str());
            continue;
        }
        const Summary& s = results[k++];
        const BenchResult& r = s.median;
        std::printf("%3zu %-32s %12.0f %10.2f %7.1f%% %8.3fx %9.3f %9.3f %6.1f%%\n", i + 1, r.label.c_str(),
                    r.tokens_per_s, 1e3 * r.step_s, 100 * r.mfu, s.vs_first, double(r.peak_bytes) / kGiB,
                    double(r.estimate_bytes) / kGiB, 100 * s.spread);
    }
    std::printf("mem GiB: the most backend memory held during the run (model, AdamW state, activations, op scratch, "
                "metric buffers; not library workspaces or the CUDA context); estimate: what `sinklab info` says\n");
    if (args.rounds > 1)
        std::printf("%d rounds: tokens/s, step ms and MFU of the median step time; vs first: the median of the "
                    "per-round ratios; spread: slowest minus fastest round over the median\n",
                    args.rounds);
    const auto failed = entries.size() - results.size();
    if (args.profile && !results.empty()) print_op_shares(results);
    SL_REQUIRE(failed == 0, "{} of {} bench configurations failed (their errors are above)", failed, entries.size());
}

}  // namespace

void add_bench(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench", "measure training throughput and time per op family on random tokens "
                                            "(Zipf-distributed, like text's)");
    auto args = std::make_shared<BenchArgs>();
    add_config_args(*cmd, args->config);
    cmd->add_option("--steps", args->steps, fmt::format("timed training steps (default {})", args->steps))
        ->check(at_least(1));
    cmd->add_option("--warmup", args->warmup, fmt::format("untimed steps first (default {})", args->warmup))
        ->check(at_least(0));
    cmd->add_option("--rounds", args->rounds,
                    "time every configuration this many times, round-robin, and report medians (ratios that noise "
                    "moves by about 1% per round on a GPU settle with more rounds)")
        ->check(at_least(1));
    cmd->add_option("--variants", args->variants,
                    "attention variants to compare in this process, e.g. standard headnorm");
    cmd->add_option("--impls", args->impls, "attention.impl values to compare in this process, e.g. sinklab cudnn");
    cmd->add_flag("!--no-profile", args->profile, "do not time each op family (the table of shares)");
    cmd->add_flag("--metrics", args->metrics,
                  "also time each variant with the per-step sink metrics (metrics.every = 1)");
    cmd->callback([args] { run_bench(*args); });
}

}  // namespace sinklab::cli
