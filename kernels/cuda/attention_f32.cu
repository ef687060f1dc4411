// Attention in f32 with plain FMAs: the exact-parity mode (precision.compute: fp32), written for clarity rather
// than speed. One warp per block; each lane owns one query row (forward, dq) or one key (dk, dv) of a tile of 32,
// with its running state in shared memory rows padded to hd + 1 floats so that lanes hit distinct banks.
// Keys and queries are visited in a fixed order: results are reproducible.
#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kTile = 32;
// The smallest tile of the attention kernels (the bf16 ones take 64 or 128 rows), so the one that bounds the length.
static_assert(int64_t(kMaxTileGridY) * kTile >= kMaxSeqLen, "kMaxSeqLen tokens take more tiles than a grid's y holds");

// A pair's K and V (or a kv head's queries' Q and dO, times H / Hkv), for tile_grid.
int64_t kv_bytes(const AttnParams& p) { return int64_t(p.T) * p.hd * 2 * sizeof(float); }

// Rows [r0, r0 + 32) of one head (row r at src + r * stride) into s[32][hd + 1], zero beyond T.
__device__ void load_rows(float* s, const float* src, int64_t stride, int r0, int T, int hd) {
    for (int e = threadIdx.x; e < kTile * hd; e += 32) {
        int r = e / hd, d = e % hd;
        s[r * (hd + 1) + d] = r0 + r < T ? src[(r0 + r) * stride + d] : 0.f;
    }
}

// Rows [r0, r0 + 32) of s[32][hd + 1] (times factor[r], a per-lane value) out to dst, the lanes along hd.
__device__ void store_rows(float* dst, int64_t stride, const float* s, int r0, int T, int hd, float factor) {
    for (int r = 0; r < kTile; r++) {
        float f = __shfl_sync(0xffffffffu, factor, r);
        if (r0 + r >= T) continue;
        for (int d = threadIdx.x; d < hd; d += 32) dst[(r0 + r) * stride + d] = s[r * (hd + 1) + d] * f;
    }
}

// Grid of query tiles over H x B (tile_grid). The lane's running softmax state: max m and sum l (the sink logit
// starts them).
__global__ void __launch_bounds__(32)
    attn_fwd_f32_kernel(float* o, float* lse, const float* qkv, const float* sink,
                        const __grid_constant__ AttnParams p) {
    float* sm = dynamic_smem<float>();
    int hd = p.hd, S = hd + 1, lane = threadIdx.x;
    float *sQ = sm, *sO = sQ + kTile * S, *sK = sO + kTile * S, *sV = sK + kTile * S;  // [32][S] each
    const GridTile at = block_tile(p.tile_shift);
    if (at.seq >= p.B) return;
    int q0 = query_tile(at, p.T, kTile) * kTile, h = at.head, b = at.seq, g = h / (p.H / p.Hkv);
    const float* base = qkv + int64_t(b) * p.T * p.W;
    load_rows(sQ, base + h * hd, p.W, q0, p.T, hd);
    for (int e = lane; e < kTile * S; e += 32) sO[e] = 0.f;
    int t = q0 + lane;
    bool iso = is_isolated(p, t), softmax = p.score != AttnScore::Sigmoid;
    float m = -INFINITY, l = 0.f;
    if (p.score == AttnScore::SinkLogit || p.score == AttnScore::OffByOne) {
        m = sink ? sink[h] : 0.f;
        l = 1.f;
    }
    int kv_end = min(p.T, q0 + kTile);
    for (int k0 = 0; k0 < kv_end; k0 += kTile) {
        __syncwarp();
        load_rows(sK, base + (p.H + g) * hd, p.W, k0, p.T, hd);
        load_rows(sV, base + (p.H + p.Hkv + g) * hd, p.W, k0, p.T, hd);
        __syncwarp();
        float s[kTile];  // scores, then weights, of the lane's row against the 32 keys
#pragma unroll
        for (int jj = 0; jj < kTile; jj++) {
            float dot = 0.f;
            for (int d = 0; d < hd; d++) dot += sQ[lane * S + d] * sK[jj * S + d];
            float z = dot * p.scale;
            bool vis = visible(p, t, iso, k0 + jj);
            s[jj] = softmax ? (vis ? z : -INFINITY) : (vis ? sigmoid(z + p.sigmoid_bias) : 0.f);
        }
        float alpha = 1.f;
        if (softmax) {
            float tile_max = -INFINITY;
#pragma unroll
            for (int jj = 0; jj < kTile; jj++) tile_max = fmaxf(tile_max, s[jj]);
            float m_new = fmaxf(m, tile_max);
            float m_use = m_new == -INFINITY ? 0.f : m_new;  // nothing visible yet: keep exp() away from NaN
            alpha = expf(m - m_use);
            float sum = 0.f;
#pragma unroll
            for (int jj = 0; jj < kTile; jj++) {
                s[jj] = expf(s[jj] - m_use);
                sum += s[jj];
            }
            l = l * alpha + sum;
            m = m_new;
        }
        for (int d = 0; d < hd; d++) {
            float acc = sO[lane * S + d] * alpha;
#pragma unroll
            for (int jj = 0; jj < kTile; jj++) acc += s[jj] * sV[jj * S + d];
            sO[lane * S + d] = acc;
        }
    }
    __syncwarp();
    int64_t o_stride = int64_t(p.H) * hd;
    store_rows(o + int64_t(b) * p.T * o_stride + h * hd, o_stride, sO, q0, p.T, hd, softmax ? 1.f / l : 1.f);
    if (t < p.T) lse[(int64_t(b) * p.H + h) * p.T + t] = softmax ? m + logf(l) : 0.f;
}

// z, p and the (scaled) dz of query t against key j, given the dot products q.k and dout.v.
struct Grad {
    float p, dz;
};
__device__ __forceinline__ Grad score_grad(const AttnParams& p, float qk, float dp, bool vis, float lse_t, float D_t) {
    float z = qk * p.scale;
    Grad r{0.f, 0.f};
    if (!vis) return r;
    if (p.score == AttnScore::Sigmoid) {
        r.p = sigmoid(z + p.sigmoid_bias);
        r.dz = dp * r.p * (1.f - r.p);
    } else {
        r.p = expf(z - lse_t);
        r.dz = r.p * (dp - D_t);
    }
    r.dz *= p.scale;
    return r;
}

// Grid of key tiles over Hkv x B (tile_grid): the lane's key j accumulates dk and dv over every query of the group's
// heads.
__global__ void __launch_bounds__(32)
    attn_dkdv_f32_kernel(float* dqkv, const float* dout, const float* lse, const float* D, const float* qkv,
                         const __grid_constant__ AttnParams p) {
    float* sm = dynamic_smem<float>();
    int hd = p.hd, S = hd + 1, lane = threadIdx.x;
    float *sK = sm, *sV = sK + kTile * S, *sdK = sV + kTile * S, *sdV = sdK + kTile * S;  // [32][S] each
    float *sq = sdV + kTile * S, *sdo = sq + hd;                                           // [hd] each
    const GridTile at = block_tile(p.tile_shift);
    if (at.seq >= p.B) return;
    int k0 = at.rank * kTile, g = at.head, b = at.seq, rep = p.H / p.Hkv;
    const float* base = qkv + int64_t(b) * p.T * p.W;
    load_rows(sK, base + (p.H + g) * hd, p.W, k0, p.T, hd);
    load_rows(sV, base + (p.H + p.Hkv + g) * hd, p.W, k0, p.T, hd);
    for (int e = lane; e < kTile * S; e += 32) sdK[e] = sdV[e] = 0.f;
    int j = k0 + lane;
    int64_t do_stride = int64_t(p.H) * hd;
    for (int h = g * rep; h < (g + 1) * rep; h++) {
        const float* q = base + h * hd;                                     // row t at q + t W
        const float* dO = dout + int64_t(b) * p.T * do_stride + h * hd;     // row t at dO + t H hd
        const float* lse_h = lse + (int64_t(b) * p.H + h) * p.T;            // [T]
        const float* D_h = D ? D + (int64_t(b) * p.H + h) * p.T : nullptr;  // [T]
        for (int t = k0; t < p.T; t++) {
            __syncwarp();
            for (int d = lane; d < hd; d += 32) {
                sq[d] = q[int64_t(t) * p.W + d];
                sdo[d] = dO[int64_t(t) * do_stride + d];
            }
            __syncwarp();
            float qk = 0.f, dp = 0.f;
            for (int d = 0; d < hd; d++) {
                qk += sq[d] * sK[lane * S + d];
                dp += sdo[d] * sV[lane * S + d];
            }
            Grad gr = score_grad(p, qk, dp, visible(p, t, is_isolated(p, t), j), lse_h[t], D_h ? D_h[t] : 0.f);
            for (int d = 0; d < hd; d++) {
                sdK[lane * S + d] += gr.dz * sq[d];
                sdV[lane * S + d] += gr.p * sdo[d];
            }
        }
    }
    __syncwarp();
    float* drow = dqkv + int64_t(b) * p.T * p.W;
    store_rows(drow + (p.H + g) * hd, p.W, sdK, k0, p.T, hd, 1.f);
    store_rows(drow + (p.H + p.Hkv + g) * hd, p.W, sdV, k0, p.T, hd, 1.f);
}

// Grid of query tiles over H x B (tile_grid): the lane's query t accumulates dq over the keys it sees.
__global__ void __launch_bounds__(32)
    attn_dq_f32_kernel(float* dqkv, const float* dout, const float* lse, const float* D, const float* qkv,
                       const __grid_constant__ AttnParams p) {
    float* sm = dynamic_smem<float>();
    int hd = p.hd, S = hd + 1, lane = threadIdx.x;
    float *sQ = sm, *sdO = sQ + kTile * S, *sdQ = sdO + kTile * S, *sK = sdQ + kTile * S, *sV = sK + kTile * S;
    const GridTile at = block_tile(p.tile_shift);
    if (at.seq >= p.B) return;
    int q0 = query_tile(at, p.T, kTile) * kTile, h = at.head, b = at.seq, g = h / (p.H / p.Hkv);
    const float* base = qkv + int64_t(b) * p.T * p.W;
    int64_t do_stride = int64_t(p.H) * hd;
    load_rows(sQ, base + h * hd, p.W, q0, p.T, hd);
    load_rows(sdO, dout + int64_t(b) * p.T * do_stride + h * hd, do_stride, q0, p.T, hd);
    for (int e = lane; e < kTile * S; e += 32) sdQ[e] = 0.f;
    int t = q0 + lane;
    bool iso = is_isolated(p, t);
    int64_t row = (int64_t(b) * p.H + h) * p.T + t;
    float lse_t = t < p.T ? lse[row] : 0.f, D_t = D && t < p.T ? D[row] : 0.f;
    int kv_end = min(p.T, q0 + kTile);
    for (int k0 = 0; k0 < kv_end; k0 += kTile) {
        __syncwarp();
        load_rows(sK, base + (p.H + g) * hd, p.W, k0, p.T, hd);
        load_rows(sV, base + (p.H + p.Hkv + g) * hd, p.W, k0, p.T, hd);
        __syncwarp();
        for (int jj = 0; jj < kTile; jj++) {
            float qk = 0.f, dp = 0.f;
            for (int d = 0; d < hd; d++) {
                qk += sQ[lane * S + d] * sK[jj * S + d];
                dp += sdO[lane * S + d] * sV[jj * S + d];
            }
            Grad gr = score_grad(p, qk, dp, visible(p, t, iso, k0 + jj), lse_t, D_t);
            for (int d = 0; d < hd; d++) sdQ[lane * S + d] += gr.dz * sK[jj * S + d];
        }
    }
    __syncwarp();
    store_rows(dqkv + int64_t(b) * p.T * p.W + h * hd, p.W, sdQ, q0, p.T, hd, 1.f);
}

}  // namespace

void attention_fwd_f32(float* o, float* lse, const float* qkv, const float* sink, const AttnParams& p,
                       cudaStream_t st) {
    AttnParams q = p;
    const int n = int(ceil_div(p.T, kTile));
    const dim3 grid = tile_grid(q, n, p.H, kv_bytes(p));
    CUDA_LAUNCH(attn_fwd_f32_kernel, grid, kTile, 4 * kTile * (p.hd + 1) * sizeof(float), st, o, lse, qkv, sink, q);
}

void attention_bwd_f32(float* dqkv, const float* dout, const float* lse, const float* D, const float* qkv,
                       const AttnParams& p, cudaStream_t st) {
    AttnParams kv = p, q = p;
    const int n = int(ceil_div(p.T, kTile));
    const dim3 kv_grid = tile_grid(kv, n, p.Hkv, kv_bytes(p) * (p.H / p.Hkv));
    const dim3 q_grid = tile_grid(q, n, p.H, kv_bytes(p));
    CUDA_LAUNCH(attn_dkdv_f32_kernel, kv_grid, kTile, (4 * kTile * (p.hd + 1) + 2 * p.hd) * sizeof(float), st, dqkv,
                dout, lse, D, qkv, kv);
    CUDA_LAUNCH(attn_dq_f32_kernel, q_grid, kTile, 5 * kTile * (p.hd + 1) * sizeof(float), st, dqkv, dout, lse, D, qkv,
                q);
}

}  // namespace sinklab::cuda
