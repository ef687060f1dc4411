// Internals of the attention kernels shared by attention.cu (bf16, tensor cores) and attention_f32.cu (f32, FMA).
//
// Semantics (backend.h): for query row t of head h (kv head h / (H / Hkv)), the visible keys are j <= t, or
// only j = t when t is isolated; z_j = scale q_t.k_j.
//   Softmax:   p_j = exp(z_j - lse), lse = log sum_j exp(z_j)
//   SinkLogit: lse = log(exp(s_h) + sum_j exp(z_j)) (OffByOne: s_h = 0); p_j = exp(z_j - lse)
//   Sigmoid:   p_j = sigmoid(z_j + bias), lse = 0
// o_t = sum_j p_j v_j. Backward, with dp_j = dout_t.v_j and D_t = dout_t.o_t:
//   softmax family: dz_j = p_j (dp_j - D_t);  dsink_h += -sum_t exp(s_h - lse_t) D_t
//   sigmoid:        dz_j = dp_j p_j (1 - p_j)
//   dq_t = scale sum_j dz_j k_j, dk_j = scale sum_t dz_j q_t, dv_j = sum_t p_j dout_t.
#pragma once
#include "kernels/cuda/cuda_kernels.cuh"

namespace sinklab::cuda {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// AttnSpec as a plain kernel argument.
struct AttnParams {
    int B, T, H, Hkv, hd, W;  // W = (H + 2 Hkv) hd, the row stride of qkv
    float scale;
    AttnScore score;
    float sigmoid_bias;
    int n_isolate;
    int isolate[AttnSpec::kMaxIsolate];
    int tile_shift;  // a causal grid's sequences per group, log 2; set by tile_grid
};

inline AttnParams attn_params(const AttnSpec& s) {
    AttnParams p{s.B, s.T, s.H, s.Hkv, s.hd, s.qkv_width(), s.scale, s.score, s.sigmoid_bias, s.n_isolate, {}, 0};
    for (int i = 0; i < s.n_isolate; i++) p.isolate[i] = s.isolate[i];
    return p;
}

// Causal grids: which tile of which (sequence, head) pair a block computes. Blocks start in the order of their
// linear index as multiprocessors free up, and causal tiles differ in length up to n-fold (n tiles a pair). Taken pair
// after pair, each pair's longest tile first, the last pairs start their longest tiles near the grid's end, which
// then waits for them: by a list-scheduling model, about 5% of a kernel's time at 48 x 1024 or 12 x 4096 tokens and a
// third or more with a few sequences. So the sequences go in groups of 2^shift whose pairs' shared tiles (K and V, or
// Q and dO) fit about 16 MiB, a third of Hopper's L2, and a group's tiles go longest first across its pairs: the grid
// ends on short tiles, while the blocks in flight together still span a few pairs. The grid is (heads, n << shift,
// groups): a block's tile is a few shifts of its index, which ptxas may redo where it would rather not hold them (a
// division there made the 128-register kernels spill).
struct GridTile {
    int rank;       // 0: the pair's longest tile
    int head, seq;  // seq >= B: a block of the last group past the last sequence, which returns at once
};

constexpr int64_t kTileGroupBytes = int64_t(16) << 20;
constexpr int kMaxTileGridY = 65535;  // CUDA's limit on a grid's y

// The shift for n tiles a pair over heads x B pairs whose shared tiles hold pair_bytes each.
inline int tile_shift(int n, int heads, int B, int64_t pair_bytes) {
    int shift = 0;
    while ((int64_t(2) << shift) * heads * pair_bytes <= kTileGroupBytes && (2 << shift) <= B &&
           (int64_t(n) << (shift + 1)) <= kMaxTileGridY)
        shift++;
    return shift;
}

inline dim3 tile_grid(int n, int heads, int B, int shift) {
    return dim3(unsigned(heads), unsigned(n << shift), unsigned((B + (1 << shift) - 1) >> shift));
}

// The grid of a launch of n tiles a pair over heads x p.B pairs whose shared tiles hold pair_bytes each; sets the
// shift in p, the kernel's copy.
inline dim3 tile_grid(AttnParams& p, int n, int heads, int64_t pair_bytes) {
    p.tile_shift = tile_shift(n, heads, p.B, pair_bytes);
    return tile_grid(n, heads, p.B, p.tile_shift);
}

__device__ __forceinline__ GridTile block_tile(int shift) {
    const int y = int(blockIdx.y);
    return {y >> shift, int(blockIdx.x), int(blockIdx.z) << shift | (y & ((1 << shift) - 1))};
}

// The query tile of tiles of `rows` rows that a query-parallel block (forward, dQ) computes: rank 0 is the last one,
// which sees the most keys. (Key-parallel blocks, dK/dV, take key tile `rank`: the first sees the most queries.)
__device__ __forceinline__ int query_tile(const GridTile& at, int T, int rows) {
    return (T + rows - 1) / rows - 1 - at.rank;
}

__device__ __forceinline__ bool is_isolated(const AttnParams& p, int t) {
    for (int i = 0; i < p.n_isolate; i++)
        if (p.isolate[i] == t) return true;
    return false;
}

// Whether query t (isolated or not) sees key j.
__device__ __forceinline__ bool visible(const AttnParams& p, int t, bool t_isolated, int j) {
    return j < p.T && (t_isolated ? j == t : j <= t);
}

// The f32 kernels of attention_f32.cu. D [B, H, T] holds dout.o per row (softmax family only).
void attention_fwd_f32(float* o, float* lse, const float* qkv, const float* sink, const AttnParams& p,
                       cudaStream_t st);
void attention_bwd_f32(float* dqkv, const float* dout, const float* lse, const float* D, const float* qkv,
                       const AttnParams& p, cudaStream_t st);

}  // namespace sinklab::cuda
