// The attention backward's scratch, ours (attention.cu) and cuDNN's (attention_cudnn.cu), in a header the host
// compiler reads too: memory estimates size it before any backend exists (backend.h, attention_scratch_bytes). The
// dS that our bf16 backward keeps is most of it; its budget is the spec's (AttnSpec::ds_budget, from
// attention.ds_scratch_mib).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backend/backend.h"
#include "kernels/cuda/align.h"

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

// Ours: D [B, H, T] in f32, then in bf16 the dS of ds_seqs sequences from ds_offset on.
struct AttnBwdScratch {
    int ds_seqs;
    size_t ds_offset, bytes;
};
inline AttnBwdScratch attn_bwd_scratch(const AttnSpec& s, bool bf16) {
    const int seqs = bf16 ? ds_seqs_per_pass(s) : 0;
    const size_t ds_offset = align256(size_t(s.B) * s.H * s.T * sizeof(float));
    return {seqs, ds_offset, ds_offset + ds_bytes(s, seqs)};
}

// cuDNN's, as byte offsets: its plan's workspace, then the row sums [B, H, T] and the dq accumulator [B, T, H, hd],
// both f32.
struct CudnnBwdScratch {
    size_t softmax_sum, dq_accum, total;
    CudnnBwdScratch(const AttnSpec& s, int64_t workspace) {
        const size_t rows = size_t(s.B) * s.H * s.T;
        softmax_sum = align256(size_t(workspace));
        dq_accum = softmax_sum + align256(rows * sizeof(float));
        total = dq_accum + rows * size_t(s.hd) * sizeof(float);
    }
};

}  // namespace sinklab::cuda
