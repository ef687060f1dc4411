#include "metrics/eval.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "metrics/runlog_reader.h"
#include "metrics/schema.h"

namespace sinklab {

namespace {

// acc += v field by field when `counted`; sized on the first call either way.
void accumulate(const std::vector<std::vector<double>*>& acc, const std::vector<std::vector<double>*>& v,
                bool counted) {
    for (size_t f = 0; f < acc.size(); f++) {
        if (acc[f]->empty()) acc[f]->assign(v[f]->size(), 0.0);
        if (counted)
            for (size_t i = 0; i < v[f]->size(); i++) (*acc[f])[i] += (*v[f])[i];
    }
}

void divide(const std::vector<std::vector<double>*>& fields, double n) {
    for (auto* f : fields)
        for (double& x : *f) x /= n;
}

}  // namespace

BatchCount distinct_batches(const DataLoader& loader, int wanted, int B, const std::string& what) {
    const int64_t available = loader.windows_per_epoch() / B;
    if (wanted <= available) return {wanted, ""};
    return {int(available), fmt::format("{}: the data has {} windows, {} batches of {} sequences; using {} batches "
                                        "instead of {} so that no window counts twice",
                                        what, loader.windows_per_epoch(), available, B, available, wanted)};
}

EvalResult evaluate(SinkMetrics& sink, DataLoader& loader, int wanted_batches, Communicator& comm,
                    const std::function<void(int)>& batch_done) {
    Model& model = sink.model();
    const AttnSpec s = model.attn_spec();
    const int B = model.B(), T = model.T(), L = sink.layers(), Tp = sink.wo_std_positions();
    const int64_t F = model.config().model.d_ff;
    const BatchCount count = distinct_batches(loader, wanted_batches, B, "eval");
    if (!count.notice.empty() && comm.rank() == 0) fmt::print(stderr, "sinklab: {}\n", count.notice);
    const int batches = count.batches;
    const int64_t D = int64_t(s.H) * s.hd;
    std::vector<int32_t> inputs(size_t(B) * T), targets(size_t(B) * T);
    // Sums over sequences of each W_O-input channel (and of its square) at the first Tp positions: [L, Tp, D].
    std::vector<double> s1(size_t(L) * Tp * D, 0.0), s2(s1.size(), 0.0), rows(size_t(Tp * D));
    std::vector<double> top_votes(size_t(L) * F, 0.0);  // [L, F]: batches whose token-0 FFN maximum is at channel f

    // Rank r takes batches r, r + world, ... (the loader's global batches): the first `batches` micro-batches of the
    // data on any number of ranks. A rank left without one (fewer batches than ranks) runs batch 0 without counting
    // it, so that its sums have the shapes the all-reduces below expect.
    EvalResult r;
    const int passes = std::max<int>(1, (batches - comm.rank() + comm.world() - 1) / comm.world());
    for (int i = 0; i < passes; i++) {
        if (i > 0) batch_done(i);  // the one before
        const int64_t g = comm.rank() + int64_t(i) * comm.world();
        const bool counted = g < batches;
        loader.batch_at(counted ? g : 0, inputs.data(), targets.data());
        const double loss = model.forward(inputs.data(), targets.data(), 0.f);
        SinkValues v = sink.compute();
        HeavyValues h = sink.compute_heavy();
        accumulate(r.sink.averaged(), v.averaged(), counted);
        accumulate(r.heavy.averaged(), h.averaged(), counted);
        r.heavy.ffn_gate_norm = h.ffn_gate_norm, r.heavy.ffn_up_norm = h.ffn_up_norm;
        r.heavy.ffn_top_unit = h.ffn_top_unit;
        if (!counted) continue;
        r.loss += loss;
        for (int l = 0; l < L; l++) {
            if (v.ffn_top_channel[l] >= 0) top_votes[size_t(l) * F + size_t(v.ffn_top_channel[l])] += 1;
            const Tensor wo_in = model.acts().blocks[l].wo_in.view({int64_t(B) * T, D});
            for (int b = 0; b < B; b++) {
                model.backend().read(rows.data(), DType::F64, wo_in.rows(int64_t(b) * T, Tp));
                double* a1 = s1.data() + size_t(l) * Tp * D;
                double* a2 = s2.data() + size_t(l) * Tp * D;
                for (size_t k = 0; k < rows.size(); k++) a1[k] += rows[k], a2[k] += rows[k] * rows[k];
            }
        }
    }
    r.batches = batches;
    r.sequences = int64_t(batches) * B;
    sum_over_ranks(r.sink.averaged(), comm);
    sum_over_ranks(r.heavy.averaged(), comm);
    comm.all_reduce_sum(&r.loss, 1);
    r.loss /= batches;
    divide(r.sink.averaged(), batches);
    divide(r.heavy.averaged(), batches);
    comm.all_reduce_sum(s1.data(), int(s1.size()));
    comm.all_reduce_sum(s2.data(), int(s2.size()));
    comm.all_reduce_sum(top_votes.data(), int(top_votes.size()));

    for (int l = 0; l < L; l++) {
        // The most frequent channel, ties to the lowest; -1 where no batch had one (a diverged model's).
        const double* votes = top_votes.data() + size_t(l) * F;
        const double* top = std::max_element(votes, votes + F);
        r.sink.ffn_top_channel.push_back(*top > 0 ? double(top - votes) : -1.0);
        for (int t = 0; t < Tp; t++) {
            double mean_std = 0;
            for (int64_t d = 0; d < D; d++) {
                const size_t k = (size_t(l) * Tp + t) * D + d;
                const double m = s1[k] / r.sequences;
                mean_std += std::sqrt(std::max(0.0, s2[k] / r.sequences - m * m));
            }
            r.wo_dimwise_std.push_back(mean_std / D);
        }
    }
    r.sink_rate = sink.sink_rate(r.sink);
    double sinks = 0;
    for (double x : r.sink_rate) sinks += x;
    r.sink_percent = 100.0 * sinks / L;
    return r;
}

void write_eval_file(const std::string& path, const EvalResult& r, const SinkMetrics& sink, int64_t step,
                     const std::vector<std::pair<std::string, std::string>>& attrs) {
    const int64_t L = sink.layers(), Tp = sink.wo_std_positions();
    // The run log's /sink and /heavy columns, as the trainer writes them, and the eval's own three, the dimension-wise
    // std beside the one over channels.
    GroupSpec group{"eval", {{"step", {}, true}, {"loss", {}}, {"sink_percent", {}}}};
    std::vector<RowValue> row = {{"step", {double(step)}}, {"loss", {r.loss}}, {"sink_percent", {r.sink_percent}}};
    for (const GroupSpec& g : run_log_groups(int(L), sink.heads(), int(sink.positions().size()), int(Tp)))
        if (g.name == "sink" || g.name == "heavy")
            for (const ColumnSpec& c : g.columns) {
                if (c.name != "step") group.columns.push_back(c);
                if (c.name == "wo_input_std") group.columns.push_back({"wo_dimwise_std", {L, Tp}});
            }
    for (std::vector<RowValue> part : {sink.sink_row(step, r.sink), SinkMetrics::heavy_row(step, r.heavy)})
        for (RowValue& v : part) {
            const bool beside = v.name == "wo_input_std";
            if (v.name != "step") row.push_back(std::move(v));
            if (beside) row.push_back({"wo_dimwise_std", r.wo_dimwise_std});
        }
    auto log = RunLog::create(path, {group}, attrs,
                              {{"batches", double(r.batches)}, {"sequences", double(r.sequences)}});
    log->append("eval", row);
    log->close();
}

bool is_eval_file(const std::string& path) {
    try {
        return RunLogReader(path).groups() == std::vector<std::string>{"eval"};
    } catch (const Error&) {
        return false;
    }
}

std::string format_eval_table(const EvalResult& r, const SinkMetrics& sink) {
    const int L = sink.layers(), H = sink.heads(), Tp = sink.wo_std_positions();
    const std::vector<int>& positions = sink.positions();
    const size_t P = positions.size();
    std::string out = fmt::format("val loss {:.4f} over {} sequences | Sink_1^eps {:.1f}% of (layer, head) "
                                  "pairs\n\n{:>5}",
                                  r.loss, r.sequences, r.sink_percent, "layer");
    for (int p : positions) out += fmt::format(" {:>8}", fmt::format("mass@{}", p));
    out += fmt::format(" {:>6} {:>9} {:>8} {:>7} {:>9} {:>9} {:>7} {:>8} {:>9} {:>9} {:>9}\n", "sinks", "dominance",
                       "massive", "h0/ht", "ffn@0", "ffn rest", "ffn ch", "eff.rank", "std0/rest", "att0/rest",
                       "dim0/rest");
    const auto ratio = [&](const std::vector<double>& by_position, int l) {  // [L, Tp]
        return first_vs_rest(by_position.data() + size_t(l) * Tp, Tp, sink.intervened());
    };
    for (int l = 0; l < L; l++) {
        out += fmt::format("{:>5}", l);
        for (size_t p = 0; p < P; p++) {
            double mass = 0;
            for (int h = 0; h < H; h++) mass += r.sink.attn_mass[(size_t(l) * H + h) * P + p] / H;
            out += fmt::format(" {:>8.3f}", mass);
        }
        const std::string sinks =  // "-" for a diverged model's undefined rate
            std::isfinite(r.sink_rate[l]) ? fmt::format("{}/{}", int(std::lround(r.sink_rate[l] * H)), H) : "-";
        out += fmt::format(" {:>6} {:>9.2f} {:>8.1f} {:>7.2f} {:>9.2f} {:>9.2f} {:>7} {:>8.1f} {:>9.2f} {:>9.2f} "
                           "{:>9.2f}\n",
                           sinks, r.sink.dominance[l], r.sink.massive[l], r.sink.token0_norm_ratio[l],
                           r.sink.ffn_max_act[2 * l], r.sink.ffn_max_act[2 * l + 1], int(r.sink.ffn_top_channel[l]),
                           r.heavy.effective_rank[l], ratio(r.sink.wo_input_std, l), ratio(r.sink.attn_out_std, l),
                           ratio(r.wo_dimwise_std, l));
    }
    return out;
}

}  // namespace sinklab
