#include "metrics/sink_metrics.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>

#include "core/median.h"

namespace sinklab {

namespace {

// Layout of the per-step buffer, in floats: per layer the attention mass [H, P], the W_O-input std [Tp], the
// attention output's std [Tp], token0_stats of the normed input and of the FFN intermediate [2, 3] and the block
// output's token-0 norm ratio [1];
// after the L layers, the block outputs' |max| and median [L, 2] and the FFN maxima away from token 0 [L] that the
// SwiGLU forward left in the activations.
struct SinkLayout {
    int64_t H, P, Tp, L;
    int64_t mass() const { return H * P; }
    int64_t per_layer() const { return mass() + 2 * Tp + 6 + 1; }
    int64_t wo_std(int l) const { return l * per_layer() + mass(); }
    int64_t att_std(int l) const { return wo_std(l) + Tp; }
    int64_t t0(int l, int which) const { return att_std(l) + Tp + 3 * which; }
    int64_t ratio(int l) const { return t0(l, 2); }
    int64_t amm() const { return L * per_layer(); }
    int64_t rest_max() const { return amm() + 2 * L; }
    int64_t total() const { return rest_max() + L; }
};

// exp(entropy of the normalized singular values) of a [rows, cols] row-major matrix.
double effective_rank(std::vector<double> a, int64_t rows, int64_t cols) {
    // A diverged model's states (fault.nan_policy: skip trains on past them) have no rank, as they have no other
    // metric; LAPACK would refuse them.
    if (!std::all_of(a.begin(), a.end(), [](double x) { return std::isfinite(x); })) return std::nan("");
    std::vector<double> s(size_t(std::min(rows, cols)));
    // Row-major [rows, cols] is column-major [cols, rows]: the transpose, with the same singular values.
    const lapack_int info = LAPACKE_dgesdd(LAPACK_COL_MAJOR, 'N', lapack_int(cols), lapack_int(rows), a.data(),
                                           lapack_int(cols), s.data(), nullptr, 1, nullptr, 1);
    SL_REQUIRE(info == 0, "effective rank: the SVD of a [{}, {}] hidden-state matrix failed (LAPACK info {})", rows,
               cols, info);
    double total = 0, entropy = 0;
    for (double v : s) total += v;
    if (total <= 0) return 0.0;
    for (double v : s)
        if (v > 0) entropy -= (v / total) * std::log(v / total);
    return std::exp(entropy);
}

}  // namespace

double first_vs_rest(const double* row, int64_t Tp, const std::vector<int>& skip) {
    double rest = 0;
    int64_t n = 0;
    for (int64_t t = 1; t < Tp; t++)
        if (std::find(skip.begin(), skip.end(), t) == skip.end()) rest += row[t], n++;
    return n > 0 && rest > 0 ? row[0] / (rest / double(n)) : std::nan("");
}

SinkMetrics::SinkMetrics(Model& model, const Config& cfg)
    : model_(model),
      be_(model.backend()),
      intervened_(cfg.intervention.positions()),
      sink_eps_(cfg.metrics.sink_eps),
      buffers_(model.backend()) {
    const int T = model.T();
    auto track = [&](int p) {
        if (p >= 0 && p < T && std::find(positions_.begin(), positions_.end(), p) == positions_.end())
            positions_.push_back(p);
    };
    track(0);
    for (int p : cfg.metrics.positions) track(p);
    for (int p : cfg.intervention.positions()) track(p);
    SL_ASSERT(int(positions_.size()) <= kMaxTrackedPositions, "{} tracked positions passed validation",
              positions_.size());
    L_ = cfg.model.n_layer;
    H_ = cfg.model.n_head;
    Tp_ = std::min(cfg.metrics.wo_std_positions, T);
    Q_ = std::min(kMapSize, T);
    const SinkLayout ly{H_, int64_t(positions_.size()), Tp_, L_};
    sink_buf_ = buffers_.add(DType::F32, {ly.total()});
    map_buf_ = buffers_.add(DType::F32, {Q_, Q_});
}

SinkValues SinkMetrics::compute() {
    const Activations& a = model_.acts();
    const AttnSpec s = model_.attn_spec();
    const int64_t B = model_.B(), T = model_.T(), C = model_.config().model.d_model, F = model_.config().model.d_ff;
    const int64_t P = int64_t(positions_.size());
    const SinkLayout ly{H_, P, Tp_, L_};
    float* base = static_cast<float*>(sink_buf_.data);
    auto out = [&](int64_t offset, std::initializer_list<int64_t> dims) {
        return Tensor(base + offset, DType::F32, dims);
    };
    // Of the [B, T, C] and [B, T, F] activations only the token-0 rows are read here: the block outputs' norms and
    // the FFN maxima away from token 0 come from the forward pass, whose full reads of them were most of the
    // metrics' cost on a GPU.
    std::vector<Tensor> seq0_outputs;  // [T, C] of each layer
    for (int l = 0; l < L_; l++) {
        const BlockActs& blk = a.blocks[l];
        be_.attn_mass(out(l * ly.per_layer(), {H_, P}), blk.qkv, blk.lse, positions_, s);
        be_.position_std(out(ly.wo_std(l), {Tp_}), blk.wo_in.view({B, T, s.H * s.hd}));
        be_.position_std(out(ly.att_std(l), {Tp_}), blk.att.view({B, T, s.H * s.hd}));
        be_.token0_stats(out(ly.t0(l, 0), {3}), blk.xn1.view({B, T, C}));
        be_.token0_stats(out(ly.t0(l, 1), {3}), blk.act.view({B, T, F}));
        // The block output is the input of the next RMSNorm (the next block's, or the final one), whose rstd
        // holds its row norms.
        const Tensor next_rstd = l + 1 < L_ ? a.blocks[l + 1].rstd1 : a.rstdf;
        be_.token0_norm_ratio(out(ly.ratio(l), {1}), next_rstd.view({B, T}), model_.config().model.norm_eps);
        seq0_outputs.push_back(a.x[l + 1].rows(0, T));
    }
    be_.abs_max_median(out(ly.amm(), {L_, 2}), seq0_outputs);
    be_.convert(out(ly.rest_max(), {L_}), a.ffn_rest_max);
    std::vector<float> host(size_t(sink_buf_.numel()));
    be_.read(host.data(), DType::F32, sink_buf_);

    SinkValues v;
    for (int l = 0; l < L_; l++) {
        const float* m = host.data() + l * ly.per_layer();
        v.attn_mass.insert(v.attn_mass.end(), m, m + ly.mass());
        const float* w = host.data() + ly.wo_std(l);
        v.wo_input_std.insert(v.wo_input_std.end(), w, w + Tp_);
        const float* att = host.data() + ly.att_std(l);
        v.attn_out_std.insert(v.attn_out_std.end(), att, att + Tp_);
        const float* normed = host.data() + ly.t0(l, 0);
        const float* ffn = host.data() + ly.t0(l, 1);
        const float* amm = host.data() + ly.amm() + 2 * l;
        v.dominance.push_back(normed[0]);
        v.token0_norm_ratio.push_back(host[size_t(ly.ratio(l))]);
        v.ffn_max_act.push_back(ffn[1]);
        v.ffn_max_act.push_back(host[size_t(ly.rest_max() + l)]);
        v.ffn_top_channel.push_back(ffn[2]);
        v.massive.push_back(amm[1] > 0 ? double(amm[0]) / amm[1] : 0.0);
    }
    // A diverged model (fault.nan_policy: skip trains on past it) has non-finite states, whose reductions (maxima,
    // clamps) can come out as 0: every metric of the step is undefined instead, NaN, and no channel is the top one.
    if (!std::all_of(host.begin(), host.end(), [](float x) { return std::isfinite(x); })) {
        for (std::vector<double>* field : v.averaged()) std::fill(field->begin(), field->end(), std::nan(""));
        std::fill(v.ffn_top_channel.begin(), v.ffn_top_channel.end(), -1.0);
    }
    return v;
}

HeavyValues SinkMetrics::compute_heavy() {
    const Activations& a = model_.acts();
    const int64_t T = model_.T(), C = model_.config().model.d_model;
    HeavyValues v;
    v.attn_map.assign(size_t(L_) * kMapSize * kMapSize, 0.0);
    std::vector<float> map(size_t(Q_) * Q_);
    std::vector<double> hidden(size_t(T * C));
    for (int l = 0; l < L_; l++) {
        be_.attn_map(map_buf_, a.blocks[l].qkv, a.blocks[l].lse, model_.attn_spec());
        be_.read(map.data(), DType::F32, map_buf_);
        for (int i = 0; i < Q_; i++)
            std::copy_n(map.data() + i * Q_, Q_, v.attn_map.begin() + (int64_t(l) * kMapSize + i) * kMapSize);
        be_.read(hidden.data(), DType::F64, a.x[l + 1].rows(0, T));
        v.effective_rank.push_back(effective_rank(hidden, T, C));
        ffn_row_norms(l, v);
    }
    return v;
}

void SinkMetrics::ffn_row_norms(int layer, HeavyValues& v) {
    const int64_t C = model_.config().model.d_model, F = model_.config().model.d_ff;
    std::vector<double> w13(size_t(2 * F * C));  // [2F, C]: the W_gate rows, then the W_up rows
    be_.read(w13.data(), DType::F64, ParamTable::view(model_.table().get(layer_param(layer, "w13")), model_.weights()));
    for (std::vector<double>* out : {&v.ffn_gate_norm, &v.ffn_up_norm}) {
        const double* rows = w13.data() + (out == &v.ffn_gate_norm ? 0 : F * C);
        std::vector<double> norms(static_cast<size_t>(F));
        for (int64_t j = 0; j < F; j++) {
            double sq = 0;
            for (int64_t c = 0; c < C; c++) sq += rows[j * C + c] * rows[j * C + c];
            norms[size_t(j)] = std::sqrt(sq);
        }
        const auto top = std::max_element(norms.begin(), norms.end());
        v.ffn_top_unit.push_back(double(top - norms.begin()));
        out->push_back(*top);
        out->push_back(median(std::move(norms)));
    }
}

void sum_over_ranks(const std::vector<std::vector<double>*>& fields, Communicator& comm) {
    if (comm.world() == 1) return;
    for (std::vector<double>* field : fields) comm.all_reduce_sum(field->data(), int(field->size()));
}

namespace {
void mean_over_ranks(const std::vector<std::vector<double>*>& fields, Communicator& comm) {
    sum_over_ranks(fields, comm);
    for (std::vector<double>* field : fields)
        for (double& x : *field) x /= comm.world();
}
}  // namespace

void SinkMetrics::reduce(SinkValues& v, Communicator& comm) const { mean_over_ranks(v.averaged(), comm); }

void SinkMetrics::reduce(HeavyValues& v, Communicator& comm) const { mean_over_ranks(v.averaged(), comm); }

std::vector<double> SinkMetrics::sink_rate(const SinkValues& v) const {
    const size_t P = positions_.size();  // position 0 is tracked first
    std::vector<double> rate;
    for (int l = 0; l < L_; l++) {
        int sinks = 0;
        bool defined = true;  // a diverged model's masses are NaN, and so is its rate, not 0
        for (int h = 0; h < H_; h++) {
            const double mass = v.attn_mass[(size_t(l) * H_ + h) * P];
            sinks += mass > sink_eps_;
            defined = defined && std::isfinite(mass);
        }
        rate.push_back(defined ? double(sinks) / H_ : std::nan(""));
    }
    return rate;
}

std::vector<RowValue> SinkMetrics::sink_row(int64_t step, const SinkValues& v) const {
    return {{"step", {double(step)}},
            {"attn_mass", v.attn_mass},
            {"sink_rate", sink_rate(v)},
            {"wo_input_std", v.wo_input_std},
            {"attn_out_std", v.attn_out_std},
            {"dominance", v.dominance},
            {"massive", v.massive},
            {"token0_norm_ratio", v.token0_norm_ratio},
            {"ffn_max_act", v.ffn_max_act},
            {"ffn_top_channel", v.ffn_top_channel}};
}

std::vector<RowValue> SinkMetrics::heavy_row(int64_t step, const HeavyValues& v) {
    return {{"step", {double(step)}},         {"effective_rank", v.effective_rank}, {"attn_map", v.attn_map},
            {"ffn_gate_norm", v.ffn_gate_norm}, {"ffn_up_norm", v.ffn_up_norm},       {"ffn_top_unit", v.ffn_top_unit}};
}

}  // namespace sinklab
