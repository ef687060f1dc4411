#include "model/model.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"

namespace sinklab {

namespace {

AttnScore score_of(const AttentionConfig& a) {
    const std::string s = a.score();
    if (s == "sink_logit") return AttnScore::SinkLogit;
    if (s == "off_by_one") return AttnScore::OffByOne;
    if (s == "sigmoid") return AttnScore::Sigmoid;
    return AttnScore::Softmax;
}

uint64_t name_stream(const std::string& name) { return fnv1a(name.data(), name.size()); }

}  // namespace

AttnSpec make_attn_spec(const Config& cfg, int B, int T) {
    const ModelConfig& m = cfg.model;
    AttnSpec s;
    s.B = B;
    s.T = T;
    s.H = m.n_head;
    s.Hkv = m.kv_heads();
    s.hd = m.head_dim();
    s.scale = 1.f / std::sqrt(float(s.hd));
    s.score = score_of(cfg.attention);
    s.sigmoid_bias = cfg.attention.sigmoid_bias;
    s.cudnn = cfg.attention.impl == "cudnn";
    s.wgmma = cfg.attention.impl == "sinklab_wgmma";
    s.ds_budget = size_t(cfg.attention.ds_scratch_mib) << 20;
    const auto& iso = cfg.intervention.isolate;
    // validate_config refuses longer lists with the value's origin; this guards the fixed-size array.
    SL_ASSERT(iso.size() <= size_t(AttnSpec::kMaxIsolate), "{} isolated rows, at most {}", iso.size(),
              AttnSpec::kMaxIsolate);
    for (int k : iso)
        if (k < T) s.isolate[s.n_isolate++] = k;
    return s;
}

namespace {

// Declares every activation and backward buffer of a model in `ar` (allocation is the caller's choice).
void plan_activations(const Config& cfg, const AttnSpec& spec, DType cd, Arena& ar, Activations& acts,
                      BackwardScratch& g) {
    const ModelConfig& m = cfg.model;
    const AttentionConfig& a = cfg.attention;
    const int64_t B = spec.B, T = spec.T, N = B * T, C = m.d_model, H = spec.H, hd = spec.hd, F = m.d_ff,
                  W = spec.qkv_width(), V = m.vocab_size, L = m.n_layer;
    const int64_t G = a.gate == "head" ? H : H * hd;  // gate logits per row
    const DType st = wide_dtype(cd);  // saved statistics and losses
    const AmplifyConfig& amp = cfg.intervention.amplify;

    acts.x.resize(L + 1);
    for (auto& x : acts.x) ar.add(&x, cd, {N, C});
    acts.blocks.resize(L);
    for (int l = 0; l < L; l++) {
        BlockActs& b = acts.blocks[l];
        ar.add(&b.xn1, cd, {N, C});
        ar.add(&b.rstd1, st, {N});
        if (a.qk_norm) {
            ar.add(&b.qkv_raw, cd, {B, T, W});
            ar.add(&b.qk_rstd, st, {N, H + spec.Hkv});
        }
        ar.add(&b.qkv, cd, {B, T, W});
        ar.add(&b.att, cd, {B, T, H, hd});
        ar.add(&b.lse, st, {B, H, T});
        if (a.headnorm_on()) {
            ar.add(&b.hn, cd, {B, T, H, hd});
            ar.add(&b.hn_rstd, st, {N, H});
        }
        if (a.gated_on()) {
            ar.add(&b.glogit, cd, {N, G});
            ar.add(&b.gated, cd, {B, T, H, hd});
        }
        if (amp.position >= 0 && std::find(amp.layers.begin(), amp.layers.end(), l) != amp.layers.end())
            ar.add(&b.amp, cd, {B, T, H, hd});
        ar.add(&b.x_mid, cd, {N, C});
        ar.add(&b.xn2, cd, {N, C});
        ar.add(&b.rstd2, st, {N});
        ar.add(&b.ab, cd, {N, 2 * F});
        ar.add(&b.act, cd, {N, F});
    }
    ar.add(&acts.xnf, cd, {N, C});
    ar.add(&acts.rstdf, st, {N});
    ar.add(&acts.logits, cd, {N, V});
    ar.add(&acts.losses, st, {N});
    ar.add(&acts.inputs, DType::I32, {B, T});
    ar.add(&acts.targets, DType::I32, {B, T});
    ar.add(&acts.ffn_rest_max, DType::F32, {L});

    ar.add(&g.dres, cd, {N, C});
    if (a.gated_on()) ar.add(&g.dtmp, cd, {N, C});  // the gate projection's input gradient, added to dxn
    ar.add(&g.dxn, cd, {N, C});
    ar.add(&g.dqkv, cd, {B, T, W});
    if (a.qk_norm) ar.add(&g.dqkv_raw, cd, {B, T, W});
    ar.add(&g.datt, cd, {B, T, H, hd});
    ar.add(&g.datt2, cd, {B, T, H, hd});
    if (a.gated_on()) ar.add(&g.dglogit, cd, {N, G});
    if (a.headnorm_on()) ar.add(&g.rowdot, st, {B, H, T});
    ar.add(&g.dab, cd, {N, 2 * F});
    ar.add(&g.dact, cd, {N, F});
}

}  // namespace

ModelFootprint model_footprint(const Config& cfg, int B, int T, DType compute, int ranks) {
    const ParamTable table(cfg);
    Arena ar;
    Activations acts;
    BackwardScratch g;
    const AttnSpec spec = make_attn_spec(cfg, B, T);
    plan_activations(cfg, spec, compute, ar, acts, g);
    const DType wide = wide_dtype(compute);
    ModelFootprint f;
    f.n_params = table.count();
    f.weights = size_t(table.total()) * dtype_size(compute);
    f.master = compute == wide ? 0 : size_t(table.total()) * dtype_size(wide);
    f.grads = size_t(table.total()) * dtype_size(wide);
    const std::vector<int64_t> shards = shard_bounds(table.total(), cfg.train.shard_optimizer ? ranks : 1);
    int64_t largest = 0;
    for (size_t r = 0; r + 1 < shards.size(); r++) largest = std::max(largest, shards[r + 1] - shards[r]);
    f.moments = 2 * size_t(largest) * dtype_size(wide);
    f.activations = ar.bytes();
    f.attention_scratch = attention_scratch_bytes(spec, compute);
    return f;
}

double flops_per_token(const Config& cfg, const ParamTable& table, int T) {
    int64_t matmul_params = 0;
    for (const ParamInfo& p : table.all())
        if (p.matmul) matmul_params += p.numel;
    // Causal attention: per token and layer, q.k and p.v over T/2 keys on average, 3x for the backward.
    const double attn = 6.0 * cfg.model.n_layer * double(T) * cfg.model.n_head * cfg.model.head_dim();
    return 6.0 * double(matmul_params) + attn;
}

Model::Model(Backend& backend, const Config& cfg, int B, int T)
    : be_(backend), cfg_(cfg), table_(cfg), B_(B), T_(T), params_(backend) {
    SL_REQUIRE(T <= cfg.model.seq_len, "a micro-batch of {} tokens per sequence exceeds model.seq_len {}", T,
               cfg.model.seq_len);
    spec_ = make_attn_spec(cfg, B, T);
    const DType cd = be_.compute_dtype(), wd = be_.wide();
    const int64_t n = table_.total();
    weights_ = params_.add(cd, {n});
    if (cd != wd) master_ = params_.add(wd, {n});
    grads_ = params_.add(wd, {n});
    plan_activations(cfg_, spec_, cd, arena_, acts_, g_);
    arena_.allocate(be_);
}

BlockTensors Model::block(const Tensor& flat, int l) const {
    auto get = [&](const char* what) {
        const ParamInfo* p = table_.find(layer_param(l, what));
        return p ? ParamTable::view(*p, flat) : Tensor();
    };
    // Designated, so that a member inserted into BlockTensors cannot shift the others onto the wrong tensors: a
    // designator out of the members' order does not compile.
    return {.attn_norm = get("attn_norm"),
            .wqkv = get("wqkv"),
            .q_norm = get("q_norm"),
            .k_norm = get("k_norm"),
            .sink = get("sink"),
            .headnorm = get("headnorm"),
            .wgate = get("wgate"),
            .wo = get("wo"),
            .ffn_norm = get("ffn_norm"),
            .w13 = get("w13"),
            .w2 = get("w2")};
}

void Model::init(uint64_t seed) {
    const ModelConfig& m = cfg_.model;
    std::vector<float> host(size_t(table_.total()), 0.f);
    const std::vector<ParamInfo>& params = table_.all();
    // Each tensor draws from its own stream, so filling them in parallel gives the same weights for any thread
    // count (152M normals take seconds on one core; bench builds a model per variant).
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t k = 0; k < params.size(); k++) {
        const ParamInfo& p = params[k];
        float* dst = host.data() + p.offset;
        double std = m.init_std;
        switch (p.init) {
            case ParamInit::NormalResidual: std = m.init_std / std::sqrt(2.0 * m.n_layer); [[fallthrough]];
            case ParamInit::Normal: {
                Rng rng(seed, name_stream(p.name));
                for (int64_t i = 0; i < p.numel; i++) dst[i] = float(rng.normal() * std);
                break;
            }
            case ParamInit::Ones:
            case ParamInit::FirstTokenStd: std::fill(dst, dst + p.numel, 1.f); break;
            case ParamInit::Constant: std::fill(dst, dst + p.numel, p.value); break;
        }
    }
    be_.write(truth(), host.data(), DType::F32);
    sync_weights();
    init_headnorm_gains(seed);
    zero_grad();
}

std::vector<float> headnorm_init_input(uint64_t seed, int layer, int64_t C) {
    Rng rng(seed, name_stream("headnorm_init_input") + uint64_t(layer));
    std::vector<float> x(size_t(kHeadNormInitTokens * C));
    for (float& v : x) v = float(rng.normal());
    return x;
}

// The released code's HeadNorm gain init: N(0,1) input [1, 64, C] through the block's fresh QKV
// projection and causal attention (no RoPE, no input norm); each head's gain is the population std over
// hd of token 0's output (the shared gain: the mean over heads).
void Model::init_headnorm_gains(uint64_t seed) {
    const ParamInfo* first = table_.find(layer_param(0, "headnorm"));
    if (!first || first->init != ParamInit::FirstTokenStd) return;  // every block has the same parameters
    const int T0 = kHeadNormInitTokens;
    const int64_t C = cfg_.model.d_model;
    AttnSpec s = spec_;
    s.B = 1;
    s.T = T0;
    s.n_isolate = 0;
    const DType cd = be_.compute_dtype();
    Arena tmp;
    Tensor x, qkv, o, lse;
    tmp.add(&x, cd, {T0, C});
    tmp.add(&qkv, cd, {1, T0, s.qkv_width()});
    tmp.add(&o, cd, {1, T0, s.H, s.hd});
    tmp.add(&lse, be_.wide(), {1, s.H, T0});
    tmp.allocate(be_);
    for (int l = 0; l < cfg_.model.n_layer; l++) {
        const ParamInfo* gain = table_.find(layer_param(l, "headnorm"));
        be_.write(x, headnorm_init_input(seed, l, C).data(), DType::F32);
        BlockTensors w = block(weights_, l);
        be_.matmul_fwd(qkv, x, w.wqkv);
        be_.attention_fwd(o, lse, qkv, w.sink, s);
        std::vector<double> out(size_t(T0) * s.H * s.hd);
        be_.read(out.data(), DType::F64, o);
        std::vector<double> stds(size_t(s.H));
        for (int h = 0; h < s.H; h++) {
            const double* v = out.data() + size_t(h) * s.hd;  // token 0, head h
            double mean = 0, var = 0;
            for (int j = 0; j < s.hd; j++) mean += v[j];
            mean /= s.hd;
            for (int j = 0; j < s.hd; j++) var += (v[j] - mean) * (v[j] - mean);
            stds[h] = std::sqrt(var / s.hd);
        }
        std::vector<double> g(size_t(gain->numel));
        if (gain->shape.size() == 2) {
            for (int h = 0; h < s.H; h++) std::fill(g.begin() + h * s.hd, g.begin() + (h + 1) * s.hd, stds[h]);
        } else {
            double mean = 0;
            for (double v : stds) mean += v;
            std::fill(g.begin(), g.end(), mean / s.H);
        }
        be_.write(ParamTable::view(*gain, truth()), g.data(), DType::F64);
    }
    sync_weights();
}

void Model::sync_weights() {
    if (!master_.empty()) be_.convert(weights_, master_);
}

void Model::zero_grad() { be_.zero(grads_); }

double Model::forward(const int32_t* inputs, const int32_t* targets, float grad_scale) {
    // Ids come from data files, which the loader checks as it reads them; checked here again because the backends'
    // kernels would answer a bad one differently (the CPU's stop, CUDA's write NaN rows).
    const int64_t N = int64_t(B_) * T_;
    const int V = cfg_.model.vocab_size;
    for (int64_t i = 0; i < N; i++)
        SL_REQUIRE(inputs[i] >= 0 && inputs[i] < V && targets[i] < V,
                   "token {} of the micro-batch is id {} with target {}, outside the vocabulary [0, {}): the data was "
                   "tokenized with a larger vocabulary than model.vocab_size; re-prepare the data or raise vocab_size",
                   i, inputs[i], targets[i], V);
    const ParamInfo& wte = table_.get("wte");
    const Tensor wte_w = ParamTable::view(wte, weights_);
    be_.write(acts_.inputs, inputs, DType::I32);
    be_.write(acts_.targets, targets, DType::I32);
    be_.embedding_fwd(acts_.x[0], acts_.inputs, wte_w);
    for (int l = 0; l < cfg_.model.n_layer; l++) block_forward(l);
    be_.rmsnorm_fwd(acts_.xnf, acts_.rstdf, acts_.x.back(), ParamTable::view(table_.get("norm_f"), weights_),
                    cfg_.model.norm_eps);
    be_.matmul_fwd(acts_.logits, acts_.xnf, wte_w);
    be_.cross_entropy(acts_.losses, grad_scale != 0.f ? acts_.logits : Tensor(), acts_.logits, acts_.targets,
                      grad_scale);

    std::vector<double> losses(static_cast<size_t>(N));
    be_.read(losses.data(), DType::F64, acts_.losses);
    double sum = 0;
    int64_t counted = 0;
    for (int64_t i = 0; i < N; i++)
        if (targets[i] >= 0) sum += losses[i], counted++;
    return counted ? sum / double(counted) : 0.0;
}

void Model::block_forward(int l) {
    const ModelConfig& m = cfg_.model;
    const AttentionConfig& ac = cfg_.attention;
    const AmplifyConfig& amp = cfg_.intervention.amplify;
    BlockActs& a = acts_.blocks[l];
    const BlockTensors w = block(weights_, l);
    const int64_t N = int64_t(B_) * T_, H = spec_.H, hd = spec_.hd;
    Tensor x = acts_.x[l];  // [N, C]

    be_.rmsnorm_fwd(a.xn1, a.rstd1, x, w.attn_norm, m.norm_eps);
    if (ac.qk_norm) {
        be_.matmul_fwd(a.qkv_raw, a.xn1, w.wqkv);
        be_.qknorm_fwd(a.qkv, a.qk_rstd, a.qkv_raw, w.q_norm, w.k_norm, spec_, m.norm_eps);
    } else {
        be_.matmul_fwd(a.qkv, a.xn1, w.wqkv);
    }
    be_.rope_fwd(a.qkv, spec_, m.rope_theta, 0);
    be_.attention_fwd(a.att, a.lse, a.qkv, w.sink, spec_);

    Tensor cur = a.att;
    if (ac.headnorm_on()) {
        be_.headnorm_fwd(a.hn.view({N, H, hd}), a.hn_rstd, cur.view({N, H, hd}), w.headnorm, ac.headnorm.eps);
        cur = a.hn;
    }
    if (ac.gated_on()) {
        be_.matmul_fwd(a.glogit, a.xn1, w.wgate);
        be_.gate_fwd(a.gated.view({N, H, hd}), cur.view({N, H, hd}), a.glogit);
        cur = a.gated;
    }
    if (!a.amp.empty()) {
        be_.amplify_fwd(a.amp.view({B_, T_, H * hd}), cur.view({B_, T_, H * hd}), amp.position, amp.lambda,
                        amp.mean_rows(T_));
        cur = a.amp;
    }
    a.wo_in = cur;
    be_.matmul_fwd(a.x_mid, cur.view({N, H * hd}), w.wo, x);

    be_.rmsnorm_fwd(a.xn2, a.rstd2, a.x_mid, w.ffn_norm, m.norm_eps);
    be_.matmul_fwd(a.ab, a.xn2, w.w13);
    be_.swiglu_fwd(a.act.view({B_, T_, m.d_ff}), a.ab, acts_.ffn_rest_max.rows(l, 1));
    be_.matmul_fwd(acts_.x[l + 1], a.act, w.w2, a.x_mid);
}

void Model::backward() {
    const Tensor wte_w = ParamTable::view(table_.get("wte"), weights_);
    const Tensor wte_g = ParamTable::view(table_.get("wte"), grads_);
    const ParamInfo& norm_f = table_.get("norm_f");
    be_.matmul_bwd(g_.dxn, wte_g, acts_.logits, acts_.xnf, wte_w);
    be_.rmsnorm_bwd(g_.dres, ParamTable::view(norm_f, grads_), g_.dxn, acts_.x.back(),
                    ParamTable::view(norm_f, weights_), acts_.rstdf);
    for (int l = cfg_.model.n_layer - 1; l >= 0; l--) block_backward(l, g_.dres);
    be_.embedding_bwd(wte_g, acts_.inputs, g_.dres);
}

// dres [N,C] holds dL/dx[l+1] on entry and dL/dx[l] on return.
void Model::block_backward(int l, Tensor dres) {
    const ModelConfig& m = cfg_.model;
    const AttentionConfig& ac = cfg_.attention;
    const AmplifyConfig& amp = cfg_.intervention.amplify;
    const BlockActs& a = acts_.blocks[l];
    const BlockTensors w = block(weights_, l), dw = block(grads_, l);
    const int64_t N = int64_t(B_) * T_, H = spec_.H, hd = spec_.hd;

    be_.matmul_bwd(g_.dact, dw.w2, dres, a.act, w.w2);
    be_.swiglu_bwd(g_.dab, g_.dact, a.ab);
    be_.matmul_bwd(g_.dxn, dw.w13, g_.dab, a.xn2, w.w13);
    be_.rmsnorm_bwd(dres, dw.ffn_norm, g_.dxn, a.x_mid, w.ffn_norm, a.rstd2, true);

    // Back through W_O and the stages between attention and W_O, in reverse; d and spare alternate.
    Tensor d = g_.datt, spare = g_.datt2;
    be_.matmul_bwd(d.view({N, H * hd}), dw.wo, dres, a.wo_in.view({N, H * hd}), w.wo);
    if (!a.amp.empty()) {
        be_.amplify_bwd(spare.view({B_, T_, H * hd}), d.view({B_, T_, H * hd}), amp.position, amp.lambda);
        std::swap(d, spare);
    }
    if (ac.gated_on()) {
        const Tensor gate_in = ac.headnorm_on() ? a.hn : a.att;
        be_.gate_bwd(spare.view({N, H, hd}), g_.dglogit, d.view({N, H, hd}), gate_in.view({N, H, hd}), a.glogit);
        std::swap(d, spare);
    }
    if (ac.headnorm_on()) {
        be_.headnorm_bwd(spare.view({N, H, hd}), dw.headnorm, d.view({N, H, hd}), a.att.view({N, H, hd}),
                         w.headnorm, a.hn_rstd, g_.rowdot);
        std::swap(d, spare);
    }
    // g_.rowdot is empty without HeadNorm: the attention backward then computes its D itself
    be_.attention_bwd(g_.dqkv, dw.sink, d, a.att, a.lse, a.qkv, w.sink, spec_, g_.rowdot);
    be_.rope_bwd(g_.dqkv, spec_, m.rope_theta, 0);
    Tensor dproj = g_.dqkv;
    if (ac.qk_norm) {
        be_.qknorm_bwd(g_.dqkv_raw, dw.q_norm, dw.k_norm, g_.dqkv, a.qkv_raw, w.q_norm, w.k_norm, a.qk_rstd, spec_);
        dproj = g_.dqkv_raw;
    }
    be_.matmul_bwd(g_.dxn, dw.wqkv, dproj, a.xn1, w.wqkv);
    if (ac.gated_on()) {
        be_.matmul_bwd(g_.dtmp, dw.wgate, g_.dglogit, a.xn1, w.wgate);
        be_.add(g_.dxn, g_.dxn, g_.dtmp);
    }
    be_.rmsnorm_bwd(dres, dw.attn_norm, g_.dxn, acts_.x[l], w.attn_norm, a.rstd1, true);
}

}  // namespace sinklab
