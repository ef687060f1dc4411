#include "model/params.h"

#include <fmt/format.h>

namespace sinklab {

namespace {
// Every tensor, and every rank's shard of the flat buffers, starts on a 64-element boundary: 16-byte vector loads
// stay aligned in any dtype.
constexpr int64_t kAlign = 64;
}  // namespace

std::string layer_param(int layer, const char* what) { return fmt::format("layers.{}.{}", layer, what); }

ParamTable::ParamTable(const Config& cfg) {
    const ModelConfig& m = cfg.model;
    const AttentionConfig& a = cfg.attention;
    const int64_t C = m.d_model, H = m.n_head, Hkv = m.kv_heads(), hd = m.head_dim(), F = m.d_ff;
    // Gains and other vectors are not decayed; >= 2-D weights are. The HeadNorm gain is 2-D when per head,
    // and the released trainer decays it; the option makes that visible.
    add_matmul("wte", {m.vocab_size, C}, ParamInit::Normal, -1);
    for (int l = 0; l < m.n_layer; l++) {
        add(layer_param(l, "attn_norm"), {C}, ParamInit::Ones, false, l);
        add_matmul(layer_param(l, "wqkv"), {(H + 2 * Hkv) * hd, C}, ParamInit::Normal, l);
        if (a.qk_norm) {
            add(layer_param(l, "q_norm"), {hd}, ParamInit::Ones, false, l);
            add(layer_param(l, "k_norm"), {hd}, ParamInit::Ones, false, l);
        }
        if (a.score() == "sink_logit") add(layer_param(l, "sink"), {H}, ParamInit::Constant, false, l, a.sink_init);
        if (a.headnorm_on()) {
            auto shape = a.headnorm.gain == "shared" ? std::vector<int64_t>{hd} : std::vector<int64_t>{H, hd};
            add(layer_param(l, "headnorm"), shape,
                a.headnorm.init == "ones" ? ParamInit::Ones : ParamInit::FirstTokenStd, a.headnorm.weight_decay, l);
        }
        if (a.gated_on()) add_matmul(layer_param(l, "wgate"), {a.gate == "head" ? H : H * hd, C}, ParamInit::Normal, l);
        add_matmul(layer_param(l, "wo"), {C, H * hd}, ParamInit::NormalResidual, l);
        add(layer_param(l, "ffn_norm"), {C}, ParamInit::Ones, false, l);
        add_matmul(layer_param(l, "w13"), {2 * F, C}, ParamInit::Normal, l);
        add_matmul(layer_param(l, "w2"), {C, F}, ParamInit::NormalResidual, l);
    }
    add("norm_f", {C}, ParamInit::Ones, false, -1);
}

void ParamTable::add_matmul(std::string name, std::vector<int64_t> shape, ParamInit init, int layer) {
    add(std::move(name), std::move(shape), init, true, layer).matmul = true;
}

ParamInfo& ParamTable::add(std::string name, std::vector<int64_t> shape, ParamInit init, bool decay, int layer,
                           float value) {
    ParamInfo p;
    p.name = std::move(name);
    p.shape = std::move(shape);
    p.numel = 1;
    bool fits = true;
    for (int64_t s : p.shape) fits = fits && !__builtin_mul_overflow(p.numel, s, &p.numel);
    // total_ + numel, rounded up to kAlign, must be an int64 too. validate_config refuses such models earlier,
    // naming the keys; a config built in code must not get wrapped counts either.
    SL_REQUIRE(fits && p.numel <= INT64_MAX - kAlign - total_,
               "parameter {} of shape [{}] takes the model past 2^63 elements; lower model.d_model, model.d_ff, "
               "model.vocab_size or model.n_layer",
               p.name, fmt::join(p.shape, ", "));
    p.offset = total_;
    p.decay = decay;
    p.init = init;
    p.value = value;
    p.layer = layer;
    total_ += (p.numel + kAlign - 1) / kAlign * kAlign;
    params_.push_back(std::move(p));
    return params_.back();
}

const ParamInfo* ParamTable::find(const std::string& name) const {
    for (const auto& p : params_)
        if (p.name == name) return &p;
    return nullptr;
}

const ParamInfo& ParamTable::get(const std::string& name) const {
    const ParamInfo* p = find(name);
    SL_ASSERT(p, "no parameter named {}", name);
    return *p;
}

int64_t ParamTable::count() const {
    int64_t n = 0;
    for (const auto& p : params_) n += p.numel;
    return n;
}

Tensor ParamTable::view(const ParamInfo& info, const Tensor& flat) {
    SL_ASSERT(info.offset + info.numel <= flat.numel(), "parameter {} outside the buffer", info.name);
    Tensor t;
    t.data = static_cast<char*>(flat.data) + size_t(info.offset) * dtype_size(flat.dtype);
    t.dtype = flat.dtype;
    t.ndim = int(info.shape.size());
    for (int i = 0; i < t.ndim; i++) t.shape[i] = info.shape[i];
    return t;
}

std::vector<int64_t> shard_bounds(int64_t n, int ranks) {
    SL_ASSERT(n >= 0 && ranks >= 1, "shard_bounds({}, {})", n, ranks);
    std::vector<int64_t> bounds(size_t(ranks) + 1, n);
    bounds[0] = 0;
    for (int r = 1; r < ranks; r++) {
        const int64_t even = n / ranks * r + n % ranks * r / ranks;  // floor(n r / ranks) without overflow
        bounds[size_t(r)] = std::min(n, (even + kAlign - 1) / kAlign * kAlign);
    }
    return bounds;
}

}  // namespace sinklab
