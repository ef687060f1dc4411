// sinklab info CONFIG: what a run will be before it starts (parameters, FLOPs/token, memory, tokens/step).
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "cli/config_args.h"
#include "data/dataloader.h"
#include "data/glob.h"
#include "dist/comm.h"
#include "model/model.h"
#include "train/trainer.h"

namespace sinklab::cli {

namespace {

std::string gib(double bytes) {
    return bytes >= double(1 << 30) ? fmt::format("{:.2f} GiB", bytes / double(1 << 30))
                                    : fmt::format("{:.1f} MiB", bytes / double(1 << 20));
}

// The training data as the run will find it: its tokens and how often the run's steps read them.
std::string data_line(const Config& cfg, const StepGeometry& geo) {
    const std::vector<std::string> files = glob_files(cfg.data.train);
    if (files.empty())
        return fmt::format("'{}' matches no shard yet (data.missing: {})", cfg.data.train, cfg.data.missing);
    uint64_t tokens = 0;
    try {
        for (const std::string& f : files) tokens += Shard(f).tokens();
    } catch (const Error& e) {
        return fmt::format("'{}': {}", cfg.data.train, e.what());
    }
    const DataPasses d = data_passes(DataLoader::training_windows(tokens, geo.seq_len), geo, cfg.train.max_steps);
    if (d.batches_per_epoch == 0)
        return fmt::format("{} tokens in {} shard{}: less than one global batch", tokens, files.size(),
                           files.size() == 1 ? "" : "s");
    const std::string epochs = fmt::format("{:.3g}", d.epochs);
    return fmt::format("{} tokens in {} shard{}: the run's {} steps read {} epoch{}{}", tokens, files.size(),
                       files.size() == 1 ? "" : "s", cfg.train.max_steps, epochs, epochs == "1" ? "" : "s",
                       d.first_repeat_step ? fmt::format(", repeating tokens from step {} on", d.first_repeat_step)
                                           : "");
}

void print_info(const Config& cfg, int ranks) {
    const StepGeometry geo = step_geometry(cfg, ranks);
    const ParamTable table(cfg);
    const bool gpu = cfg.backend != "cpu";
    const DType compute = gpu && cfg.precision.compute != "fp32" ? DType::BF16 : DType::F32;
    const ModelFootprint fp = model_footprint(cfg, geo.micro_batch, geo.seq_len, compute, ranks);
    const double fpt = flops_per_token(cfg, table, geo.seq_len);

    std::map<std::string, int64_t> by_kind;  // parameters per tensor kind, summed over blocks
    for (const ParamInfo& p : table.all()) {
        const auto dot = p.name.rfind('.');
        by_kind[dot == std::string::npos ? p.name : p.name.substr(dot + 1)] += p.numel;
    }
    std::printf("config          %s\n", cfg.source.c_str());
    std::printf("model           d_model %d, %d layers, %d heads (%d kv) of %d, d_ff %d, vocab %d, seq_len %d\n",
                cfg.model.d_model, cfg.model.n_layer, cfg.model.n_head, cfg.model.kv_heads(), cfg.model.head_dim(),
                cfg.model.d_ff, cfg.model.vocab_size, cfg.model.seq_len);
    std::printf("attention       %s%s\n", cfg.attention.variant.c_str(), cfg.attention.qk_norm ? " + qk_norm" : "");
    std::printf("parameters      %.3fM (%lld)\n", double(fp.n_params) / 1e6, (long long)fp.n_params);
    for (const auto& [kind, n] : by_kind) std::printf("  %-13s %12lld\n", kind.c_str(), (long long)n);
    std::printf("FLOPs/token     %.3g (training, forward + backward)\n", fpt);
    std::printf("tokens/step     %lld = %d seq x %d tokens x %d ranks x %d accumulation\n",
                (long long)geo.tokens_per_step, geo.micro_batch, geo.seq_len, ranks, geo.accum);
    std::printf("FLOPs/step      %.3g\n", fpt * double(geo.tokens_per_step));
    std::printf("data.train      %s\n", data_line(cfg, geo).c_str());
    std::printf("memory/rank     %s (%s compute%s)\n",
                gib(double(fp.total())).c_str(),
                std::string(dtype_name(compute)).c_str(), gpu ? ", if the run lands on a GPU" : "");
    std::printf("  weights       %s\n", gib(double(fp.weights)).c_str());
    if (fp.master) std::printf("  master        %s\n", gib(double(fp.master)).c_str());
    std::printf("  gradients     %s\n", gib(double(fp.grads)).c_str());
    std::printf("  AdamW m, v    %s%s\n", gib(double(fp.moments)).c_str(),
                cfg.train.shard_optimizer && ranks > 1 ? fmt::format(" (this rank's shard of {})", ranks).c_str() : "");
    std::printf("  activations   %s (micro-batch %d x %d)\n", gib(double(fp.activations)).c_str(), geo.micro_batch,
                geo.seq_len);
    if (fp.attention_scratch)
        std::printf("  attention     %s (the attention backward's scratch: %s)\n",
                    gib(double(fp.attention_scratch)).c_str(),
                    cfg.attention.impl == "cudnn" ? "cuDNN's row sums and f32 dQ, not its workspace"
                                                  : "row sums and dS, under attention.ds_scratch_mib");
}

}  // namespace

void add_info(CLI::App& app) {
    auto* cmd = app.add_subcommand("info", "print parameters, FLOPs per token, memory and tokens per step");
    auto args = std::make_shared<ConfigArgs>();
    auto ranks = std::make_shared<int>(1);
    auto yaml = std::make_shared<bool>(false);
    add_config_args(*cmd, *args);
    cmd->add_option("--ranks", *ranks, "number of ranks the run will use")->check(at_least(1));
    cmd->add_flag("--yaml", *yaml, "print the resolved config (inherit and --set applied) as YAML instead");
    cmd->callback([args, ranks, yaml] {
        require_single_process("info");
        const Config cfg = load_config(args->path, args->overrides);
        if (*yaml)
            std::fputs(dump_config(cfg).c_str(), stdout);
        else
            print_info(cfg, *ranks);
    });
}

}  // namespace sinklab::cli
