// The sink metrics of REFERENCE.md, computed on the backend from the activations of the model's last forward
// pass (never a T x T attention matrix on the hot path) and assembled here into the /sink and /heavy rows.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "metrics/runlog.h"
#include "metrics/schema.h"
#include "model/model.h"

namespace sinklab {

// One forward pass's metrics, per layer (L layers, H heads, P tracked positions, Tp positions).
struct SinkValues {
    std::vector<double> attn_mass;        // [L, H, P] mean weight on each tracked key from the rows that see it
    std::vector<double> wo_input_std;     // [L, Tp] channel std of the W_O input per position, batch mean
    // [L, Tp] the same of the attention output (the value aggregation) before HeadNorm, the gate and amplification:
    // HeadNorm sets each head's RMS at every position, so wo_input_std cannot show what it normalized away.
    std::vector<double> attn_out_std;
    std::vector<double> dominance;        // [L] max|x|/mean|x| of token 0 after the pre-attention RMSNorm
    std::vector<double> massive;          // [L] top-1 |h| / median |h| of the block's output (sequence 0)
    std::vector<double> token0_norm_ratio;  // [L] ||h_0|| / mean_{t>0} ||h_t|| of the block's output
    std::vector<double> ffn_max_act;      // [L, 2] max |SwiGLU output| at token 0, at the other tokens
    std::vector<double> ffn_top_channel;  // [L] the FFN channel of that maximum at token 0

    // The fields that average over ranks and batches (all but the channel index).
    std::vector<std::vector<double>*> averaged() {
        return {&attn_mass, &wo_input_std, &attn_out_std, &dominance, &massive, &token0_norm_ratio, &ffn_max_act};
    }
};

struct HeavyValues {
    std::vector<double> effective_rank;  // [L] exp(entropy of the normalized singular values), sequence 0
    std::vector<double> attn_map;        // [L, 64, 64] head-averaged attention among the first 64 positions
    // Super neurons by REFERENCE.md's definition: the FFN units whose W_gate (w1) and W_up (w3) rows have the
    // largest norms. Of the weights, so the same on every rank and batch.
    std::vector<double> ffn_gate_norm;  // [L, 2] the largest and the median row norm of W_gate
    std::vector<double> ffn_up_norm;    // [L, 2] the same of W_up
    std::vector<double> ffn_top_unit;   // [L, 2] the unit of W_gate's largest row norm, and of W_up's

    // The fields that average over ranks and batches (not the weights').
    std::vector<std::vector<double>*> averaged() { return {&effective_rank, &attn_map}; }
};

// Position 0's value of a [Tp] row (of wo_input_std, attn_out_std) against the mean of positions 1..Tp-1 but those
// in `skip`: the variance discrepancy as one number. NaN when there is no such position, or no spread there.
// `skip`: the positions an intervention changes (InterventionConfig::positions), whose rows are no later token's:
// an amplified row's std is lambda times the others'.
double first_vs_rest(const double* row, int64_t Tp, const std::vector<int>& skip);

// Each field (SinkValues::averaged(), HeavyValues::averaged()) summed over the ranks of `comm`, in place.
void sum_over_ranks(const std::vector<std::vector<double>*>& fields, Communicator& comm);

class SinkMetrics {
public:
    static constexpr int kMapSize = kAttnMapSize;

    SinkMetrics(Model& model, const Config& cfg);
    SinkMetrics(const SinkMetrics&) = delete;
    SinkMetrics& operator=(const SinkMetrics&) = delete;

    // Tracked key positions: 0 first, then metrics.positions, then the positions interventions name.
    const std::vector<int>& positions() const { return positions_; }
    // The positions whose rows the interventions change (InterventionConfig::positions).
    const std::vector<int>& intervened() const { return intervened_; }
    int wo_std_positions() const { return Tp_; }
    Model& model() const { return model_; }
    int layers() const { return L_; }
    int heads() const { return H_; }

    SinkValues compute();
    HeavyValues compute_heavy();
    // Means over ranks (each rank saw its own batch); the top FFN channel stays rank 0's.
    void reduce(SinkValues& v, Communicator& comm) const;
    void reduce(HeavyValues& v, Communicator& comm) const;

    // Share of heads per layer whose attention mass on position 0 exceeds metrics.sink_eps.
    std::vector<double> sink_rate(const SinkValues& v) const;
    std::vector<RowValue> sink_row(int64_t step, const SinkValues& v) const;
    static std::vector<RowValue> heavy_row(int64_t step, const HeavyValues& v);

private:
    // The super-neuron fields of `v` for one layer, from its w13 weights.
    void ffn_row_norms(int layer, HeavyValues& v);

    Model& model_;
    Backend& be_;
    std::vector<int> positions_;
    std::vector<int> intervened_;
    int L_, H_, Tp_, Q_;
    float sink_eps_;
    // One f32 buffer for every per-step output, read back in one copy; the map has its own.
    Allocations buffers_;
    Tensor sink_buf_, map_buf_;  // [SinkLayout::total()], [Q, Q]
};

}  // namespace sinklab
