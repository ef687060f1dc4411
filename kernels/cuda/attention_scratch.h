// The dS scratch of the bf16 attention backward (kernels/cuda/attention.cu), in a header the host compiler reads too:
// memory estimates size it before any backend exists (backend.h, attention_ds_bytes). Its budget is the spec's
// (AttnSpec::ds_budget, from attention.ds_scratch_mib).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace sinklab::cuda {

// dS is kept in tiles of kDsTile x kDsTile scores, ds_tiles(T) per (sequence, head): those at or below the diagonal.
constexpr int kDsTile = 64;
constexpr int64_t ds_tiles(int T) {
    const int64_t n = (T + kDsTile - 1) / kDsTile;
    return n * (n + 1) / 2;
}

// A pass never holds more than kMaxDsBytes, whatever the budget, because the kernels index it with 32-bit element
// offsets.
constexpr size_t kMaxDsBytes = (size_t(1) << 31) - 1;

// The dS of `seqs` sequences.
inline size_t ds_bytes(const AttnSpec& s, int seqs) {
    return size_t(seqs) * s.H * size_t(ds_tiles(s.T)) * kDsTile * kDsTile * 2;  // bf16
}
// Sequences per pass of the backward that keeps dS (bf16, our kernels, head dims up to 64), or 0 where it does not
// run: on cuDNN, or where one sequence's dS would exceed s.ds_budget. The passes share the sequences evenly.
inline int ds_seqs_per_pass(const AttnSpec& s) {
    if (s.cudnn || s.hd > 64 || s.B == 0 || s.T == 0) return 0;
    const int64_t fit = int64_t(std::min(s.ds_budget, kMaxDsBytes) / ds_bytes(s, 1));
    if (fit == 0) return 0;
    const int64_t passes = (s.B + fit - 1) / fit;
    return int((s.B + passes - 1) / passes);
}

}  // namespace sinklab::cuda
