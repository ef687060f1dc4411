// Causal flash attention on tensor cores (bf16 in, f32 accumulation), and the launchers of both precisions.
//
// Forward: a block of 4 warps owns 64 query rows of one head (16 per warp) and walks the 64-key tiles up to the
// diagonal, double-buffered with cp.async: S = Q K^T, online softmax in base 2 on the accumulators, O += P V with P
// re-packed to bf16 in registers. The products run as mma.sync m16n8k16 per warp on operands ldmatrix loads from
// padded tiles (kWg false), or on Hopper as wgmma m64n64k16 of the 4 warps together (kWg, head dim 64), which read
// K, V (and Q, dO in the backward) straight from swizzled tiles; the accumulator layout, and so all the code
// between the products, is the same. Being asynchronous, wgmma lets the forward leave each tile's O += P V running
// into the next tile (three K/V buffers), and the backward take P's exponentials while dP is still being multiplied.
// At head dims up to 64 a forward block holds twice that, 8 warps (two warpgroups, 128 query rows) on each K/V tile
// it loads. The T x T scores never leave registers; the row log-sum-exp is saved. The head dim is padded with zeros
// to HDP in {32, 64, 128}.
// Backward, deterministic (no float atomics): D = dout.o per row; then a key-parallel kernel (64 keys of one
// kv head per block, looping over the query tiles of every head of the group) accumulates dk and dv in
// registers, and a query-parallel kernel (64 queries per block, 128 on wgmma, looping over key tiles) accumulates
// dq. Both recompute P from the saved lse; in bf16 at head dims up to 64 the first also writes dS to scratch, and
// the second computes dq = dS K from it alone (ds_tile). The sink logit's gradient is a separate ordered
// reduction.
#include <type_traits>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mma.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 128;  // 4 warps, 16 rows (queries or keys) each

// Query rows of a forward block, 16 a warp, and the blocks per multiprocessor it is compiled for. With 64 rows a
// 64-key tile's 16 KiB would feed 256 clocks of a multiprocessor's tensor cores at their peak, 64 bytes a clock of
// L2 where Hopper's L2 gives each multiprocessor about 25 (docs/gpu-h200.md); 128 rows halve that. At head dims up
// to 64 ptxas fits 128 rows in 128 registers without spilling, two blocks (16 warps) a multiprocessor where 64 rows
// ran 12; at 128 it would spill, and 64 rows stay, with no minimum of blocks (0: an explicit 1 made ptxas take 198
// registers instead of 171).
template <int HDP> constexpr int kFwdRows = HDP <= 64 ? 128 : 64;
template <int HDP> constexpr int kFwdThreads = kFwdRows<HDP> * 2;
template <int HDP> constexpr int kFwdMinBlocks = HDP <= 64 ? 2 : 0;
// K/V buffers of the forward: on wgmma a tile's O += P V is still running while the next tile is waited for and its
// S = Q K^T issued, so the tile after that goes to a third buffer.
template <bool kWg> constexpr int kFwdBuffers = kWg ? 3 : 2;
// Query rows of a dQ block: 128 on wgmma, whose 127 registers fit two blocks (16 warps) a multiprocessor, with half
// the K/V reads from L2 per product (64 rows need 43 bytes a clock at the tensor peak); mma.sync would spill there.
template <bool kWg> constexpr int kDqRows = kWg ? 128 : 64;

// Blocks per multiprocessor the backward kernels are compiled for. At head dim <= 64 with softmax, ptxas fits them
// in 168 registers without spilling, so three blocks (12 warps) share a multiprocessor instead of two; the others
// would spill.
template <int HDP, bool kSigmoid> constexpr int kBwdMinBlocks = HDP <= 64 && !kSigmoid ? 3 : 1;

// Lane offsets into a row-major [rows][S] shared tile for ldmatrix x4:
// A operand of rows [r0, r0+16) x cols [c0, c0+16), and (transposed) B operand whose k runs along rows.
__device__ __forceinline__ int a_row(int lane) { return (lane & 7) + ((lane >> 3) & 1) * 8; }
__device__ __forceinline__ int a_col(int lane) { return (lane >> 4) * 8; }
// B operand (not transposed) of two 8-wide n blocks whose n runs along rows and k along columns.
__device__ __forceinline__ int b_row(int lane) { return (lane & 7) + (lane >> 4) * 8; }
__device__ __forceinline__ int b_col(int lane) { return ((lane >> 3) & 1) * 8; }

// ---- tiles -------------------------------------------------------------------------------------------------
// Element (r, d) of a shared tile: rows of S = HDP + 8 (padded against ldmatrix bank conflicts), or of the
// wgmma kernels' 64 in the 128-byte swizzle (wgmma_tile.cuh).
template <int HDP, bool kWg> constexpr int kStride = kWg ? HDP : HDP + 8;
template <int HDP, bool kWg> __device__ __forceinline__ int tile_at(int r, int d) {
    static_assert(!kWg || HDP == 64, "the wgmma kernels' tiles have 128-byte rows");
    if constexpr (kWg) return sw128_chunk(r, d >> 3) + (d & 7);
    return r * kStride<HDP, kWg> + d;
}

// Rows [r0, r0 + ROWS) of one head (row t at src + t * stride, hd elements) into tile s (tile_at) by the block's NT
// threads, zero-filled beyond T and beyond hd. vec: hd % 8 == 0 and 16-byte aligned rows, so cp.async can move 16 bytes
// at a time. The vector path runs in every tile of every kernel: each thread moves one fixed 16-byte column of every
// (NT / kChunks)-th row, in a loop of constant trip count, each address one 32 x 32 -> 64-bit multiply-add (stride is
// an int for that; nothing 64-bit stays live across the loops that call this). A loop from threadIdx.x in steps of NT
// left the compiler a general trip count, a remainder loop and a 64 x 64-bit multiply per chunk: most of the forward's
// instructions per tile.
template <int ROWS, int HDP, bool kWg, int NT = kThreads>
__device__ __forceinline__ void load_tile(bf16* s, const bf16* src, int stride, int r0, int T, int hd, bool vec) {
    if (vec) {
        constexpr int kChunks = HDP / 8, kRowStep = NT / kChunks;
        static_assert(NT % kChunks == 0 && ROWS % kRowStep == 0, "whole rows per pass");
        const int r = threadIdx.x / kChunks, d = threadIdx.x % kChunks * 8;
#pragma unroll
        for (int i = 0; i < ROWS / kRowStep; i++) {
            const int t = r0 + r + i * kRowStep;
            const bool ok = t < T && d < hd;
            cp_async16(s + tile_at<HDP, kWg>(r + i * kRowStep, d), ok ? src + int64_t(t) * stride + d : src, ok);
        }
    } else {
        for (int c = threadIdx.x; c < ROWS * HDP; c += NT) {
            int r = c / HDP, d = c % HDP, t = r0 + r;
            s[tile_at<HDP, kWg>(r, d)] = t < T && d < hd ? src[int64_t(t) * stride + d] : __ushort_as_bfloat16(0);
        }
    }
}

// Keys and values of key tile j (Bc rows of the kv head at kb and vb) into buffer buf of sK and sV [2][Bc][S].
template <int Bc, int HDP, bool kWg, int NT = kThreads>
__device__ __forceinline__ void load_kv(bf16* sK, bf16* sV, const bf16* kb, const bf16* vb, const AttnParams& p, int j,
                                        int buf, bool vec) {
    constexpr int S = kStride<HDP, kWg>;
    load_tile<Bc, HDP, kWg, NT>(sK + buf * Bc * S, kb, p.W, j * Bc, p.T, p.hd, vec);
    load_tile<Bc, HDP, kWg, NT>(sV + buf * Bc * S, vb, p.W, j * Bc, p.T, p.hd, vec);
}

// Multiple buffering over NB buffers, at the top of iteration i of n: issues load(i + 1, buffer) for the next tile
// when there is one, then waits until tile i (committed by the previous call, or before the loop) has landed for the
// whole block, and for wgmma's asynchronous proxy.
template <bool kWg, int NB = 2, typename Load> __device__ __forceinline__ void next_tile(int i, int n, Load&& load) {
    if (i + 1 < n) {
        load(i + 1, (i + 1) % NB);
        cp_async_commit();
        cp_async_wait<1>();
    } else {
        cp_async_wait<0>();
    }
    if constexpr (kWg) fence_async_smem();
    __syncthreads();
}

// This warp's warpgroup in a query-parallel block (forward, dQ) whose rows start at q0: its first row, and the key
// tiles its 64 rows see, one fewer than the block's for the first of two (the block's last tile lies above its
// diagonal).
struct RowGroup {
    int wg, q0, n_kv;
};
__device__ __forceinline__ RowGroup row_group(int q0, int T, int Bc) {
    const int wg = threadIdx.x / 128, qw = q0 + wg * 64;
    return {wg, qw, (min(T, qw + 64) + Bc - 1) / Bc};
}

template <int N> __device__ __forceinline__ void zero(float (&d)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) d[i][e] = 0.f;
}

__device__ __forceinline__ float sigmoid2(float z) { return rcp_ftz(1.f + ex2_ftz(-z * kLog2e)); }

// Sets the invisible scores of an accumulator tile to -inf, which every score function maps to weight 0 (the scale
// is positive). Element e of n-tile nt is row rows[e / 2], column col0 + 8 nt + 2 tq + e % 2; rows are queries, or
// keys when kKeyRows (then the columns are queries, which may lie beyond T). Only the tiles that cross the diagonal
// or T, or any tile under isolation, call this: the others run without a per-element branch.
template <bool kKeyRows, int N>
__device__ __forceinline__ void mask_tile(float (&s)[N][4], const AttnParams& p, const int (&rows)[2], int col0,
                                          int tq) {
    bool iso[2] = {};
    if (!kKeyRows) iso[0] = is_isolated(p, rows[0]), iso[1] = is_isolated(p, rows[1]);
#pragma unroll
    for (int nt = 0; nt < N; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int col = col0 + nt * 8 + 2 * tq + (e & 1), r = rows[e >> 1];
            bool vis = kKeyRows ? col < p.T && visible(p, col, is_isolated(p, col), r)
                                : visible(p, r, iso[e >> 1], col);
            if (!vis) s[nt][e] = -INFINITY;
        }
}

// d += a B for one mma.sync A fragment a (this warp's 16 rows x columns 16 kk .. 16 kk + 15) and rows 16 kk .. of
// a shared tile B [..][S] read along its rows.
template <int HDP>
__device__ __forceinline__ void mma_a_b(float (&d)[HDP / 8][4], const uint32_t (&a)[4], const bf16* B, int kk,
                                        int lane) {
    constexpr int S = kStride<HDP, false>;
#pragma unroll
    for (int dp = 0; dp < HDP / 16; dp++) {
        uint32_t bf[4];
        ldsm_x4_trans(bf, B + (kk * 16 + a_row(lane)) * S + dp * 16 + a_col(lane));
        mma(d[2 * dp], a, bf[0], bf[1]);
        mma(d[2 * dp + 1], a, bf[2], bf[3]);
    }
}

// d += bf16(s) B, the products whose A operand is a tile of accumulators (P or dS: this warp's 16 rows x the 8 NS
// columns of s, re-packed to bf16 in registers) and whose B is a shared tile [8 NS][S] read along its rows (V, K):
// mma.sync on fragments ldmatrix transposes, or one wgmma chain of the warpgroup.
template <int HDP, bool kWg, int NS>
__device__ __forceinline__ void mma_acc_b(float (&d)[HDP / 8][4], const float (&s)[NS][4], const bf16* B, int lane) {
    constexpr int NK = NS / 2;
    if constexpr (kWg) {
        uint32_t a[NK][4];
        acc_to_a_all(a, s);
        wgmma_round([&] { wgmma_av(d, a, B); }, d, a);
    } else {
#pragma unroll
        for (int kk = 0; kk < NK; kk++) {
            uint32_t a[4];
            acc_to_a(a, s[2 * kk], s[2 * kk + 1]);
            mma_a_b<HDP>(d, a, B, kk, lane);
        }
    }
}

__device__ __forceinline__ bool sink_family(AttnScore s) {
    return s == AttnScore::SinkLogit || s == AttnScore::OffByOne;
}

// ---- forward ---------------------------------------------------------------------------------------------
template <int HDP, bool kSigmoid, bool kWg>
__global__ void __launch_bounds__(kFwdThreads<HDP>, kFwdMinBlocks<HDP>)
    attn_fwd_kernel(bf16* o, float* lse, const bf16* qkv, const bf16* sink, const __grid_constant__ AttnParams p,
                    bool vec) {
    constexpr int Br = kFwdRows<HDP>, NT = kFwdThreads<HDP>, Bc = 64, S = kStride<HDP, kWg>, KD = HDP / 16;
    constexpr int NC = Bc / 8, ND = HDP / 8, NB = kFwdBuffers<kWg>;
    bf16* sQ = kWg ? align1024(dynamic_smem<bf16>()) : dynamic_smem<bf16>();  // [Br][S]
    bf16* sK = sQ + Br * S;            // [NB][Bc][S]
    bf16* sV = sK + NB * Bc * S;       // [NB][Bc][S]

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane / 4, tq = lane % 4;
    const GridTile at = block_tile(p.tile_shift);
    if (at.seq >= p.B) return;
    const int q0 = query_tile(at, p.T, Br) * Br, h = at.head, b = at.seq, g = h / (p.H / p.Hkv);
    const bf16* base = qkv + int64_t(b) * p.T * p.W;
    const bf16* kb = base + (p.H + g) * p.hd;
    const bf16* vb = base + (p.H + p.Hkv + g) * p.hd;
    const int n_kv = (min(p.T, q0 + Br) + Bc - 1) / Bc;
    const RowGroup rg = row_group(q0, p.T, Bc);
    const bf16* sQw = sQ + rg.wg * 64 * S;  // [64][S], the warpgroup's rows

    load_tile<Br, HDP, kWg, NT>(sQ, base + h * p.hd, p.W, q0, p.T, p.hd, vec);
    load_kv<Bc, HDP, kWg, NT>(sK, sV, kb, vb, p, 0, 0, vec);
    cp_async_commit();

    // This thread holds rows row[0] and row[1] = row[0] + 8 of the warp's 16 (accumulator elements 0,1 and 2,3).
    const int row[2] = {q0 + warp * 16 + gr, q0 + warp * 16 + gr + 8};
    const float zscale = p.scale * kLog2e;  // softmax works in base 2
    // Running max (of scaled scores) and per-thread partial sum of each row; the sink logit enters both, its exp
    // once per row.
    float m[2], l[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        m[r] = sink_family(p.score) ? (sink ? to_float(sink[h]) : 0.f) * kLog2e : -INFINITY;
        l[r] = sink_family(p.score) && tq == 0 ? 1.f : 0.f;
    }
    float acc[ND][4] = {};
    uint32_t qf[kWg ? 1 : KD][4];  // the Q fragments ldmatrix loads once (wgmma reads them from sQ)
    // S = Q K^T: rows of this warp x the Bc keys of a tile. On wgmma it is zeroed for the next tile before the product
    // O += P V is issued, with P in pa: a write to it while that product runs would make ptxas wait for the product.
    float s[NC][4] = {};
    uint32_t pa[kWg ? NC / 2 : 1][4];

    for (int j = 0; j < n_kv; j++) {
        next_tile<kWg, NB>(j, n_kv,
                           [&](int t, int buf) { load_kv<Bc, HDP, kWg, NT>(sK, sV, kb, vb, p, t, buf, vec); });
        if (Br == 64 || j < rg.n_kv) {  // skipped, the warpgroup still meets the barriers (Br 64: one warpgroup)
            const int buf = j % NB;
            const bf16* cK = sK + buf * Bc * S;
            const bf16* cV = sV + buf * Bc * S;

            if constexpr (kWg) {
                // Retires the previous tile's O += P V too: the softmax below rescales O.
                wgmma_issue([&] { wgmma_abt(s, sQw, cK); }, s);
                wgmma_retire<0>(s, acc, pa);
            } else {
                if (j == 0)
#pragma unroll
                    for (int kk = 0; kk < KD; kk++)
                        ldsm_x4(qf[kk], sQ + (warp * 16 + a_row(lane)) * S + kk * 16 + a_col(lane));
#pragma unroll
                for (int kk = 0; kk < KD; kk++)
#pragma unroll
                    for (int np = 0; np < Bc / 16; np++) {
                        uint32_t kf[4];
                        ldsm_x4(kf, cK + (np * 16 + b_row(lane)) * S + kk * 16 + b_col(lane));
                        mma(s[2 * np], qf[kk], kf[0], kf[1]);
                        mma(s[2 * np + 1], qf[kk], kf[2], kf[3]);
                    }
            }

            const int k0 = j * Bc;
            if (k0 + Bc > rg.q0 || k0 + Bc > p.T || p.n_isolate > 0) mask_tile<false>(s, p, row, k0, tq);
            if constexpr (kSigmoid) {
#pragma unroll
                for (int nt = 0; nt < NC; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[nt][e] = sigmoid2(s[nt][e] * p.scale + p.sigmoid_bias);
            } else {
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    float mx = -INFINITY;
#pragma unroll
                    for (int nt = 0; nt < NC; nt++) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // the 4 threads of a row
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                    float m_new = fmaxf(m[r], mx * zscale);
                    float m_use = m_new == -INFINITY ? 0.f : m_new;  // nothing visible yet: keep exp2 away from NaN
                    float alpha = ex2_ftz(m[r] - m_use), sum = 0.f;
                    m[r] = m_new;
#pragma unroll
                    for (int nt = 0; nt < NC; nt++)
#pragma unroll
                        for (int c = 0; c < 2; c++) {
                            float pv = ex2_ftz(fmaf(s[nt][2 * r + c], zscale, -m_use));
                            s[nt][2 * r + c] = pv;
                            sum += pv;
                        }
                    l[r] = l[r] * alpha + sum;
#pragma unroll
                    for (int dt = 0; dt < ND; dt++) {
                        acc[dt][2 * r] *= alpha;
                        acc[dt][2 * r + 1] *= alpha;
                    }
                }
            }

            if constexpr (kWg) {  // O += P V, left running into the next iteration
                acc_to_a_all(pa, s);
                zero(s);
                wgmma_issue([&] { wgmma_av(acc, pa, cV); }, acc, pa, s);
            } else {
                mma_acc_b<HDP, false>(acc, s, cV, lane);  // O += P V
                zero(s);
            }
        }
        // The next iteration loads tile j + 2 into the buffer of tile j + 2 - NB, which every warpgroup has stopped
        // reading once it is here: on mma.sync tile j itself; on wgmma tile j - 1, whose O += P V retired at tile j's
        // S (tile j's is still running).
        __syncthreads();
    }
    if constexpr (kWg) wgmma_retire<0>(acc, pa);

#pragma unroll
    for (int r = 0; r < 2; r++) {
        float lsum = l[r];
        lsum += __shfl_xor_sync(0xffffffffu, lsum, 1);
        lsum += __shfl_xor_sync(0xffffffffu, lsum, 2);
        float inv = kSigmoid ? 1.f : lsum > 0.f ? 1.f / lsum : 0.f;
#pragma unroll
        for (int dt = 0; dt < ND; dt++) {
            acc[dt][2 * r] *= inv;
            acc[dt][2 * r + 1] *= inv;
        }
        if (tq == 0 && row[r] < p.T)
            lse[(int64_t(b) * p.H + h) * p.T + row[r]] = kSigmoid ? 0.f : (m[r] + log2f(lsum)) * kLn2;
    }
    // Stage this warp's 16 output rows in its own rows of sQ (no longer read), then store whole rows.
    auto sO = [&](int r, int d) { return sQ + tile_at<HDP, kWg>(warp * 16 + r, d); };
#pragma unroll
    for (int dt = 0; dt < ND; dt++) {
        *reinterpret_cast<uint32_t*>(sO(gr, dt * 8 + 2 * tq)) = pack_bf16(acc[dt][0], acc[dt][1]);
        *reinterpret_cast<uint32_t*>(sO(gr + 8, dt * 8 + 2 * tq)) = pack_bf16(acc[dt][2], acc[dt][3]);
    }
    __syncwarp();
    const int64_t o_stride = int64_t(p.H) * p.hd;
    bf16* ob = o + int64_t(b) * p.T * o_stride + h * p.hd;  // row t at ob + t o_stride
    const int t0 = q0 + warp * 16;
    if (vec) {
        for (int c = lane; c < 16 * (HDP / 8); c += 32) {
            int r = c / (HDP / 8), d = c % (HDP / 8) * 8;
            if (t0 + r < p.T && d < p.hd) store_pack(ob + (t0 + r) * o_stride + d, load_pack(sO(r, d)));
        }
    } else {
        for (int c = lane; c < 16 * HDP; c += 32) {
            int r = c / HDP, d = c % HDP;
            if (t0 + r < p.T && d < p.hd) ob[(t0 + r) * o_stride + d] = *sO(r, d);
        }
    }
}

// ---- backward ---------------------------------------------------------------------------------------------
// dS kept (bf16, head dims up to 64, mma.sync and wgmma alike): the dK/dV kernel also writes dS^T in bf16, the
// operand it multiplies by Q, and attn_dq_ds_kernel computes dQ = dS K from it: one product per tile pair where
// recomputing S, P and dP takes three, for 4 bytes of memory traffic per visible score (written once, read once).
// Per (sequence, head), tile (key tile kt, query tile qt >= kt) is [64 keys][64 queries] row-major at tile index
// qt (qt + 1) / 2 + kt: a query tile's tiles lie together, in the order dQ reads them. Masked scores and rows beyond
// T hold zeros. Its size and passes: attention_scratch.h.

// The element offset of a tile in the scratch of one pass, under 2 GiB (kMaxDsBytes): a 32-bit offset from the
// kernel argument, where a pointer held across the loop made the dK/dV kernel spill.
__device__ __forceinline__ int ds_tile(const AttnParams& p, int b, int h, int kt, int qt) {
    return ((b * p.H + h) * int(ds_tiles(p.T)) + qt * (qt + 1) / 2 + kt) * (kDsTile * kDsTile);
}

// dq x scale of this thread's rows row[0], row[1] of head h into dqkv [B, T, W].
template <int HDP>
__device__ __forceinline__ void store_dq(bf16* dqkv, const float (&dq)[HDP / 8][4], const AttnParams& p, int b, int h,
                                         const int (&row)[2], int tq) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (row[r] >= p.T) continue;
        bf16* dqr = dqkv + (int64_t(b) * p.T + row[r]) * p.W + h * p.hd;
#pragma unroll
        for (int dt = 0; dt < HDP / 8; dt++) {
            int d = dt * 8 + 2 * tq;
            if (d >= p.hd) continue;
            dqr[d] = __float2bfloat16_rn(dq[dt][2 * r] * p.scale);
            dqr[d + 1] = __float2bfloat16_rn(dq[dt][2 * r + 1] * p.scale);
        }
    }
}

// The weight of one score s = q.k (-inf where masked), given the row's base-2 lse: its softmax probability, or its
// sigmoid. It does not need dP, which on wgmma is still being multiplied while the weights are computed.
template <bool kSigmoid>
__device__ __forceinline__ float score_weight(const AttnParams& p, float s, float lse2) {
    if constexpr (kSigmoid) return sigmoid2(s * p.scale + p.sigmoid_bias);
    else return ex2_ftz(fmaf(s, p.scale * kLog2e, -lse2));
}
// dz / scale of a score of weight w, given dp = dout.v and the row's D. The kernels multiply dq and dk by the scale
// once at the end, not every dz.
template <bool kSigmoid> __device__ __forceinline__ float score_dz(float w, float dp, float D) {
    if constexpr (kSigmoid) return dp * w * (1.f - w);
    else return w * (dp - D);
}

// s += A B^T and dp += C D^T (64 x 64 tiles, all read K-major) on wgmma as two commit groups, returning once the
// first has retired: the caller takes the scores' exponentials while dP is still being multiplied, then retires it.
// Both follow one wgmma.fence: with dp zeroed between the groups, ptxas injected a warpgroup wait there (its note
// C7517), retiring the first group before the second was issued.
__device__ __forceinline__ void wgmma_scores_then_dp(float (&s)[8][4], const bf16* A, const bf16* B,
                                                     float (&dp)[8][4], const bf16* C, const bf16* D) {
    wgmma_issue(
        [&] {
            wgmma_abt(s, A, B);
            wg_commit();
            wgmma_abt(dp, C, D);
        },
        s, dp);
    wgmma_retire<1>(s);
}

// Grid of key tiles of 64 over Hkv x B (tile_grid). Warp w owns keys k0 + 16w .. +15 and keeps their dk, dv in
// registers while the block walks the query tiles (Bq rows) of each head of the group; S^T and dP^T are computed
// directly (keys as rows), so P^T and dS^T are already the A operands of dV += P^T dO and dK += dS^T Q. kDs: dS^T
// also goes to ds for attn_dq_ds_kernel.
template <int HDP, int Bq, bool kSigmoid, bool kWg, bool kDs>
__global__ void __launch_bounds__(kThreads, kBwdMinBlocks<HDP, kSigmoid>)
    attn_dkdv_kernel(bf16* dqkv, bf16* ds, const bf16* dout, const float* lse, const float* D, const bf16* qkv,
                     const __grid_constant__ AttnParams p, bool vec) {
    constexpr int Bc = 64, S = kStride<HDP, kWg>, KD = HDP / 16, NQ = Bq / 8, ND = HDP / 8;
    static_assert(!kDs || (Bq == kDsTile && Bc == kDsTile), "dS is kept in 64 x 64 tiles");
    bf16* sK = kWg ? align1024(dynamic_smem<bf16>()) : dynamic_smem<bf16>();  // [Bc][S]
    bf16* sV = sK + Bc * S;                        // [Bc][S]
    bf16* sQ = sV + Bc * S;                        // [2][Bq][S]
    bf16* sdO = sQ + 2 * Bq * S;                   // [2][Bq][S]
    float* sL = reinterpret_cast<float*>(sdO + 2 * Bq * S);  // [2][Bq] lse (softmax family only)
    float* sD = sL + 2 * Bq;                                 // [2][Bq] (softmax family only)

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane / 4, tq = lane % 4;
    const GridTile at = block_tile(p.tile_shift);
    if (at.seq >= p.B) return;
    const int k0 = at.rank * Bc, g = at.head, b = at.seq, rep = p.H / p.Hkv;
    const bf16* base = qkv + int64_t(b) * p.T * p.W;
    const int do_stride = p.H * p.hd;  // <= W, an int like it
    const bf16* dob = dout + int64_t(b) * p.T * do_stride;
    const int q_first = k0 / Bq, nq = (p.T + Bq - 1) / Bq - q_first, n_it = rep * nq;

    // Asynchronous like the tiles: a plain load here would stall every thread of the block once per iteration.
    auto load_queries = [&](int it, int buf) {
        int h = g * rep + it / nq, t0 = (q_first + it % nq) * Bq;
        load_tile<Bq, HDP, kWg>(sQ + buf * Bq * S, base + h * p.hd, p.W, t0, p.T, p.hd, vec);
        load_tile<Bq, HDP, kWg>(sdO + buf * Bq * S, dob + h * p.hd, do_stride, t0, p.T, p.hd, vec);
        if constexpr (!kSigmoid) {
            const int64_t row0 = (int64_t(b) * p.H + h) * p.T;
#pragma unroll
            for (int pass = 0; pass < (2 * Bq + kThreads - 1) / kThreads; pass++) {
                const int i = threadIdx.x + pass * kThreads, t = t0 + i % Bq;
                if (2 * Bq % kThreads != 0 && i >= 2 * Bq) break;
                const bool ok = t < p.T;
                const float* src = i < Bq ? lse : D;
                cp_async4((i < Bq ? sL : sD) + buf * Bq + i % Bq, ok ? src + row0 + t : src, ok);
            }
        }
    };
    load_tile<Bc, HDP, kWg>(sK, base + (p.H + g) * p.hd, p.W, k0, p.T, p.hd, vec);
    load_tile<Bc, HDP, kWg>(sV, base + (p.H + p.Hkv + g) * p.hd, p.W, k0, p.T, p.hd, vec);
    load_queries(0, 0);
    cp_async_commit();

    const int key[2] = {k0 + warp * 16 + gr, k0 + warp * 16 + gr + 8};
    float dk[ND][4] = {}, dv[ND][4] = {};
    for (int it = 0; it < n_it; it++) {
        next_tile<kWg>(it, n_it, load_queries);
        const int buf = it & 1;
        const int t0 = (q_first + it % nq) * Bq;
        const bf16* cQ = sQ + buf * Bq * S;
        const bf16* cdO = sdO + buf * Bq * S;
        const float* cL = sL + buf * Bq;
        const float* cD = sD + buf * Bq;

        float st[NQ][4] = {}, dpt[NQ][4] = {};  // S^T = K Q^T and dP^T = V dO^T: this warp's keys x Bq queries
        if constexpr (kWg) {
            wgmma_scores_then_dp(st, sK, cQ, dpt, sV, cdO);
        } else {
#pragma unroll
            for (int kk = 0; kk < KD; kk++) {
                uint32_t kf[4], vf[4];
                ldsm_x4(kf, sK + (warp * 16 + a_row(lane)) * S + kk * 16 + a_col(lane));
                ldsm_x4(vf, sV + (warp * 16 + a_row(lane)) * S + kk * 16 + a_col(lane));
#pragma unroll
                for (int np = 0; np < Bq / 16; np++) {
                    uint32_t qf[4], of[4];
                    ldsm_x4(qf, cQ + (np * 16 + b_row(lane)) * S + kk * 16 + b_col(lane));
                    ldsm_x4(of, cdO + (np * 16 + b_row(lane)) * S + kk * 16 + b_col(lane));
                    mma(st[2 * np], kf, qf[0], qf[1]);
                    mma(st[2 * np + 1], kf, qf[2], qf[3]);
                    mma(dpt[2 * np], vf, of[0], of[1]);
                    mma(dpt[2 * np + 1], vf, of[2], of[3]);
                }
            }
        }
        if (t0 < k0 + Bc || t0 + Bq > p.T || k0 + Bc > p.T || p.n_isolate > 0) mask_tile<true>(st, p, key, t0, tq);
        // dS^T goes out as it is computed (from the dK product's loop, with its fragments live, the kernel spilled):
        // this thread's first element of the tile.
        int ds_at = 0;
        if constexpr (kDs)
            ds_at = ds_tile(p, b, g * rep + it / nq, at.rank, t0 / Bq) + (warp * 16 + gr) * Bq + 2 * tq;
        // P^T and dS^T of n-tile nt, whose columns 2 tq and 2 tq + 1 are this thread's queries, for both of its keys.
        auto weights = [&](int nt) {
            float2 lse_pair = {};
            if constexpr (!kSigmoid) lse_pair = *reinterpret_cast<const float2*>(cL + nt * 8 + 2 * tq);
            const float lse2[2] = {lse_pair.x * kLog2e, lse_pair.y * kLog2e};
#pragma unroll
            for (int e = 0; e < 4; e++) st[nt][e] = score_weight<kSigmoid>(p, st[nt][e], lse2[e & 1]);
        };
        auto score_grads = [&](int nt) {
            float2 D_pair = {};
            if constexpr (!kSigmoid) D_pair = *reinterpret_cast<const float2*>(cD + nt * 8 + 2 * tq);
            const float Dq[2] = {D_pair.x, D_pair.y};
#pragma unroll
            for (int e = 0; e < 4; e++) dpt[nt][e] = score_dz<kSigmoid>(st[nt][e], dpt[nt][e], Dq[e & 1]);
            if constexpr (kDs) {
                *reinterpret_cast<uint32_t*>(ds + ds_at + nt * 8) = pack_bf16(dpt[nt][0], dpt[nt][1]);
                *reinterpret_cast<uint32_t*>(ds + ds_at + 8 * Bq + nt * 8) = pack_bf16(dpt[nt][2], dpt[nt][3]);
            }
        };
        // On wgmma every weight comes first, its exponentials running while dP^T is still being multiplied; mma.sync
        // takes both per n-tile (in two passes ptxas spilled 24 bytes of the kernel that keeps dS).
        if constexpr (kWg) {
#pragma unroll
            for (int nt = 0; nt < NQ; nt++) weights(nt);
            wgmma_retire<0>(dpt);
#pragma unroll
            for (int nt = 0; nt < NQ; nt++) score_grads(nt);
        } else {
#pragma unroll
            for (int nt = 0; nt < NQ; nt++) {
                weights(nt);
                score_grads(nt);
            }
        }
        if constexpr (kWg) {  // dV += P^T dO, dK += dS^T Q
            uint32_t pa[Bq / 16][4], da[Bq / 16][4];
            acc_to_a_all(pa, st);
            acc_to_a_all(da, dpt);
            wgmma_round([&] { wgmma_av(dv, pa, cdO); wgmma_av(dk, da, cQ); }, dv, dk, pa, da);
        } else {
#pragma unroll
            for (int kk = 0; kk < Bq / 16; kk++) {
                uint32_t pa[4], da[4];
                acc_to_a(pa, st[2 * kk], st[2 * kk + 1]);
                acc_to_a(da, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
                for (int dp = 0; dp < HDP / 16; dp++) {
                    uint32_t of[4], qf[4];
                    ldsm_x4_trans(of, cdO + (kk * 16 + a_row(lane)) * S + dp * 16 + a_col(lane));
                    ldsm_x4_trans(qf, cQ + (kk * 16 + a_row(lane)) * S + dp * 16 + a_col(lane));
                    mma(dv[2 * dp], pa, of[0], of[1]);
                    mma(dv[2 * dp + 1], pa, of[2], of[3]);
                    mma(dk[2 * dp], da, qf[0], qf[1]);
                    mma(dk[2 * dp + 1], da, qf[2], qf[3]);
                }
            }
        }
        __syncthreads();
    }

    bf16* drow = dqkv + int64_t(b) * p.T * p.W;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        if (key[r] >= p.T) continue;
        bf16* dkr = drow + int64_t(key[r]) * p.W + (p.H + g) * p.hd;
        bf16* dvr = drow + int64_t(key[r]) * p.W + (p.H + p.Hkv + g) * p.hd;
#pragma unroll
        for (int dt = 0; dt < ND; dt++) {
            int d = dt * 8 + 2 * tq;
            if (d >= p.hd) continue;  // hd is even: the pair (d, d+1) is all in or all out
            dkr[d] = __float2bfloat16_rn(dk[dt][2 * r] * p.scale);
            dkr[d + 1] = __float2bfloat16_rn(dk[dt][2 * r + 1] * p.scale);
            dvr[d] = __float2bfloat16_rn(dv[dt][2 * r]);
            dvr[d + 1] = __float2bfloat16_rn(dv[dt][2 * r + 1]);
        }
    }
}

// Grid of query tiles of kDqRows over H x B (tile_grid). Warp w owns queries q0 + 16w .. +15 (Q and dO fragments
// and dq in registers) and walks the key tiles (Bc keys) up to the diagonal.
template <int HDP, int Bc, bool kSigmoid, bool kWg>
__global__ void __launch_bounds__(2 * kDqRows<kWg>, kWg ? 2 : kBwdMinBlocks<HDP, kSigmoid>)
    attn_dq_kernel(bf16* dqkv, const bf16* dout, const float* lse, const float* D, const bf16* qkv,
                   const __grid_constant__ AttnParams p, bool vec) {
    constexpr int Br = kDqRows<kWg>, NT = 2 * Br, S = kStride<HDP, kWg>, KD = HDP / 16, NC = Bc / 8, ND = HDP / 8;
    bf16* sQ = kWg ? align1024(dynamic_smem<bf16>()) : dynamic_smem<bf16>();  // [Br][S]
    bf16* sdO = sQ + Br * S;           // [Br][S]
    bf16* sK = sdO + Br * S;           // [2][Bc][S]
    bf16* sV = sK + 2 * Bc * S;        // [2][Bc][S]

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane / 4, tq = lane % 4;
    const GridTile at = block_tile(p.tile_shift);
    if (at.seq >= p.B) return;
    const int q0 = query_tile(at, p.T, Br) * Br, h = at.head, b = at.seq, g = h / (p.H / p.Hkv);
    const bf16* base = qkv + int64_t(b) * p.T * p.W;
    const bf16* kb = base + (p.H + g) * p.hd;
    const bf16* vb = base + (p.H + p.Hkv + g) * p.hd;
    const int do_stride = p.H * p.hd;  // <= W, an int like it
    const int n_kv = (min(p.T, q0 + Br) + Bc - 1) / Bc;
    const RowGroup rg = row_group(q0, p.T, Bc);
    const bf16* sQw = sQ + rg.wg * 64 * S;    // [64][S], the warpgroup's rows
    const bf16* sdOw = sdO + rg.wg * 64 * S;  // [64][S]

    load_tile<Br, HDP, kWg, NT>(sQ, base + h * p.hd, p.W, q0, p.T, p.hd, vec);
    load_tile<Br, HDP, kWg, NT>(sdO, dout + int64_t(b) * p.T * do_stride + h * p.hd, do_stride, q0, p.T, p.hd, vec);
    load_kv<Bc, HDP, kWg, NT>(sK, sV, kb, vb, p, 0, 0, vec);
    cp_async_commit();

    const int row[2] = {q0 + warp * 16 + gr, q0 + warp * 16 + gr + 8};
    float lse2[2], Dr[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int64_t i = (int64_t(b) * p.H + h) * p.T + row[r];
        lse2[r] = row[r] < p.T && !kSigmoid ? lse[i] * kLog2e : 0.f;
        Dr[r] = row[r] < p.T && !kSigmoid ? D[i] : 0.f;
    }
    uint32_t qf[kWg ? 1 : KD][4], of[kWg ? 1 : KD][4];  // the fragments ldmatrix loads once (wgmma reads sQ, sdO)
    float dq[ND][4] = {};

    for (int j = 0; j < n_kv; j++) {
        next_tile<kWg>(j, n_kv, [&](int t, int buf) { load_kv<Bc, HDP, kWg, NT>(sK, sV, kb, vb, p, t, buf, vec); });
        if (Br == 64 || j < rg.n_kv) {  // skipped, the warpgroup still meets the barrier below
            const int buf = j & 1;
            const bf16* cK = sK + buf * Bc * S;
            const bf16* cV = sV + buf * Bc * S;

            float s[NC][4] = {}, dp[NC][4] = {};  // S = Q K^T, dP = dO V^T
            if constexpr (kWg) {
                wgmma_scores_then_dp(s, sQw, cK, dp, sdOw, cV);
            } else {
                if (j == 0)
#pragma unroll
                    for (int kk = 0; kk < KD; kk++) {
                        ldsm_x4(qf[kk], sQ + (warp * 16 + a_row(lane)) * S + kk * 16 + a_col(lane));
                        ldsm_x4(of[kk], sdO + (warp * 16 + a_row(lane)) * S + kk * 16 + a_col(lane));
                    }
#pragma unroll
                for (int kk = 0; kk < KD; kk++)
#pragma unroll
                    for (int np = 0; np < Bc / 16; np++) {
                        uint32_t kf[4], vf[4];
                        ldsm_x4(kf, cK + (np * 16 + b_row(lane)) * S + kk * 16 + b_col(lane));
                        ldsm_x4(vf, cV + (np * 16 + b_row(lane)) * S + kk * 16 + b_col(lane));
                        mma(s[2 * np], qf[kk], kf[0], kf[1]);
                        mma(s[2 * np + 1], qf[kk], kf[2], kf[3]);
                        mma(dp[2 * np], of[kk], vf[0], vf[1]);
                        mma(dp[2 * np + 1], of[kk], vf[2], vf[3]);
                    }
            }
            const int k0 = j * Bc;
            if (k0 + Bc > rg.q0 || k0 + Bc > p.T || p.n_isolate > 0) mask_tile<false>(s, p, row, k0, tq);
#pragma unroll
            for (int nt = 0; nt < NC; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[nt][e] = score_weight<kSigmoid>(p, s[nt][e], lse2[e >> 1]);
            if constexpr (kWg) wgmma_retire<0>(dp);
#pragma unroll
            for (int nt = 0; nt < NC; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[nt][e] = score_dz<kSigmoid>(s[nt][e], dp[nt][e], Dr[e >> 1]);
            mma_acc_b<HDP, kWg>(dq, s, cK, lane);  // dQ += dS K
        }
        __syncthreads();
    }

    store_dq<HDP>(dqkv, dq, p, b, h, row, tq);
}

// Blocks per multiprocessor attn_dq_ds_kernel is compiled for: its shared memory (two K and two dS tiles, 36 KiB at
// head dim 64) fits six. Unbounded, ptxas took 96 registers at head dim 64, which fit five (20 warps); at six it takes
// 78 without spilling (24 warps) for a kernel that mostly waits on its dS and K loads.
constexpr int kDqDsMinBlocks = 6;

// Grid of query tiles of 64 over H x B, after attn_dkdv_kernel<..., kDs> wrote dS^T: dQ = dS K, warp w owning queries
// q0 + 16w .. +15 and walking the key tiles up to the diagonal, dS's fragments transposed by ldmatrix from the
// [keys][queries] tiles. No masking: masked scores are zeros in dS. Its groups are single sequences (tile_grid's
// shift 0): a shift read at run time made it spill at its 80 registers, and its tail is a small part of a short
// kernel.
template <int HDP>
__global__ void __launch_bounds__(kThreads, kDqDsMinBlocks)
    attn_dq_ds_kernel(bf16* dqkv, const bf16* ds, const bf16* qkv, const __grid_constant__ AttnParams p, bool vec) {
    constexpr int Bc = kDsTile, S = kStride<HDP, false>, SD = kStride<kDsTile, false>, ND = HDP / 8;
    bf16* sK = dynamic_smem<bf16>();  // [2][Bc][S]
    bf16* sS = sK + 2 * Bc * S;       // [2][Bc][SD] dS^T, keys x queries (padded like the other tiles)

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gr = lane / 4, tq = lane % 4;
    const GridTile at = block_tile(0);
    const int qt = query_tile(at, p.T, Bc), h = at.head, b = at.seq, g = h / (p.H / p.Hkv);
    const bf16* kb = qkv + int64_t(b) * p.T * p.W + (p.H + g) * p.hd;
    const bf16* dsq = ds + ds_tile(p, b, h, 0, qt);  // [qt + 1][Bc][kDsTile]
    auto load = [&](int j, int buf) {
        load_tile<Bc, HDP, false>(sK + buf * Bc * S, kb, p.W, j * Bc, p.T, p.hd, vec);
        load_tile<Bc, kDsTile, false>(sS + buf * Bc * SD, dsq + int64_t(j) * Bc * kDsTile, kDsTile, 0, Bc, kDsTile,
                                      true);
    };
    load(0, 0);
    cp_async_commit();

    float dq[ND][4] = {};
    const int n_kv = qt + 1;
    for (int j = 0; j < n_kv; j++) {
        next_tile<false>(j, n_kv, load);
        const int buf = j & 1;
#pragma unroll
        for (int kk = 0; kk < Bc / 16; kk++) {
            uint32_t a[4];  // dS: this warp's 16 queries x keys 16 kk .. 16 kk + 15
            ldsm_x4_trans(a, sS + (buf * Bc + kk * 16 + b_row(lane)) * SD + warp * 16 + b_col(lane));
            mma_a_b<HDP>(dq, a, sK + buf * Bc * S, kk, lane);
        }
        __syncthreads();
    }
    const int row[2] = {qt * kDsTile + warp * 16 + gr, qt * kDsTile + warp * 16 + gr + 8};
    store_dq<HDP>(dqkv, dq, p, b, h, row, tq);
}

// D[b, h, t] = dout.o of one row, `lanes` lanes a row reading VW elements at a time (8 lanes of 16 bytes for a head
// of 64 in bf16: a warp a row would leave most lanes one 2-byte load each).
template <typename T, int VW>
__global__ void attn_rowdot_kernel(float* D, const T* dout, const T* o, int64_t rows, int T_, int H, int hd,
                                   int lanes) {
    const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / lanes;  // (b, t, h), the layout of o
    const int lane = threadIdx.x % lanes;
    float acc = 0.f;
    if (i < rows)
        for (int d = lane * VW; d < hd; d += lanes * VW) {
            float a[VW], b[VW];
            load_f32<VW>(dout + i * hd + d, a);
            load_f32<VW>(o + i * hd + d, b);
            for (int e = 0; e < VW; e++) acc += a[e] * b[e];
        }
    acc = group_sum(acc, lanes);
    if (i >= rows || lane != 0) return;
    const int h = int(i % H);
    const int64_t bt = i / H, b = bt / T_, t = bt % T_;
    D[(b * H + h) * T_ + t] = acc;
}

// dsink[h] += -sum over (b, t) of exp(sink[h] - lse) D, one block per head, summed in a fixed order.
template <typename T>
__global__ void attn_dsink_kernel(float* dsink, const T* sink, const float* lse, const float* D, int B, int T_,
                                  int H) {
    int h = blockIdx.x;
    float s = to_float(sink[h]);
    float acc = 0.f;
    for (int64_t i = threadIdx.x; i < int64_t(B) * T_; i += blockDim.x) {
        int64_t r = (i / T_ * H + h) * T_ + i % T_;
        acc += expf(s - lse[r]) * D[r];
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) dsink[h] -= acc;
}

int padded_hd(int hd) { return hd <= 32 ? 32 : hd <= 64 ? 64 : 128; }

#if defined(SINKLAB_WGMMA) || defined(SINKLAB_EMU)
constexpr bool kWgmmaBuilt = true;  // the build has sm_90a code (CMakeLists.txt), or runs on the emulator
#else
constexpr bool kWgmmaBuilt = false;
#endif

// attention.impl: sinklab_wgmma, which validate_config limits to bf16 and these head dims (the backend checks the
// device is sm_90).
bool use_wgmma(const AttnSpec& s, bool vec) {
    if (!s.wgmma) return false;
    SL_REQUIRE(kWgmmaBuilt, "attention.impl: sinklab_wgmma needs sm_90a code, which this build lacks: configure with "
                            "-DSINKLAB_CUDA_ARCH=90a (or 80;90a), or use attention.impl: sinklab");
    SL_REQUIRE(vec && padded_hd(s.hd) == 64,
               "attention.impl: sinklab_wgmma runs head dims 40 to 64 in steps of 8 on 16-byte aligned rows, not "
               "head dim {}; use attention.impl: sinklab",
               s.hd);
    return true;
}

// Calls f.template operator()<HDP, kSigmoid, kWg>() for the padded head dim, the score function of p and whether
// wgmma runs: the kernels are compiled per score function so that their inner loops carry no branch on it.
template <typename F> void dispatch(const AttnParams& p, bool wg, F&& f) {
    auto by_hd = [&]<bool kSigmoid>() {
        switch (padded_hd(p.hd)) {
            case 32: f.template operator()<32, kSigmoid, false>(); break;
            case 64:
                if constexpr (kWgmmaBuilt)
                    if (wg) return f.template operator()<64, kSigmoid, true>();
                f.template operator()<64, kSigmoid, false>();
                break;
            default: f.template operator()<128, kSigmoid, false>(); break;
        }
    };
    if (p.score == AttnScore::Sigmoid)
        by_hd.template operator()<true>();
    else
        by_hd.template operator()<false>();
}

// What the blocks of one (sequence, head) pair all read, for tile_grid: its K and V (forward, dQ), or the Q and dO
// of a kv head's query heads (dK/dV).
template <int HDP> int64_t kv_bytes(const AttnParams& p) { return int64_t(p.T) * HDP * 2 * sizeof(bf16); }
template <int HDP> int64_t qdo_bytes(const AttnParams& p) { return kv_bytes<HDP>(p) * (p.H / p.Hkv); }

// Shared memory bytes beyond the tiles: the wgmma kernels align their tiles to 1024 bytes themselves.
template <bool kWg> constexpr size_t kAlignSlack = kWg ? 1024 : 0;

template <int HDP, bool kSigmoid, bool kWg>
void fwd_bf16(bf16* o, float* lse, const bf16* qkv, const bf16* sink, const AttnParams& p, bool vec, cudaStream_t st) {
    constexpr int S = kStride<HDP, kWg>;
    AttnParams q = p;
    const int n = int(ceil_div(p.T, kFwdRows<HDP>));
    const dim3 grid = tile_grid(q, n, p.H, kv_bytes<HDP>(p));
    CUDA_LAUNCH(attn_fwd_kernel<HDP, kSigmoid, kWg>, grid, kFwdThreads<HDP>,
                size_t(kFwdRows<HDP> + 2 * kFwdBuffers<kWg> * 64) * S * sizeof(bf16) + kAlignSlack<kWg>, st, o, lse,
                qkv, sink, q, vec);
}

// ds: the dS scratch for ds_seqs sequences at a time, or null (the dQ kernel recomputes S, P and dP).
template <int HDP, bool kSigmoid, bool kWg>
void bwd_bf16(bf16* dqkv, bf16* ds, int ds_seqs, const bf16* dout, const float* lse, const float* D, const bf16* qkv,
              const AttnParams& p, bool vec, cudaStream_t st) {
    constexpr int S = kStride<HDP, kWg>, Bq = HDP > 64 ? 32 : 64, Bc = HDP > 64 ? 32 : 64;  // fewer registers at 128
    const size_t kv_smem = size_t(2 * 64 + 4 * Bq) * S * sizeof(bf16) + 4 * Bq * sizeof(float) + kAlignSlack<kWg>;
    if constexpr (HDP <= 64) {
        if (ds) {
            // Sequences in passes whose dS fits the scratch; a sequence's rows are contiguous in every tensor.
            for (int b0 = 0; b0 < p.B; b0 += ds_seqs) {
                AttnParams q = p;
                q.B = std::min(ds_seqs, p.B - b0);
                const int64_t t0 = int64_t(b0) * p.T, r0 = int64_t(b0) * p.H * p.T;  // its first token, lse/D row
                const int nk = int(ceil_div(p.T, 64)), nq = int(ceil_div(p.T, kDsTile));
                const dim3 kv_grid = tile_grid(q, nk, p.Hkv, qdo_bytes<HDP>(p));
                CUDA_LAUNCH((attn_dkdv_kernel<HDP, Bq, kSigmoid, kWg, true>), kv_grid, kThreads, kv_smem, st,
                            dqkv + t0 * p.W, ds, dout + t0 * p.H * p.hd, lse + r0, D ? D + r0 : nullptr,
                            qkv + t0 * p.W, q, vec);
                CUDA_LAUNCH(attn_dq_ds_kernel<HDP>, tile_grid(nq, p.H, q.B, 0), kThreads,
                            size_t(2 * kDsTile) * (kStride<HDP, false> + kStride<kDsTile, false>) * sizeof(bf16), st,
                            dqkv + t0 * p.W, ds, qkv + t0 * p.W, q, vec);
            }
            return;
        }
    }
    AttnParams kv = p, q = p;
    const int nk = int(ceil_div(p.T, 64)), nq = int(ceil_div(p.T, kDqRows<kWg>));
    const dim3 kv_grid = tile_grid(kv, nk, p.Hkv, qdo_bytes<HDP>(p)), q_grid = tile_grid(q, nq, p.H, kv_bytes<HDP>(p));
    CUDA_LAUNCH((attn_dkdv_kernel<HDP, Bq, kSigmoid, kWg, false>), kv_grid, kThreads, kv_smem, st, dqkv, nullptr, dout,
                lse, D, qkv, kv, vec);
    CUDA_LAUNCH(attn_dq_kernel<HDP, Bc, kSigmoid, kWg>, q_grid, 2 * kDqRows<kWg>,
                size_t(2 * kDqRows<kWg> + 4 * Bc) * S * sizeof(bf16) + kAlignSlack<kWg>, st, dqkv, dout, lse, D, qkv, q,
                vec);
}

// D [B, H, T] = dout.o of every row; returns D.
template <typename T>
const float* compute_rowdot(float* D, const T* dout, const T* o, const AttnSpec& s, cudaStream_t st) {
    const int64_t rows = int64_t(s.B) * s.T * s.H;
    const bool vec = vec_ok<T>(s.hd, dout, o);
    const int lanes = lanes_for(s.hd, vec ? kVec<T> : 1);
    const auto grid = unsigned(ceil_div(rows * lanes, 256));
    if (vec)
        CUDA_LAUNCH(attn_rowdot_kernel<T, kVec<T>>, grid, 256, 0, st, D, dout, o, rows, s.T, s.H, s.hd, lanes);
    else
        CUDA_LAUNCH(attn_rowdot_kernel<T, 1>, grid, 256, 0, st, D, dout, o, rows, s.T, s.H, s.hd, lanes);
    return D;
}

void check_spec(const AttnSpec& s) {
    SL_REQUIRE(s.hd % 2 == 0 && s.hd <= AttnSpec::kMaxHeadDim,
               "attention head_dim {} is not supported by the CUDA kernels: it must be even and at most {} (change "
               "model.d_model / model.n_head)",
               s.hd, AttnSpec::kMaxHeadDim);
    // Heads and sequences go on the grid's y and z, which hold at most 65535 each (validate_config bounds the
    // micro-batch, and so B, where a config sets it).
    SL_ASSERT(s.B >= 0 && s.T >= 0 && s.H >= 1 && s.B <= 65535 && s.H <= 65535,
              "attention over {} sequences of {} tokens x {} heads: off the grid", s.B, s.T, s.H);
    SL_ASSERT(s.T <= kMaxSeqLen, "attention over {} tokens: more tiles than a grid's y holds", s.T);
}

}  // namespace

template <typename T>
void attention_fwd(T* o, float* lse, const T* qkv, const T* sink, const AttnSpec& s, cudaStream_t st) {
    check_spec(s);
    if (s.B == 0 || s.T == 0) return;
    AttnParams p = attn_params(s);
    if constexpr (std::is_same_v<T, float>) {
        attention_fwd_f32(o, lse, qkv, sink, p, st);
    } else {
        bool vec = s.hd % 8 == 0 && vec_ok<bf16>(8, o, qkv);
        dispatch(p, use_wgmma(s, vec), [&]<int HDP, bool kSigmoid, bool kWg>() {
            fwd_bf16<HDP, kSigmoid, kWg>(o, lse, qkv, sink, p, vec, st);
        });
    }
}

template <typename T> size_t attention_bwd_scratch(const AttnSpec& s) {
    return attn_bwd_scratch(s, std::is_same_v<T, bf16>).bytes;
}

template <typename T>
void attention_bwd(T* dqkv, float* dsink, const T* dout, const T* o, const float* lse, const T* qkv, const T* sink,
                   const AttnSpec& s, Scratch scratch, cudaStream_t st, const float* rowdot) {
    check_spec(s);
    auto* base = scratch.take<char>(attention_bwd_scratch<T>(s), "attention_bwd");
    if (s.B == 0 || s.T == 0) return;
    AttnParams p = attn_params(s);
    const float* D = nullptr;  // [B, H, T], the softmax family only: the caller's, or computed into the scratch
    if (s.score != AttnScore::Sigmoid)
        D = rowdot ? rowdot : compute_rowdot(reinterpret_cast<float*>(base), dout, o, s, st);
    if constexpr (std::is_same_v<T, float>) {
        attention_bwd_f32(dqkv, dout, lse, D, qkv, p, st);
    } else {
        bool vec = s.hd % 8 == 0 && vec_ok<bf16>(8, dout, qkv);
        const AttnBwdScratch sc = attn_bwd_scratch(s, true);
        const int ds_seqs = sc.ds_seqs;
        bf16* ds = ds_seqs ? reinterpret_cast<bf16*>(base + sc.ds_offset) : nullptr;
        dispatch(p, use_wgmma(s, vec), [&]<int HDP, bool kSigmoid, bool kWg>() {
            bwd_bf16<HDP, kSigmoid, kWg>(dqkv, ds, ds_seqs, dout, lse, D, qkv, p, vec, st);
        });
    }
    if (s.score == AttnScore::SinkLogit) {
        SL_ASSERT(sink && dsink, "SinkLogit attention needs the sink logits and their gradient");
        CUDA_LAUNCH(attn_dsink_kernel<T>, unsigned(s.H), 256, 0, st, dsink, sink, lse, D, s.B, s.T, s.H);
    }
}

template size_t attention_bwd_scratch<float>(const AttnSpec&);
template size_t attention_bwd_scratch<bf16>(const AttnSpec&);
template void attention_fwd<float>(float*, float*, const float*, const float*, const AttnSpec&, cudaStream_t);
template void attention_fwd<bf16>(bf16*, float*, const bf16*, const bf16*, const AttnSpec&, cudaStream_t);
template void attention_bwd<float>(float*, float*, const float*, const float*, const float*, const float*,
                                   const float*, const AttnSpec&, Scratch, cudaStream_t, const float*);
template void attention_bwd<bf16>(bf16*, float*, const bf16*, const bf16*, const float*, const bf16*, const bf16*,
                                  const AttnSpec&, Scratch, cudaStream_t, const float*);

}  // namespace sinklab::cuda
