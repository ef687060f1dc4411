// The scratch the bf16 attention backward may hold for dS (kernels/cuda/attention.cu), in a header the host compiler
// reads too: tests lower the budget so that the backward runs its sequences in several passes, or does without dS.
#pragma once
#include <cstddef>

namespace sinklab::cuda {

// Bytes, 1 GiB unless changed: sequences whose dS fits go through together, and where one sequence's dS (heads x
// T^2 / 2 scores, 2 bytes each) is larger the dQ kernel recomputes dS instead.
size_t& attention_ds_budget();

}  // namespace sinklab::cuda
