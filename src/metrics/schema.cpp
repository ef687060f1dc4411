#include "metrics/schema.h"

#include "core/check.h"

namespace sinklab {

std::vector<GroupSpec> run_log_groups(int n_layer, int n_head, int n_positions, int wo_std_positions) {
    SL_ASSERT(n_layer > 0 && n_head > 0 && n_positions > 0 && wo_std_positions > 0,
              "run log shapes L={} H={} P={} Tp={}", n_layer, n_head, n_positions, wo_std_positions);
    const int64_t L = n_layer, H = n_head, P = n_positions, Tp = wo_std_positions, M = kAttnMapSize;
    const ColumnSpec step{"step", {}, true};
    auto scalar = [](const char* name) { return ColumnSpec{name, {}, false}; };
    auto per_layer = [&](const char* name) { return ColumnSpec{name, {L}, false}; };
    // `added` (the fourth field): columns that runs of an earlier sinklab, which a resume continues, do not have.
    return {
        {"train",
         {step,
          {"tokens", {}, true},
          scalar("loss"),
          scalar("lr"),
          scalar("grad_norm"),
          scalar("step_time_s"),
          scalar("tokens_per_s"),
          scalar("mfu"),
          {"skipped", {}, true}}},
        {"val", {step, scalar("loss")}},
        {"sink",
         {step,
          {"attn_mass", {L, H, P}, false},
          per_layer("sink_rate"),
          {"wo_input_std", {L, Tp}, false},
          {"attn_out_std", {L, Tp}, false, true},
          per_layer("dominance"),
          per_layer("massive"),
          per_layer("token0_norm_ratio"),
          {"ffn_max_act", {L, 2}, false},
          {"ffn_top_channel", {L}, true}}},
        {"heavy",
         {step,
          per_layer("effective_rank"),
          {"attn_map", {L, M, M}, false},
          {"ffn_gate_norm", {L, 2}, false, true},
          {"ffn_up_norm", {L, 2}, false, true},
          {"ffn_top_unit", {L, 2}, true, true}}},
    };
}

}  // namespace sinklab
