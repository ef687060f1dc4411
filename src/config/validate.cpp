#include "config/validate.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "backend/backend.h"
#include "config/schema.h"
#include "config/variant.h"
#include "core/check.h"

namespace sinklab::config {
namespace {

// Tensor sizes are int64 element counts, and their sums over every tensor become size_t bytes (up to 8 per
// element, for weights, gradients, moments and activations): 2^50 elements keep all of that exact and are
// still far more than any machine's memory holds.
constexpr double kMaxElements = double(int64_t(1) << 50);

// Checks that involve more than one key; every message shows each key involved with its value and origin.
class Checker {
  public:
    Checker(const Config& c, const Origins& origins) : c_(c), origins_(origins) {}

    // "model.n_head=12 (configs/base.yaml:20)"
    std::string show(std::string_view path) const {
        const Field* f = find_field(path);
        SL_ASSERT(f, "no schema key {}", path);
        return fmt::format("{}={} ({})", path, format_value(*f, c_), origins_.of(path));
    }

    void shapes() const {
        const ModelConfig& m = c_.model;
        SL_REQUIRE(m.d_model % m.n_head == 0, "{} is not a multiple of {}; choose n_head dividing d_model",
                   show("model.d_model"), show("model.n_head"));
        SL_REQUIRE(m.n_head % m.kv_heads() == 0,
                   "{} is not a multiple of {}; set n_kv_head to a divisor of n_head (0 = one per query head)",
                   show("model.n_head"), show("model.n_kv_head"));
        SL_REQUIRE(m.head_dim() % 2 == 0,
                   "head_dim = d_model / n_head = {} is odd ({}, {}), but RoPE rotates pairs of channels; choose "
                   "an even head_dim",
                   m.head_dim(), show("model.d_model"), show("model.n_head"));
        // EOT is the id after the 256 bytes; GPT-2 BPE has 50257 ids.
        const int needed = c_.data.tokenizer == "gpt2" ? 50257 : 257;
        SL_REQUIRE(m.vocab_size >= needed, "{} is smaller than the {} ids of {}; set vocab_size >= {}",
                   show("model.vocab_size"), needed, show("data.tokenizer"), needed);
        sizes();
        SL_REQUIRE(c_.train.micro_batch <= kMaxMicroBatch,
                   "{} is more sequences than the {} a CUDA kernel's grid holds; lower it (train.tokens_per_step "
                   "accumulates micro-batches)",
                   show("train.micro_batch"), kMaxMicroBatch);
        SL_REQUIRE(m.seq_len <= kMaxSeqLen, "{} is more tokens than the {} a CUDA attention grid holds; lower it",
                   show("model.seq_len"), kMaxSeqLen);
        const int64_t qk_channels = int64_t(m.n_head + m.kv_heads()) * m.head_dim();
        SL_REQUIRE(m.d_model <= kMaxNormChannels,
                   "{} is more channels than the {} the CUDA norm backward holds; lower it", show("model.d_model"),
                   kMaxNormChannels);
        SL_REQUIRE(!c_.attention.qk_norm || qk_channels <= kMaxNormChannels,
                   "{} normalizes (n_head + n_kv_head) x head_dim = {} channels a row ({}, {}, {}), more than the {} "
                   "the CUDA norm backward holds; lower d_model or n_kv_head, or set attention.qk_norm: false",
                   show("attention.qk_norm"), qk_channels, show("model.d_model"), show("model.n_head"),
                   show("model.n_kv_head"), kMaxNormChannels);
        SL_REQUIRE(m.head_dim() <= AttnSpec::kMaxHeadDim,
                   "head_dim = d_model / n_head = {} ({}, {}) is more than the attention kernels' {}; raise n_head or "
                   "lower d_model",
                   m.head_dim(), show("model.d_model"), show("model.n_head"), AttnSpec::kMaxHeadDim);
    }

    void schedule() const {
        const TrainConfig& t = c_.train;
        const int64_t per_micro_step = int64_t(t.micro_batch) * c_.model.seq_len;
        if (t.tokens_per_step != 0) {
            const int64_t below = t.tokens_per_step / per_micro_step * per_micro_step;
            SL_REQUIRE(t.tokens_per_step % per_micro_step == 0,
                       "{} is not a multiple of micro_batch * seq_len = {} ({}, {}); use e.g. {}",
                       show("train.tokens_per_step"), per_micro_step, show("train.micro_batch"),
                       show("model.seq_len"), below ? below : per_micro_step);
        }
        SL_REQUIRE(t.warmup_steps <= t.max_steps, "{} exceeds {}; shorten the warmup or train longer",
                   show("train.warmup_steps"), show("train.max_steps"));
        SL_REQUIRE(t.min_lr <= t.lr, "{} exceeds {}; the schedule decays from lr down to min_lr", show("train.min_lr"),
                   show("train.lr"));
        SL_REQUIRE(t.decay_steps == 0 || t.decay_steps > t.warmup_steps,
                   "{} ends the decay before {} ends the warmup; set decay_steps > warmup_steps (or 0 = max_steps)",
                   show("train.decay_steps"), show("train.warmup_steps"));
        if (t.schedule == "wsd") {
            const int64_t decay = std::llround(t.wsd_decay_frac * double(t.max_steps));
            SL_REQUIRE(t.max_steps - decay >= t.warmup_steps,
                       "{} decays over the last {} of {}, which overlaps {}; lower the fraction or the warmup",
                       show("train.wsd_decay_frac"), decay, show("train.max_steps"), show("train.warmup_steps"));
        }
    }

    void attention() const {
        const VariantParts parts = parse_variant(c_.attention.variant);
        SL_REQUIRE(parts.error.empty(), "{}: {}", show("attention.variant"), parts.error);
        const int hd = c_.model.head_dim();
        if (c_.attention.impl == "sinklab_wgmma") {
            SL_REQUIRE(c_.precision.compute == "bf16", "{} runs in bf16 only, not {}; use attention.impl: sinklab",
                       show("attention.impl"), show("precision.compute"));
            SL_REQUIRE(hd % 8 == 0 && hd > 32 && hd <= 64,
                       "{} runs head_dim = d_model / n_head of 40, 48, 56 or 64 only, but it is {} ({}, {}); use "
                       "attention.impl: sinklab",
                       show("attention.impl"), hd, show("model.d_model"), show("model.n_head"));
        }
        if (c_.attention.impl != "cudnn") return;
        SL_REQUIRE(!parts.gated && parts.score == "softmax",
                   "{} runs only the standard and headnorm variants, not {}; use attention.impl: sinklab",
                   show("attention.impl"), show("attention.variant"));
        SL_REQUIRE(c_.intervention.isolate.empty(), "{} cannot apply {}; use attention.impl: sinklab",
                   show("attention.impl"), show("intervention.isolate"));
        SL_REQUIRE(c_.precision.compute == "bf16",
                   "{} runs in bf16 only (cuDNN's fused attention has no fp32 path), not {}; use "
                   "precision.compute: bf16 or attention.impl: sinklab",
                   show("attention.impl"), show("precision.compute"));
        SL_REQUIRE(hd % 8 == 0 && hd <= 128,
                   "{} needs head_dim = d_model / n_head a multiple of 8 and at most 128, but it is {} ({}, {}); use "
                   "attention.impl: sinklab",
                   show("attention.impl"), hd, show("model.d_model"), show("model.n_head"));
    }

    void interventions() const {
        const int T = c_.model.seq_len;
        const int L = c_.model.n_layer;
        SL_REQUIRE(c_.intervention.isolate.size() <= size_t(AttnSpec::kMaxIsolate),
                   "{} lists {} positions, but attention isolates at most {}; list fewer",
                   show("intervention.isolate"), c_.intervention.isolate.size(), AttnSpec::kMaxIsolate);
        indices("intervention.isolate", c_.intervention.isolate, T, "model.seq_len");
        const AmplifyConfig& amp = c_.intervention.amplify;
        SL_REQUIRE(amp.position < T, "{} is not a position below {}; pick a token inside the sequence or -1 for off",
                   show("intervention.amplify.position"), show("model.seq_len"));
        indices("intervention.amplify.layers", amp.layers, L, "model.n_layer");
        SL_REQUIRE(amp.position < 0 || !amp.layers.empty(),
                   "{} amplifies no layer because {}; list the layers, e.g. [0, 1, 2]",
                   show("intervention.amplify.position"), show("intervention.amplify.layers"));
        // mu over positions 0..0 is o_0 itself: the forward pass would be the plain model's, its gradient not.
        SL_REQUIRE(amp.position != 0 || amp.mode != "centered_causal",
                   "{} with {} leaves token 0's W_O input as it is (the mean over positions 0..0 is that input), "
                   "while its gradient would still be scaled by lambda; amplify a later position, or use mode scale",
                   show("intervention.amplify.position"), show("intervention.amplify.mode"));
    }

    void metrics() const {
        indices("metrics.positions", c_.metrics.positions, c_.model.seq_len, "model.seq_len");
        std::set<int> tracked(c_.metrics.positions.begin(), c_.metrics.positions.end());
        for (int p : c_.intervention.positions()) tracked.insert(p);
        tracked.insert(0);
        SL_REQUIRE(int(tracked.size()) <= kMaxTrackedPositions,
                   "{}, with 0 and the positions of {} and {}, track {} key positions; at most {} are supported: list "
                   "fewer",
                   show("metrics.positions"), show("intervention.isolate"), show("intervention.amplify.position"),
                   tracked.size(), kMaxTrackedPositions);
        SL_REQUIRE(c_.metrics.wo_std_positions <= c_.model.seq_len, "{} exceeds {}; log at most seq_len positions",
                   show("metrics.wo_std_positions"), show("model.seq_len"));
    }

  private:
    // Every weight matrix has d_model rows or columns and every activation micro_batch x seq_len rows; the other
    // side is vocab_size for the embedding and logits and at most a few times max(d_model, d_ff) in a block.
    // Products in double: the keys' values may overflow int64 here.
    void sizes() const {
        const ModelConfig& m = c_.model;
        const double widths = double(m.vocab_size) + double(m.n_layer) * std::max(m.d_model, m.d_ff);
        const double weights = double(m.d_model) * widths;
        SL_REQUIRE(weights <= kMaxElements,
                   "{}, {}, {} and {} make about d_model x (vocab_size + n_layer x max(d_model, d_ff)) = {:.3g} "
                   "weights, more than the 2^50 that sinklab's 64-bit sizes allow; lower them",
                   show("model.d_model"), show("model.d_ff"), show("model.vocab_size"), show("model.n_layer"),
                   weights);
        const double activations = double(c_.train.micro_batch) * m.seq_len * widths;
        SL_REQUIRE(activations <= kMaxElements,
                   "{} and {} make about micro_batch x seq_len x (vocab_size + n_layer x max(d_model, d_ff) = {:.0f}) "
                   "= {:.3g} activations, more than the 2^50 that sinklab's 64-bit sizes allow; lower them",
                   show("train.micro_batch"), show("model.seq_len"), widths, activations);
    }

    // Each value an index in [0, limit) where limit is the value of `limit_key`, and none twice.
    void indices(std::string_view path, const std::vector<int>& values, int limit, std::string_view limit_key) const {
        std::set<int> seen;
        for (int v : values) {
            SL_REQUIRE(v >= 0 && v < limit, "{}: {} is outside [0, {}) set by {}; remove it or change {}", show(path),
                       v, limit, show(limit_key), limit_key);
            SL_REQUIRE(seen.insert(v).second, "{}: {} is listed twice; list it once", show(path), v);
        }
    }

    const Config& c_;
    const Origins& origins_;
};

}  // namespace

std::vector<std::string> ineffective_settings(const Config& c) {
    std::vector<std::string> notes;
    const AttentionConfig& a = c.attention;
    const AttentionConfig defaults;
    const VariantParts parts = parse_variant(a.variant);
    auto without = [&](const char* key, const std::string& value, const char* part) {
        notes.push_back(fmt::format("{} = {} has no effect: attention.variant '{}' has no {}", key, value, a.variant,
                                    part));
    };
    if (parts.score != "sigmoid" && a.sigmoid_bias != defaults.sigmoid_bias)
        without("attention.sigmoid_bias", fmt::format("{}", a.sigmoid_bias), "sigmoid");
    if (parts.score != "sink_logit" && a.sink_init != defaults.sink_init)
        without("attention.sink_init", fmt::format("{}", a.sink_init), "sink_logit");
    if (!parts.gated && a.gate != defaults.gate) without("attention.gate", a.gate, "gated");
    if (!parts.headnorm && a.headnorm != defaults.headnorm)
        notes.push_back(fmt::format("attention.headnorm settings have no effect: attention.variant '{}' has no "
                                    "headnorm",
                                    a.variant));
    const AmplifyConfig& amp = c.intervention.amplify;
    if (amp.position < 0 && (amp.lambda != AmplifyConfig{}.lambda || !amp.layers.empty()))
        notes.push_back("intervention.amplify is off (position -1): its lambda and layers have no effect");
    if (amp.position >= 0 && amp.lambda == 1.f)
        notes.push_back(fmt::format("intervention.amplify.lambda = 1 leaves token {}'s W_O input as it is: the "
                                    "amplification has no effect",
                                    amp.position));
    if (std::find(c.intervention.isolate.begin(), c.intervention.isolate.end(), 0) != c.intervention.isolate.end())
        notes.push_back("intervention.isolate lists 0, which changes nothing: token 0 attends only to itself anyway");
    return notes;
}

std::vector<std::string> training_notes(const Config& c) {
    std::vector<std::string> notes = ineffective_settings(c);
    const TrainConfig& t = c.train;
    if (t.lr == 0)
        notes.push_back("train.lr = 0 (and so min_lr): every step's learning rate is 0, and the weights never change");
    else if (t.decay_steps > t.max_steps && (t.schedule == "cosine" || t.schedule == "linear"))
        notes.push_back(fmt::format("train.decay_steps = {} is beyond train.max_steps = {}: the run ends before its {} "
                                    "decay does, above train.min_lr (as a run that a resume will extend should)",
                                    t.decay_steps, t.max_steps, t.schedule));
    // A step's loss is judged against the spike_window finite losses before it: the first judged is step W + 1.
    const FaultConfig& f = c.fault;
    if (f.spike_zscore > 0 && t.max_steps <= f.spike_window)
        notes.push_back(fmt::format("fault.spike_zscore = {} judges a loss against the fault.spike_window = {} losses "
                                    "before it, but the run has {} steps: no step is judged; shorten the window",
                                    f.spike_zscore, f.spike_window, t.max_steps));
    const AmplifyConfig& amp = c.intervention.amplify;
    if (amp.position >= 0 && amp.position + 1 < c.model.seq_len && amp.lambda != 1.f && amp.mode == "centered")
        notes.push_back(fmt::format("intervention.amplify.mode = centered: mu is the mean over all {} positions, so "
                                    "token {}'s W_O input carries later tokens to every position that attends to it "
                                    "(the model is not causal); mode centered_causal takes mu over positions 0..{}",
                                    c.model.seq_len, amp.position, amp.position));
    // 16-byte rows of bf16: what Hopper's fastest cuBLASLt algorithms (their TMA loads) and the cross-entropy's
    // vector loads need.
    const int64_t vocab = c.model.vocab_size;
    if (vocab % 8 != 0)
        notes.push_back(fmt::format("model.vocab_size = {} is not a multiple of 8: on a GPU the LM head's GEMMs and "
                                    "the cross-entropy take slower unaligned paths; pad it to {} (or {}, a multiple "
                                    "of 64, best for the GEMMs)",
                                    vocab, (vocab + 7) / 8 * 8, (vocab + 63) / 64 * 64));
    const ModelConfig& m = c.model;
    if (m.d_model % 8 != 0)
        notes.push_back(fmt::format("model.d_model = {} is not a multiple of 8: on a GPU every GEMM takes cuBLASLt's "
                                    "slower unaligned algorithms; choose a multiple of 8 (and of model.n_head = {})",
                                    m.d_model, m.n_head));
    if (m.d_ff % 8 != 0)
        notes.push_back(fmt::format("model.d_ff = {} is not a multiple of 8: on a GPU the FFN's GEMMs take cuBLASLt's "
                                    "slower unaligned algorithms; pad it to {}",
                                    m.d_ff, (m.d_ff + 7) / 8 * 8));
    return notes;
}

void validate_config(const Config& c, const Origins& origins, ConfigUse use) {
    for (const Field& f : schema()) check_limits(f, c, origins.of(f.path));
    Checker check(c, origins);
    check.shapes();
    if (use == ConfigUse::train) check.schedule();
    check.attention();
    check.interventions();
    check.metrics();
}

}  // namespace sinklab::config
