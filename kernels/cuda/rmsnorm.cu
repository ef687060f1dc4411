// RMSNorm over groups of a row, the one kernel pair behind rmsnorm, headnorm and qknorm.
// Forward and dx: `lanes` lanes per (row, group), a power of two that covers the group in 16-byte accesses (32 for
// d_model, 8 for a head of 64 in bf16: a whole warp per head left three quarters of it idle). Gain gradients:
// per-chunk column partial sums (a fixed split of the rows), then an ordered reduction over chunks, so the result
// does not depend on scheduling.
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxChunks = 256;  // row chunks of the gain-gradient partial sums

// The gain vector and offset that group h uses.
template <typename T>
__device__ __forceinline__ const T* gain_of(const NormLayout& L, const T* g0, const T* g1, int h) {
    const T* g = h < L.G0 ? g0 : g1;
    int hh = h < L.G0 ? h : h - L.G0;
    return L.per_group ? g + int64_t(hh) * L.gs : g;
}

// Sum over the aligned groups of `lanes` lanes; every lane of the warp must call it.
__device__ __forceinline__ float group_sum(float x, int lanes) {
    for (int o = lanes / 2; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
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
// it is added to dx, rounded once.
template <typename T, bool kVecIO>
__global__ void norm_dx_kernel(T* dx, const T* dout, const T* x, const T* g0, const T* g1, const float* rstd,
                               NormLayout L, int lanes, bool accumulate) {
    constexpr int VW = kVecIO ? kVec<T> : 1;
    const NormItem it = norm_item(L, lanes);
    const int64_t n = it.n;
    const int h = it.h, lane = it.lane, step = lanes * VW;
    const int64_t off = n * L.W + int64_t(h) * L.gs;
    const T *xr = x + off, *dyr = dout + off;  // [gs]
    T* dxr = dx + off;                           // [gs]
    const bool norm = it.valid && h < L.G;
    if (it.valid && !norm) {
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
    dot = group_sum(dot, lanes);
    if (!norm) return;
    float r = rstd[n * L.G + h];
    float c = dot * r * r / float(L.gs);
    for (int j = lane * VW; j < L.gs; j += step) {
        float xv[VW], dv[VW], gv[VW], o[VW];
        load_f32<VW>(xr + j, xv);
        load_f32<VW>(dyr + j, dv);
        load_f32<VW>(g + j, gv);
        if (accumulate) load_f32<VW>(dxr + j, o);
        for (int e = 0; e < VW; e++) {
            const float d = r * (gv[e] * dv[e] - xv[e] * c);
            o[e] = accumulate ? o[e] + d : d;
        }
        store_f32<VW>(dxr + j, o);
    }
}

// partial[p, c] = sum over the rows of chunk p of dout * x * rstd, for the normalized channels c < G*gs.
template <typename T>
__global__ void norm_dg_partial_kernel(float* partial, const T* dout, const T* x, const float* rstd, NormLayout L,
                                       int64_t rows_per_chunk) {
    int Wn = L.G * L.gs;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= Wn) return;
    int h = c / L.gs;
    int64_t n0 = int64_t(blockIdx.y) * rows_per_chunk, n1 = min(L.N, n0 + rows_per_chunk);
    float acc = 0.f;
    for (int64_t n = n0; n < n1; n++)
        acc += to_float(dout[n * L.W + c]) * to_float(x[n * L.W + c]) * rstd[n * L.G + h];
    partial[int64_t(blockIdx.y) * Wn + c] = acc;
}

// dg[e] += sum over chunks p (in order) and over the groups [ha, hb) that share gain element e.
__global__ void norm_dg_reduce_kernel(float* dg, const float* partial, int chunks, int Wn, int gs, int ha, int hb,
                                      bool per_group) {
    int len = per_group ? (hb - ha) * gs : gs;
    int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= len) return;
    float acc = 0.f;
    for (int p = 0; p < chunks; p++) {
        const float* row = partial + int64_t(p) * Wn;
        if (per_group) {
            acc += row[ha * gs + e];
        } else {
            for (int h = ha; h < hb; h++) acc += row[h * gs + e];
        }
    }
    dg[e] += acc;
}

int chunks_of(int64_t N) { return int(std::min<int64_t>(ceil_div(N, 32), kMaxChunks)); }

// Lanes per (row, group): the power of two that covers gs in accesses of vw elements, at most a warp.
int lanes_for(int gs, int vw) {
    int lanes = 1;
    while (lanes < 32 && lanes * vw < gs) lanes *= 2;
    return lanes;
}

// Grid of norm_fwd_kernel / norm_dx_kernel: kWarps warps of 32 / lanes items each.
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
              const NormLayout& L, bool accumulate, void* scratch, cudaStream_t st) {
    check_layout(L);
    SL_ASSERT((L.G > L.G0) == (dg1 != nullptr), "norm_bwd: a second gain gradient exactly when there is a second gain");
    if (L.N == 0) return;
    if (vec_ok<T>(L.gs, dx, dout, x, g0, g1)) {
        const int lanes = lanes_for(L.gs, kVec<T>);
        CUDA_LAUNCH(norm_dx_kernel<T, true>, norm_grid(L, lanes), kThreads, 0, st, dx, dout, x, g0, g1, rstd, L,
                    lanes, accumulate);
    } else {
        const int lanes = lanes_for(L.gs, 1);
        CUDA_LAUNCH(norm_dx_kernel<T, false>, norm_grid(L, lanes), kThreads, 0, st, dx, dout, x, g0, g1, rstd, L,
                    lanes, accumulate);
    }

    int chunks = chunks_of(L.N), Wn = L.G * L.gs;
    int64_t rows_per_chunk = ceil_div(L.N, chunks);
    auto* partial = static_cast<float*>(scratch);  // [chunks, Wn]
    CUDA_LAUNCH(norm_dg_partial_kernel<T>, dim3(unsigned(ceil_div(Wn, kThreads)), unsigned(chunks)), kThreads, 0, st,
                partial, dout, x, rstd, L, rows_per_chunk);
    auto reduce = [&](float* dg, int ha, int hb) {
        int len = L.per_group ? (hb - ha) * L.gs : L.gs;
        CUDA_LAUNCH(norm_dg_reduce_kernel, unsigned(ceil_div(len, kThreads)), kThreads, 0, st, dg, partial, chunks,
                    Wn, L.gs, ha, hb, L.per_group);
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
                 bool accumulate, void* scratch, cudaStream_t st) {
    norm_bwd(dx, dg, nullptr, dout, x, g, static_cast<const T*>(nullptr), rstd, rmsnorm_layout(N, C), accumulate,
             scratch, st);
}

NormLayout rmsnorm_layout(int64_t N, int64_t C) { return NormLayout{N, int(C), 1, int(C), 1, false}; }

#define SL_INSTANTIATE(T)                                                                                          \
    template void norm_fwd<T>(T*, float*, const T*, const T*, const T*, const NormLayout&, float, cudaStream_t);   \
    template void norm_bwd<T>(T*, float*, float*, const T*, const T*, const T*, const T*, const float*,            \
                              const NormLayout&, bool, void*, cudaStream_t);                                       \
    template void rmsnorm_fwd<T>(T*, float*, const T*, const T*, int64_t, int64_t, float, cudaStream_t);           \
    template void rmsnorm_bwd<T>(T*, float*, const T*, const T*, const T*, const float*, int64_t, int64_t, bool, \
                                 void*, cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
