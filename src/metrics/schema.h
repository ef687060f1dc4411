// The groups and columns of metrics.h5 (DESIGN.md "HDF5 run log"): the one place that defines them.
#pragma once
#include <vector>

#include "metrics/runlog.h"

namespace sinklab {

// L = n_layer, H = n_head, P = n_positions (tracked key positions of attn_mass), Tp = wo_std_positions.
std::vector<GroupSpec> run_log_groups(int n_layer, int n_head, int n_positions, int wo_std_positions);

// Side of the attention map logged in /heavy/attn_map [n, L, kAttnMapSize, kAttnMapSize].
inline constexpr int kAttnMapSize = 64;

}  // namespace sinklab
