#include "config/schema.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <type_traits>

#include "core/check.h"
#include "core/threads.h"

namespace sinklab::config {
namespace {

template <typename L>
Field make_field(std::string_view path, L access, std::string_view doc, Limits limits) {
    using T = std::remove_cvref_t<decltype(access(std::declval<Config&>()))>;
    return Field{path, Ref<T>{access, access}, doc, std::move(limits)};
}

// The key path is the member expression itself, so the two cannot drift apart.
#define SL_KEY(member, doc, ...) make_field(#member, [](auto& c) -> auto& { return c.member; }, doc, Limits __VA_ARGS__)

std::vector<Field> build_schema() {
    return {
        SL_KEY(run.name, "run folder name under out_dir", {.non_empty = true, .folder_name = true}),
        SL_KEY(run.out_dir, "parent folder of run folders", {.non_empty = true}),
        SL_KEY(run.seed, "seed of init, data order and every other random choice", {}),
        SL_KEY(run.threads, "CPU threads per rank; 0 = all cores / ranks on the node", {.lo = 0, .hi = kMaxThreads}),

        SL_KEY(model.vocab_size, "embedding rows (the tokenizer's ids, padded)", {.lo = 1}),
        SL_KEY(model.d_model, "residual stream width", {.lo = 1}),
        SL_KEY(model.n_layer, "decoder blocks", {.lo = 1}),
        SL_KEY(model.n_head, "query heads; head_dim = d_model / n_head", {.lo = 1}),
        SL_KEY(model.n_kv_head, "key/value heads; 0 = n_head (MHA), else GQA", {.lo = 0}),
        SL_KEY(model.d_ff, "SwiGLU hidden width", {.lo = 1}),
        SL_KEY(model.seq_len, "tokens per training sequence", {.lo = 1}),
        SL_KEY(model.rope_theta, "RoPE base", {.lo = 0, .lo_open = true}),
        SL_KEY(model.norm_eps, "RMSNorm epsilon", {.lo = 0, .lo_open = true}),
        SL_KEY(model.init_std, "weight init std; W_O and w2: init_std / sqrt(2 n_layer)", {.lo = 0, .lo_open = true}),

        SL_KEY(attention.variant, "standard, or '+'-joined headnorm, gated and one score kind", {.non_empty = true}),
        SL_KEY(attention.qk_norm, "RMSNorm over head_dim of q and k before RoPE", {}),
        SL_KEY(attention.headnorm.gain, "HeadNorm gain shape", {.choices = {"per_head", "shared"}}),
        SL_KEY(attention.headnorm.init, "HeadNorm gain init", {.choices = {"ones", "first_token_std"}}),
        SL_KEY(attention.headnorm.weight_decay, "apply weight decay to the HeadNorm gain", {}),
        SL_KEY(attention.headnorm.eps, "HeadNorm RMS epsilon", {.lo = 0, .lo_open = true}),
        SL_KEY(attention.gate, "gated: a gate per head and channel, or one per head", {.choices = {"channel", "head"}}),
        SL_KEY(attention.sigmoid_bias, "sigmoid: b in sigmoid(q.k/sqrt(hd) + b)", {}),
        SL_KEY(attention.sink_init, "sink_logit: initial per-head sink logit", {}),
        SL_KEY(attention.impl, "kernel; sinklab_wgmma: ours on Hopper's wgmma; cudnn: CUDA, standard/headnorm only",
               {.choices = {"sinklab", "sinklab_wgmma", "cudnn"}}),
        SL_KEY(attention.ds_scratch_mib, "GPU scratch of our bf16 attention backward's dS; 0 = recompute", {.lo = 0}),

        SL_KEY(intervention.isolate, "query rows that attend only to themselves", {}),
        SL_KEY(intervention.amplify.position, "token whose W_O input is amplified; -1 = off", {.lo = -1}),
        SL_KEY(intervention.amplify.lambda, "amplification factor", {}),
        SL_KEY(intervention.amplify.layers, "layers (0-based) where amplification applies", {}),
        SL_KEY(intervention.amplify.mode,
               "centered: mu + lambda (o - mu), mu the mean over all positions; centered_causal: mu the mean over "
               "positions 0..k; scale: lambda o",
               {.choices = {"centered", "centered_causal", "scale"}}),

        SL_KEY(data.train, "glob of training token shards", {}),
        SL_KEY(data.val, "glob of validation token shards; empty = no validation", {}),
        SL_KEY(data.tokenizer, "tokenizer the shards were made with", {.choices = {"bytes", "gpt2"}}),
        SL_KEY(data.missing, "when the train shards are absent", {.choices = {"error", "synthetic", "corpus"}}),

        SL_KEY(train.micro_batch, "sequences per rank per micro-step", {.lo = 1}),
        SL_KEY(train.tokens_per_step, "global tokens per optimizer step; 0 = one micro-step per rank", {.lo = 0}),
        SL_KEY(train.max_steps, "optimizer steps", {.lo = 1}),
        SL_KEY(train.lr, "peak learning rate", {.lo = 0}),
        SL_KEY(train.min_lr, "final learning rate of the decay", {.lo = 0}),
        SL_KEY(train.warmup_steps, "linear warmup steps", {.lo = 0}),
        SL_KEY(train.schedule, "learning-rate schedule", {.choices = {"cosine", "wsd", "constant", "linear"}}),
        SL_KEY(train.decay_steps, "cosine/linear horizon; 0 = max_steps", {.lo = 0}),
        SL_KEY(train.wsd_decay_frac, "wsd: share of max_steps spent decaying", {.lo = 0, .hi = 1}),
        SL_KEY(train.weight_decay, "AdamW decoupled weight decay (>=2-D tensors)", {.lo = 0}),
        SL_KEY(train.beta1, "AdamW beta1", {.lo = 0, .hi = 1, .hi_open = true}),
        SL_KEY(train.beta2, "AdamW beta2", {.lo = 0, .hi = 1, .hi_open = true}),
        SL_KEY(train.eps, "AdamW epsilon", {.lo = 0, .lo_open = true}),
        SL_KEY(train.grad_clip, "global-norm gradient clip; 0 = off", {.lo = 0}),
        SL_KEY(train.log_every, "console line every this many steps", {.lo = 1}),
        SL_KEY(train.shard_optimizer, "ZeRO-1: AdamW state sharded over the ranks", {}),

        SL_KEY(precision.compute, "GPU compute type (the CPU computes in fp32)", {.choices = {"bf16", "fp32"}}),
        SL_KEY(precision.rounding, "fp32 master -> bf16 weight rounding", {.choices = {"nearest", "stochastic"}}),

        SL_KEY(metrics.every, "/sink row every this many steps and at the last; 0 = off", {.lo = 0}),
        SL_KEY(metrics.heavy_every, "/heavy row every this many steps and at the last; 0 = off", {.lo = 0}),
        SL_KEY(metrics.positions, "key positions whose attention mass is tracked", {}),
        SL_KEY(metrics.wo_std_positions, "first positions logged in wo_input_std and attn_out_std", {.lo = 1}),
        SL_KEY(metrics.sink_eps, "attention-mass threshold of sink_rate", {.lo = 0, .hi = 1}),
        SL_KEY(metrics.val_every, "validation every this many steps; 0 = only at the end", {.lo = 0}),
        SL_KEY(metrics.val_batches, "micro-batches per validation, all ranks together", {.lo = 1}),
        SL_KEY(metrics.flush_every, "metrics.h5 flush interval in steps", {.lo = 1}),

        SL_KEY(checkpoint.every, "checkpoint interval in steps; 0 = only at the end", {.lo = 0}),
        SL_KEY(checkpoint.keep, "newest checkpoints kept", {.lo = 1}),

        SL_KEY(fault.nan_policy, "non-finite loss or gradient", {.choices = {"abort", "skip"}}),
        SL_KEY(fault.spike_zscore, "skip an update whose loss z-score exceeds this; 0 = off", {.lo = 0}),
        SL_KEY(fault.spike_window, "steps in the loss z-score window", {.lo = 2}),
        SL_KEY(fault.check_every, "steps between cross-rank parameter checksums", {.lo = 1}),
        SL_KEY(fault.hang_timeout, "seconds a step or an eval batch may take (10x the slowest, if more) before the "
               "run or eval ends as hung; 0 = off", {.lo = 0}),

        SL_KEY(backend, "compute backend", {.choices = {"auto", "cpu", "cuda"}}),
    };
}

#undef SL_KEY

// One line whatever the style it was written in, so that messages stay one line.
std::string flow_yaml(const YAML::Node& node) {
    YAML::Node copy = YAML::Clone(node);
    copy.SetStyle(YAML::EmitterStyle::Flow);
    YAML::Emitter out;
    out << copy;
    return out.c_str();
}

std::string quote(const std::string& s) {
    std::string out = "\"";
    for (char ch : s) {
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {  // not printable in YAML
            out += fmt::format("\\x{:02x}", static_cast<unsigned char>(ch));
        } else {
            out += ch;
        }
    }
    return out + "\"";
}

template <typename T>
std::string format_one(const T& v) {
    if constexpr (std::is_same_v<T, bool>) return v ? "true" : "false";
    else if constexpr (std::is_same_v<T, std::string>) return quote(v);
    else if constexpr (std::is_same_v<T, std::vector<int>>) return fmt::format("[{}]", fmt::join(v, ", "));
    else return fmt::format("{}", v);  // floats: the shortest text that reads back to the same float
}

template <typename T>
const char* expected_text() {
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    else if constexpr (std::is_same_v<T, uint64_t>) return "a non-negative integer";
    else if constexpr (std::is_integral_v<T>) return "an integer";
    else if constexpr (std::is_floating_point_v<T>) return "a number";
    else if constexpr (std::is_same_v<T, std::string>) return "a string";
    else return "a list of integers like [3, 7]";
}

[[noreturn]] void wrong_type(const Field& f, const YAML::Node& node, std::string_view origin) {
    static const Config defaults;
    const char* expected = std::visit([]<typename T>(const Ref<T>&) { return expected_text<T>(); }, f.ref);
    fail("{}: {}: expected {}, got {}; write it like the default {}", origin, f.path, expected, describe(node),
         format_value(f, defaults));
}

enum class Parsed { ok, bad, too_big, too_small };

// Whole-text numbers only: "3.5" is not an integer and "1e-3x" is not a number.
template <typename T>
Parsed parse_number(const std::string& s, T& out) {
    const char* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data(), end, out);
    if (ptr != end || ec == std::errc::invalid_argument) return Parsed::bad;
    if (ec == std::errc::result_out_of_range) {
        // from_chars says out of range for 1e-400 as for 1e400; a double (or its underflow to 0) tells which.
        if constexpr (std::is_floating_point_v<T>) {
            if (std::fabs(std::strtod(s.c_str(), nullptr)) < 1) return Parsed::too_small;
        }
        return Parsed::too_big;
    }
    if constexpr (std::is_floating_point_v<T>) {
        if (!std::isfinite(out)) return Parsed::bad;  // from_chars reads "inf" and "nan"
    }
    return Parsed::ok;
}

std::string range_text(const Limits& l) {
    bool has_lo = std::isfinite(l.lo), has_hi = std::isfinite(l.hi);
    if (has_lo && has_hi)
        return fmt::format("in {}{}, {}{}", l.lo_open ? '(' : '[', l.lo, l.hi, l.hi_open ? ')' : ']');
    if (has_lo) return fmt::format("{} {}", l.lo_open ? ">" : ">=", l.lo);
    return fmt::format("{} {}", l.hi_open ? "<" : "<=", l.hi);
}

template <typename T>
T parse_scalar(const Field& f, const YAML::Node& node, std::string_view origin) {
    if constexpr (std::is_same_v<T, std::string>) {
        if (node.IsNull()) return "";  // `val:` with nothing after it means the empty string
    }
    if (!node.IsScalar()) wrong_type(f, node, origin);
    if constexpr (std::is_same_v<T, std::string>) {
        return node.Scalar();
    } else if constexpr (std::is_same_v<T, bool>) {
        bool b = false;
        if (!YAML::convert<bool>::decode(node, b)) wrong_type(f, node, origin);
        return b;
    } else {
        T v{};
        Parsed p = parse_number(node.Scalar(), v);
        SL_REQUIRE(p != Parsed::too_big, "{}: {}: {} is too large for this key; use a smaller value", origin, f.path,
                   clipped(node.Scalar()));
        const Limits& l = f.limits;
        const bool zero_allowed = (l.lo < 0 || (l.lo == 0 && !l.lo_open)) && (l.hi > 0 || (l.hi == 0 && !l.hi_open));
        SL_REQUIRE(p != Parsed::too_small, "{}: {}: {} is too close to 0 for this key; write {}", origin, f.path,
                   clipped(node.Scalar()),
                   zero_allowed ? "0 or a larger value" : fmt::format("a larger value ({})", range_text(l)));
        if (p == Parsed::bad) wrong_type(f, node, origin);
        return v;
    }
}

}  // namespace

const char* const kFolderNameRule = "use at most 255 letters, digits and . _ + -, starting with a letter or digit "
                                    "(no spaces or slashes)";

// A loop, not std::regex, whose matcher recurses once a character: a name of 200,000 characters overflowed the stack.
bool is_folder_name(std::string_view name) {
    constexpr size_t kLongest = 255;  // NAME_MAX of Linux file systems
    const auto alnum = [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    };
    if (name.empty() || name.size() > kLongest || !alnum(name[0])) return false;
    return std::all_of(name.begin(), name.end(),
                       [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '+' || c == '-'; });
}

std::string clipped(const std::string& text, size_t shown, bool ascii) {
    size_t cut = std::min(shown, text.size());
    while (cut < text.size() && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80)
        cut--;  // not inside a UTF-8 character
    std::string out;
    for (char ch : text.substr(0, cut)) {
        const auto byte = static_cast<unsigned char>(ch);
        if (byte < 0x20 || byte == 0x7f || (ascii && byte > 0x7f)) out += fmt::format("\\x{:02x}", byte);
        else out += ch;
    }
    return cut == text.size() ? out : fmt::format("{}... ({} characters)", out, text.size());
}

std::string describe(const YAML::Node& node) {
    if (!node.IsDefined() || node.IsNull()) return "an empty value";
    if (node.IsScalar()) return fmt::format("'{}'", clipped(node.Scalar()));
    return fmt::format("{} {}", node.IsSequence() ? "a list" : "a map", clipped(flow_yaml(node)));
}

const std::vector<Field>& schema() {
    static const std::vector<Field> fields = build_schema();
    return fields;
}

const Field* find_field(std::string_view path) {
    for (const Field& f : schema())
        if (f.path == path) return &f;
    return nullptr;
}

bool is_section(std::string_view path) {
    for (const Field& f : schema())
        if (f.path.size() > path.size() && f.path.starts_with(path) && f.path[path.size()] == '.') return true;
    return false;
}

std::string format_value(const Field& f, const Config& c) {
    return std::visit([&](const auto& ref) { return format_one(ref.get(c)); }, f.ref);
}

std::string value_change(std::string_view key, const Config& old, const Config& now) {
    const Field* f = find_field(key);
    SL_ASSERT(f, "no config key {}", key);
    return fmt::format("{} ({} -> {})", key, format_value(*f, old), format_value(*f, now));
}

void parse_value(const Field& f, const YAML::Node& node, Config& c, std::string_view origin) {
    std::visit(
        [&]<typename T>(const Ref<T>& ref) {
            if constexpr (std::is_same_v<T, std::vector<int>>) {
                if (node.IsNull()) {
                    ref.mut(c).clear();
                    return;
                }
                if (!node.IsSequence()) wrong_type(f, node, origin);
                std::vector<int> items;
                for (const YAML::Node& item : node) {
                    if (!item.IsScalar()) wrong_type(f, node, origin);
                    int v = 0;
                    if (parse_number(item.Scalar(), v) != Parsed::ok) wrong_type(f, node, origin);
                    items.push_back(v);
                }
                ref.mut(c) = std::move(items);
            } else {
                ref.mut(c) = parse_scalar<T>(f, node, origin);
            }
        },
        f.ref);
}

void check_limits(const Field& f, const Config& c, std::string_view origin) {
    const Limits& l = f.limits;
    std::visit(
        [&]<typename T>(const Ref<T>& ref) {
            const T& v = ref.get(c);
            if constexpr (std::is_same_v<T, std::string>) {
                SL_REQUIRE(!(l.non_empty && v.empty()), "{}: {}: must not be empty; set it ({})", origin, f.path,
                           f.doc);
                SL_REQUIRE(!l.folder_name || is_folder_name(v), "{}: {}: '{}' is not a usable folder name; {}", origin,
                           f.path, clipped(v), kFolderNameRule);
                if (l.choices.empty()) return;
                for (std::string_view choice : l.choices)
                    if (v == choice) return;
                fail("{}: {}: '{}' is not allowed; use one of: {}", origin, f.path, clipped(v),
                     fmt::join(l.choices, ", "));
            } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>) {
                double x = static_cast<double>(v);
                bool ok = (l.lo_open ? x > l.lo : x >= l.lo) && (l.hi_open ? x < l.hi : x <= l.hi);
                SL_REQUIRE(ok, "{}: {}: {} is out of range; it must be {} ({})", origin, f.path, format_one(v),
                           range_text(l), f.doc);
            }
        },
        f.ref);
}

}  // namespace sinklab::config
