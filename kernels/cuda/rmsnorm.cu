// RMSNorm over groups of a row, the one kernel pair behind rmsnorm, headnorm and qknorm.
// Forward and backward: `lanes` lanes per (row, group), a power of two that covers the group in 16-byte accesses (32
// for d_model, 8 for a head of 64 in bf16: a whole warp per head left three quarters of it idle). Gain gradients:
// column partial sums per chunk of rows (a fixed split), added up in the pass that computes dx from the same loads,
// then an ordered reduction over chunks, so the result does not depend on scheduling.
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Row chunks of the backward, a block each: enough blocks to keep the memory busy at the model's token counts
// (48 x 1024 rows make 1024 chunks of 48), few enough that their partial sums stay small next to dout and x.
constexpr int kChunkRows = 16, kMaxChunks = 1024;
// Shared memory of a backward block, one row of partial gain sums a warp: up to 8 warps of 3072 channels at once.
constexpr int kBwdSmem = kMaxNormChannels * sizeof(float);

// The gain vector and offset that group h uses.
template <typename T>
__device__ __forceinline__ const T* gain_of(const NormLayout& L, const T* g0, const T* g1, int h) {
    const T* g = h < L.G0 ? g0 : g1;
    int hh = h < L.G0 ? h : h - L.G0;
    return L.per_group ? g + int64_t(hh) * L.gs : g;
}

// The (row, group) item of this thread's lane group, and the lane within it.
struct NormItem {
    int64_t n;
    int h, lane;
    bool valid;
};

__device__ __forceinline__ NormItem norm_item(const NormLayout& L, int lanes) {
    const int groups = L.W / L.gs;  // normalized groups, then copied ones
    const int64_t item = (int64_t(blockIdx.x) * kWarps + threadIdx.x / 32) * (32 / lanes) + (threadIdx.x % 32) / lanes;
    const bool valid = item < L.N * groups;
    return NormItem{valid ? item / groups : 0, valid ? int(item % groups) : 0, int(threadIdx.x % lanes), valid};
}

template <typename T, bool kVecIO>
__global__ void norm_fwd_kernel(T* out, float* rstd, const T* x, const T* g0, const T* g1, NormLayout L, float eps,
                                int lanes) {
    constexpr int VW = kVecIO ? kVec<T> : 1;
    const NormItem it = norm_item(L, lanes);
    const int64_t n = it.n;
    const int h = it.h, lane = it.lane, step = lanes * VW;
    const T* xr = x + n * L.W + int64_t(h) * L.gs;  // [gs]
    T* outr = out + n * L.W + int64_t(h) * L.gs;    // [gs]
    const bool norm = it.valid && h < L.G;
    if (it.valid && !norm) {
        for (int j = lane * VW; j < L.gs; j += step) {
            if constexpr (kVecIO) store_pack(outr + j, load_pack(xr + j));
            else outr[j] = xr[j];
        }
    }
    float ss = 0.f;
    if (norm) {
        for (int j = lane * VW; j < L.gs; j += step) {
            if constexpr (kVecIO) {
                Pack<T> p = load_pack(xr + j);
                for (int e = 0; e < VW; e++) ss += to_float(p.v[e]) * to_float(p.v[e]);
            } else {
                float v = to_float(xr[j]);
                ss += v * v;
            }
        }
    }
    ss = group_sum(ss, lanes);
    if (!norm) return;
    float r = 1.f / sqrtf(ss / float(L.gs) + eps);
    if (lane == 0) rstd[n * L.G + h] = r;
    const T* g = gain_of(L, g0, g1, h);
    for (int j = lane * VW; j < L.gs; j += step) {
        if constexpr (kVecIO) {
            Pack<T> p = load_pack(xr + j), gp = load_pack(g + j), o;
            for (int e = 0; e < VW; e++) o.v[e] = from_float<T>(to_float(p.v[e]) * r * to_float(gp.v[e]));
            store_pack(outr + j, o);
        } else {
            outr[j] = from_float<T>(to_float(xr[j]) * r * to_float(g[j]));
        }
    }
}

// dx = r (g dy - x r^2 mean_j(g dy x)), the gradient of y = x r g with r = (mean x^2 + eps)^-1/2; with accumulate
// it is added to dx, rounded once. partial[p, c] = the sum of dy x r over the rows of chunk p (this block's), for the
// normalized channels c < G gs. Each warp takes whole rows of the chunk, 32 / lanes groups a pass, so that a lane
// meets the same channels in every row: it adds their dy x r to its warp's row of sacc without racing another lane,
// and the block adds its warps' rows in order at the end. With rowdot [N / Tn, G, Tn], also dx.x of each group,
// from dx as stored.
template <typename T, bool kVecIO>
__global__ void norm_bwd_kernel(T* dx, float* partial, float* rowdot, const T* dout, const T* x, const T* g0,
                                const T* g1, const float* rstd, NormLayout L, int lanes, int64_t rows_per_chunk,
                                bool accumulate, int64_t Tn) {
    constexpr int VW = kVecIO ? kVec<T> : 1;
    const int groups = L.W / L.gs, Wn = L.G * L.gs, warps = blockDim.x / 32, warp = threadIdx.x / 32;
    const int lane = threadIdx.x % lanes, slot = threadIdx.x % 32 / lanes, step = lanes * VW;
    float* sacc = dynamic_smem<float>();  // [warps][Wn]
    float* wacc = sacc + warp * Wn;       // [Wn]
    for (int c = threadIdx.x % 32; c < Wn; c += 32) wacc[c] = 0.f;
    __syncwarp();
    const int64_t n0 = blockIdx.x * rows_per_chunk, n1 = min(L.N, n0 + rows_per_chunk);
    for (int64_t n = n0 + warp; n < n1; n += warps)
        for (int h0 = 0; h0 < groups; h0 += 32 / lanes) {
            const int h = h0 + slot;
            const bool norm = h < L.G;
            const int64_t off = n * L.W + int64_t(h) * L.gs;
            const T *xr = x + off, *dyr = dout + off;  // [gs]
            T* dxr = dx + off;                           // [gs]
            if (h < groups && !norm) {
                for (int j = lane * VW; j < L.gs; j += step) {
                    float d[VW], o[VW];
                    load_f32<VW>(dyr + j, d);
                    if (accumulate) load_f32<VW>(dxr + j, o);
                    for (int e = 0; e < VW; e++) o[e] = accumulate ? o[e] + d[e] : d[e];
                    store_f32<VW>(dxr + j, o);
                }
            }
            const T* g = gain_of(L, g0, g1, norm ? h : 0);
            float dot = 0.f;
            if (norm) {
                for (int j = lane * VW; j < L.gs; j += step) {
                    if constexpr (kVecIO) {
                        Pack<T> xp = load_pack(xr + j), dp = load_pack(dyr + j), gp = load_pack(g + j);
                        for (int e = 0; e < VW; e++) dot += to_float(gp.v[e]) * to_float(dp.v[e]) * to_float(xp.v[e]);
                    } else {
                        dot += to_float(g[j]) * to_float(dyr[j]) * to_float(xr[j]);
                    }
                }
            }
            dot = group_sum(dot, lanes);  // every lane of the warp, whatever its group
            float dxx = 0.f;  // dx.x of the group
            if (norm) {
                float r = rstd[n * L.G + h];
                float c = dot * r * r / float(L.gs);
                float* acc = wacc + h * L.gs;  // [gs]
                for (int j = lane * VW; j < L.gs; j += step) {
                    float xv[VW], dv[VW], gv[VW], o[VW];
                    load_f32<VW>(xr + j, xv);
                    load_f32<VW>(dyr + j, dv);
                    load_f32<VW>(g + j, gv);
                    if (accumulate) load_f32<VW>(dxr + j, o);
                    for (int e = 0; e < VW; e++) {
                        const float d = r * (gv[e] * dv[e] - xv[e] * c);
                        o[e] = accumulate ? o[e] + d : d;
                        acc[j + e] += dv[e] * xv[e] * r;
                        // dx as stored: the D the attention backward would compute from it, consistent with the
                        // rounded gradient its other terms see (from the unrounded dx, a row that sees one key would
                        // get a score gradient of bf16 rounding size instead of about zero)
                        dxx += to_float(from_float<T>(o[e])) * xv[e];
                    }
                    store_f32<VW>(dxr + j, o);
                }
            }
            if (rowdot) {  // the same for the whole grid, so every lane of the warp sums
                dxx = group_sum(dxx, lanes);
                if (norm && lane == 0) rowdot[(n / Tn * L.G + h) * Tn + n % Tn] = dxx;
            }
        }
    __syncthreads();
    for (int c = threadIdx.x; c < Wn; c += blockDim.x) {
        float sum = 0.f;
        for (int w = 0; w < warps; w++) sum += sacc[w * Wn + c];
        partial[int64_t(blockIdx.x) * Wn + c] = sum;
    }
}

// dg[e] += the sum over chunks p and over the groups [ha, hb) that share gain element e: 32 elements a block, each
// of its warps over every kWarps-th chunk in order, then the warps' sums in order.
__global__ void norm_dg_reduce_kernel(float* dg, const float* partial, int chunks, int Wn, int gs, int ha, int hb,
                                      bool per_group) {
    __shared__ float part[kWarps][32];
    const int len = per_group ? (hb - ha) * gs : gs, col = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int e = blockIdx.x * 32 + col;
    float acc = 0.f;
    if (e < len)
        for (int p = warp; p < chunks; p += kWarps) {
            const float* row = partial + int64_t(p) * Wn;  // [Wn]
            if (per_group) {
                acc += row[ha * gs + e];
            } else {
                for (int h = ha; h < hb; h++) acc += row[h * gs + e];
            }
        }
    part[warp][col] = acc;
    __syncthreads();
    if (warp > 0 || e >= len) return;
    float sum = 0.f;
    for (int w = 0; w < kWarps; w++) sum += part[w][col];
    dg[e] += sum;
}

int chunks_of(int64_t N) { return int(std::min<int64_t>(ceil_div(N, kChunkRows), kMaxChunks)); }

// Grid of norm_fwd_kernel: kWarps warps of 32 / lanes items each.
dim3 norm_grid(const NormLayout& L, int lanes) {
    return dim3(unsigned(ceil_div(L.N * (L.W / L.gs), int64_t(kWarps) * (32 / lanes))));
}

void check_layout(const NormLayout& L) {
    SL_ASSERT(L.gs > 0 && L.W % L.gs == 0 && L.G >= 1 && L.G * L.gs <= L.W && L.G0 >= 1 && L.G0 <= L.G,
              "norm layout W={} G={} gs={} G0={}", L.W, L.G, L.gs, L.G0);
}

}  // namespace

size_t norm_bwd_scratch(const NormLayout& L) { return size_t(kMaxChunks) * L.G * L.gs * sizeof(float); }

template <typename T>
void norm_fwd(T* out, float* rstd, const T* x, const T* g0, const T* g1, const NormLayout& L, float eps,
              cudaStream_t st) {
    check_layout(L);
    if (L.N == 0) return;
    if (vec_ok<T>(L.gs, out, x, g0, g1)) {
        const int lanes = lanes_for(L.gs, kVec<T>);
        CUDA_LAUNCH(norm_fwd_kernel<T, true>, norm_grid(L, lanes), kThreads, 0, st, out, rstd, x, g0, g1, L, eps,
                    lanes);
    } else {
        const int lanes = lanes_for(L.gs, 1);
        CUDA_LAUNCH(norm_fwd_kernel<T, false>, norm_grid(L, lanes), kThreads, 0, st, out, rstd, x, g0, g1, L, eps,
                    lanes);
    }
}

template <typename T>
void norm_bwd(T* dx, float* dg0, float* dg1, const T* dout, const T* x, const T* g0, const T* g1, const float* rstd,
              const NormLayout& L, bool accumulate, Scratch scratch, cudaStream_t st, float* rowdot, int64_t Tn) {
    check_layout(L);
    SL_ASSERT((L.G > L.G0) == (dg1 != nullptr), "norm_bwd: a second gain gradient exactly when there is a second gain");
    SL_ASSERT(!rowdot || (!accumulate && Tn > 0 && L.N % Tn == 0),
              "norm_bwd: rowdot needs rows of T = {} dividing N = {}, and no accumulate ({})", Tn, L.N, accumulate);
    if (L.N == 0) return;
    const int chunks = chunks_of(L.N), Wn = L.G * L.gs;
    const int64_t rows_per_chunk = ceil_div(L.N, chunks);
    const size_t row_bytes = size_t(Wn) * sizeof(float);
    const int warps = int(std::min<size_t>(kWarps, kBwdSmem / row_bytes));
    SL_REQUIRE(warps >= 1,
               "the CUDA norm backward holds at most {} normalized channels a row in shared memory, not {}: use a "
               "smaller model.d_model",
               kBwdSmem / sizeof(float), Wn);
    auto* partial = scratch.take<float>(norm_bwd_scratch(L), "norm_bwd");  // [chunks, Wn]
    const unsigned grid = unsigned(chunks), block = unsigned(warps * 32);
    const size_t smem = size_t(warps) * row_bytes;
    if (vec_ok<T>(L.gs, dx, dout, x, g0, g1))
        CUDA_LAUNCH(norm_bwd_kernel<T, true>, grid, block, smem, st, dx, partial, rowdot, dout, x, g0, g1, rstd, L,
                    lanes_for(L.gs, kVec<T>), rows_per_chunk, accumulate, Tn);
    else
        CUDA_LAUNCH(norm_bwd_kernel<T, false>, grid, block, smem, st, dx, partial, rowdot, dout, x, g0, g1, rstd, L,
                    lanes_for(L.gs, 1), rows_per_chunk, accumulate, Tn);
    auto reduce = [&](float* dg, int ha, int hb) {
        int len = L.per_group ? (hb - ha) * L.gs : L.gs;
        CUDA_LAUNCH(norm_dg_reduce_kernel, unsigned(ceil_div(len, 32)), kThreads, 0, st, dg, partial, chunks, Wn,
                    L.gs, ha, hb, L.per_group);
    };
    reduce(dg0, 0, L.G0);
    if (dg1) reduce(dg1, L.G0, L.G);
}

template <typename T>
void rmsnorm_fwd(T* out, float* rstd, const T* x, const T* g, int64_t N, int64_t C, float eps, cudaStream_t st) {
    norm_fwd(out, rstd, x, g, static_cast<const T*>(nullptr), rmsnorm_layout(N, C), eps, st);
}

template <typename T>
void rmsnorm_bwd(T* dx, float* dg, const T* dout, const T* x, const T* g, const float* rstd, int64_t N, int64_t C,
                 bool accumulate, Scratch scratch, cudaStream_t st) {
    norm_bwd(dx, dg, nullptr, dout, x, g, static_cast<const T*>(nullptr), rstd, rmsnorm_layout(N, C), accumulate,
             scratch, st);
}

NormLayout rmsnorm_layout(int64_t N, int64_t C) { return NormLayout{N, int(C), 1, int(C), 1, false}; }

#define SL_INSTANTIATE(T)                                                                                          \
    template void norm_fwd<T>(T*, float*, const T*, const T*, const T*, const NormLayout&, float, cudaStream_t);   \
    template void norm_bwd<T>(T*, float*, float*, const T*, const T*, const T*, const T*, const float*,            \
                              const NormLayout&, bool, Scratch, cudaStream_t, float*, int64_t);                     \
    template void rmsnorm_fwd<T>(T*, float*, const T*, const T*, int64_t, int64_t, float, cudaStream_t);           \
    template void rmsnorm_bwd<T>(T*, float*, const T*, const T*, const T*, const float*, int64_t, int64_t, bool, \
                                 Scratch, cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
