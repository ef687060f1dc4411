// The run configuration: typed sections, loaded from YAML (inherit: + --set overrides), validated with
// errors that name the file, the key path and the value. configs/base.yaml documents every key.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace sinklab {

namespace config {
struct Origins;  // config/validate.h
}

struct RunConfig {
    std::string name = "run";     // run folder name under out_dir
    std::string out_dir = "runs";  // parent folder of run folders
    uint64_t seed = 1337;          // init, data order and every other random choice
    int threads = 0;               // CPU threads per rank; 0 = all cores / ranks on the node

    bool operator==(const RunConfig&) const = default;
};

struct ModelConfig {
    int vocab_size = 50304;
    int d_model = 768;
    int n_layer = 12;
    int n_head = 12;
    int n_kv_head = 0;  // 0 = n_head (plain MHA); else GQA with n_head % n_kv_head == 0
    int d_ff = 3072;    // SwiGLU hidden width
    int seq_len = 1024;
    float rope_theta = 10000.f;
    float norm_eps = 1e-6f;
    float init_std = 0.02f;  // W_O and w2 use init_std / sqrt(2 n_layer)

    int kv_heads() const { return n_kv_head ? n_kv_head : n_head; }
    int head_dim() const { return d_model / n_head; }

    bool operator==(const ModelConfig&) const = default;
};

struct HeadNormConfig {
    std::string gain = "per_head";      // per_head [H, hd] | shared [hd]
    std::string init = "first_token_std";  // ones | first_token_std (the released code's init)
    bool weight_decay = true;           // the released trainer decays the [H, hd] gain
    float eps = 1e-6f;

    bool operator==(const HeadNormConfig&) const = default;
};

struct AttentionConfig {
    // One of standard, headnorm, gated, sink_logit, off_by_one, sigmoid, or a '+'-joined combination
    // of at most one score kind (sink_logit | off_by_one | sigmoid) with headnorm and/or gated.
    std::string variant = "standard";
    bool qk_norm = false;
    HeadNormConfig headnorm;
    std::string gate = "channel";  // gated: one gate per head and channel | per head ("head")
    float sigmoid_bias = 0.f;      // sigmoid: b in sigmoid(q.k/sqrt(hd) + b)
    float sink_init = 0.f;         // sink_logit: initial per-head logit
    std::string impl = "sinklab";  // sinklab | sinklab_wgmma (ours on wgmma: sm_90, bf16, head dims 40..64 by 8) |
                                   // cudnn (CUDA, standard and headnorm only)
    // MiB of GPU memory in which our bf16 backward (head dims up to 64) keeps the score gradients for its dQ pass,
    // sequences in passes that fit; 0 = the dQ pass recomputes them (slower, no scratch).
    int ds_scratch_mib = 1024;

    // Parsed from variant at validation.
    bool headnorm_on() const;
    bool gated_on() const;
    std::string score() const;  // softmax | sink_logit | off_by_one | sigmoid

    bool operator==(const AttentionConfig&) const = default;
};

struct AmplifyConfig {
    int position = -1;        // token k whose W_O input is amplified; -1 = off
    float lambda = 1.f;
    std::vector<int> layers;  // layers (0-based) where it applies
    std::string mode = "centered";  // centered | centered_causal | scale

    // How many leading positions of a T-token sequence the mean mu averages: all (centered), those token k sees
    // (centered_causal), none (scale: mu = 0).
    int mean_rows(int T) const { return mode == "centered" ? T : mode == "centered_causal" ? position + 1 : 0; }

    bool operator==(const AmplifyConfig&) const = default;
};

struct InterventionConfig {
    std::vector<int> isolate;  // query rows that attend only to themselves
    AmplifyConfig amplify;

    // The positions whose rows the interventions change: the isolated ones, then the amplified one.
    std::vector<int> positions() const {
        std::vector<int> p = isolate;
        if (amplify.position >= 0) p.push_back(amplify.position);
        return p;
    }

    bool operator==(const InterventionConfig&) const = default;
};

struct DataConfig {
    std::string train = "";         // glob of token shards
    std::string val = "";           // glob of token shards; empty = no validation
    std::string tokenizer = "bytes";  // bytes | gpt2 (must match how the shards were made)
    std::string missing = "error";  // when the train shards are absent: error | synthetic | corpus

    bool operator==(const DataConfig&) const = default;
};

struct TrainConfig {
    int micro_batch = 4;           // sequences per rank per micro-step
    int64_t tokens_per_step = 0;   // global tokens per optimizer step; 0 = one micro-step on every rank
    int64_t max_steps = 1000;
    float lr = 1e-3f;
    float min_lr = 1e-4f;
    int64_t warmup_steps = 0;
    std::string schedule = "cosine";  // cosine | wsd | constant | linear
    int64_t decay_steps = 0;          // cosine/linear horizon; 0 = max_steps
    float wsd_decay_frac = 0.2f;      // wsd: share of max_steps spent decaying at the end
    float weight_decay = 0.1f;
    float beta1 = 0.9f;
    float beta2 = 0.95f;
    float eps = 1e-8f;
    float grad_clip = 1.f;  // global-norm clip; 0 = off
    int log_every = 1;      // console line every this many steps
    bool shard_optimizer = false;  // ZeRO-1: each rank keeps the AdamW state of 1/world of the parameters

    bool operator==(const TrainConfig&) const = default;
};

struct PrecisionConfig {
    std::string compute = "bf16";      // GPU: bf16 | fp32 (the CPU computes in fp32 always)
    std::string rounding = "nearest";  // master -> bf16 weights: nearest | stochastic

    bool operator==(const PrecisionConfig&) const = default;
};

struct MetricsConfig {
    int every = 1;                  // /sink row every this many steps; 0 = off
    int heavy_every = 100;          // /heavy row every this many steps; 0 = off
    std::vector<int> positions = {0};  // tracked key positions for attn_mass
    int wo_std_positions = 64;      // Tp: positions of wo_input_std
    float sink_eps = 0.3f;          // sink_rate threshold
    int val_every = 100;            // validation every this many steps; 0 = only at the end
    int val_batches = 8;            // micro-batches per validation
    int flush_every = 10;           // metrics.h5 flush interval in steps

    bool operator==(const MetricsConfig&) const = default;
};

struct CheckpointConfig {
    int every = 0;  // steps; 0 = only at the end
    int keep = 2;   // newest checkpoints kept

    bool operator==(const CheckpointConfig&) const = default;
};

struct FaultConfig {
    std::string nan_policy = "abort";  // abort | skip
    float spike_zscore = 0.f;           // skip an update whose loss z-score exceeds this; 0 = off
    int spike_window = 100;
    int check_every = 100;  // cross-rank parameter checksum interval
    float hang_timeout = 1800.f;  // seconds a step or eval batch may take before it is hung (train/hang_watchdog.h)

    bool operator==(const FaultConfig&) const = default;
};

struct Config {
    RunConfig run;
    ModelConfig model;
    AttentionConfig attention;
    InterventionConfig intervention;
    DataConfig data;
    TrainConfig train;
    PrecisionConfig precision;
    MetricsConfig metrics;
    CheckpointConfig checkpoint;
    FaultConfig fault;
    std::string backend = "auto";  // auto | cpu | cuda

    std::string source;  // file it was loaded from (for messages)

    bool operator==(const Config&) const = default;  // compares source too
};

// What a config is loaded for: evaluating or exporting a trained model checks everything but the training schedule
// (the optimizer step's tokens, warmup and decay), which neither uses and which a --set of the micro-batch, or a
// check added since the run was trained, could otherwise make them refuse.
enum class ConfigUse { train, eval };

// One override and where it was written, which errors name: "--set", or a suite file's line.
struct Override {
    std::string assignment;  // "a.b=value"
    std::string origin;
};

// Loads `path` (following inherit:), applies `overrides` ("a.b=value"), validates, and returns it.
// Every error names the file, the key path and the value, and says what to do.
// With `origins`, also where each key's value came from (file:line, --set, default), for later validations of
// configs derived from this one.
Config load_config_with_sources(const std::string& path, const std::vector<Override>& overrides,
                                config::Origins* origins = nullptr, ConfigUse use = ConfigUse::train);
// The same with overrides from the command line (--set).
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {},
                   config::Origins* origins = nullptr, ConfigUse use = ConfigUse::train);
// Validates a Config built in code (tests) the same way a loaded one is.
void validate_config(const Config& c);
// The resolved config as YAML, every key present, in schema order.
std::string dump_config(const Config& c);
// Stable hash of dump_config (ranks compare it at start).
uint64_t config_hash(const Config& c);
// The key paths ("train.lr") whose values differ between a and b, in schema order.
std::vector<std::string> changed_keys(const Config& a, const Config& b);
// "key A vs B" for each of those keys not in `ignore`, for messages.
std::vector<std::string> config_differences(const Config& a, const Config& b, const std::set<std::string>& ignore = {});

}  // namespace sinklab
