// Sink-metric reductions (the CUDA twin of kernels/cpu/metrics.cpp). Attention weights are rebuilt from the
// saved row log-sum-exp one query-key pair at a time; every sum has a fixed order, so results repeat exactly.
#include <algorithm>

#include "kernels/cuda/attention.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {

namespace {

constexpr int kThreads = 256;

struct TrackedPositions {
    int p[kMaxTrackedPositions];
};

// Whether query row i sees key j, given whether i is isolated (looked up once when a row meets several keys).
__device__ __forceinline__ bool sees(int i, int j, bool i_isolated) { return i == j || (i > j && !i_isolated); }
__device__ __forceinline__ bool sees(const AttnParams& a, int i, int j) { return sees(i, j, is_isolated(a, i)); }

// Weight of query row i (sequence b, head h) on a key, from their dot product z: the attention's own formula, in
// double.
__device__ __forceinline__ double weight_of(float z, const float* lse, const AttnParams& a, int b, int h, int i) {
    const double zs = double(z) * a.scale;
    if (a.score == AttnScore::Sigmoid) return sigmoid(zs + a.sigmoid_bias);
    return exp(zs - double(lse[(int64_t(b) * a.H + h) * a.T + i]));
}

template <typename T>
__device__ __forceinline__ const T* q_row(const T* qkv, const AttnParams& a, int b, int h, int i) {
    return qkv + (int64_t(b) * a.T + i) * a.W + int64_t(h) * a.hd;
}
template <typename T>
__device__ __forceinline__ const T* k_row(const T* qkv, const AttnParams& a, int b, int h, int j) {
    return qkv + (int64_t(b) * a.T + j) * a.W + int64_t(a.H + h / (a.H / a.Hkv)) * a.hd;
}

// Weight query row i of sequence b, head h puts on key j, one thread alone.
template <typename T>
__device__ double weight(const T* qkv, const float* lse, const AttnParams& a, int b, int h, int i, int j) {
    const T* q = q_row(qkv, a, b, h, i);
    const T* k = k_row(qkv, a, b, h, j);
    float z = 0.f;
    for (int d = 0; d < a.hd; d++) z = fmaf(to_float(q[d]), to_float(k[d]), z);
    return weight_of(z, lse, a, b, h, i);
}

// One thread per query row (b, i) of one head, kMassRows rows per block, so that the loads of q, lse and the
// double-precision exp run on every lane (a warp per row left 31 lanes idle through the exp and serialized each
// row's loads). The thread reads its q row once per tracked key; the key row is the same address for every
// thread of a sequence, so it is a broadcast. Each block adds its rows' weights per tracked key with block_sum
// into partial [H, P, tiles]; attn_mass_finish_kernel adds the tiles in a fixed order, so results repeat exactly.
// The positions are __grid_constant__ because the array is indexed at run time, which would otherwise copy it to
// local memory.
constexpr int kMassRows = 256;

struct MassPartial {
    double sum, count;
};

template <typename T, int VW>
__global__ void __launch_bounds__(kMassRows)
    attn_mass_kernel(MassPartial* partial, const T* qkv, const float* lse, int P,
                     const __grid_constant__ TrackedPositions pos, const __grid_constant__ AttnParams a) {
    const int h = blockIdx.y;
    const int64_t r = int64_t(blockIdx.x) * kMassRows + threadIdx.x;
    const bool valid = r < int64_t(a.B) * a.T;
    const int b = valid ? int(r / a.T) : 0, i = valid ? int(r % a.T) : 0;
    const bool isolated = valid && is_isolated(a, i);
    const T* q = q_row(qkv, a, b, h, i);  // [hd]
    for (int k = 0; k < P; k++) {
        const int p = pos.p[k];
        const bool seen = valid && sees(i, p, isolated);
        double w = 0;
        if (seen) {
            const T* kr = k_row(qkv, a, b, h, p);  // [hd]
            float z = 0.f;
            for (int d = 0; d < a.hd; d += VW) {
                float qv[VW], kv[VW];
                load_f32<VW>(q + d, qv);
                load_f32<VW>(kr + d, kv);
                for (int e = 0; e < VW; e++) z = fmaf(qv[e], kv[e], z);
            }
            w = weight_of(z, lse, a, b, h, i);
        }
        const double sum = block_sum(w), count = block_sum(seen ? 1.0 : 0.0);
        if (threadIdx.x == 0) partial[(int64_t(h) * P + k) * gridDim.x + blockIdx.x] = MassPartial{sum, count};
    }
}

// One warp per (head, tracked position): lane l adds tiles l, l + 32, ..., then the lanes are added in a fixed
// order.
__global__ void attn_mass_finish_kernel(float* out, const MassPartial* partial, int n, int tiles) {
    const int i = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (i >= n) return;
    const MassPartial* mine = partial + int64_t(i) * tiles;  // [tiles]
    double sum = 0, count = 0;
    for (int t = lane; t < tiles; t += 32) {
        sum += mine[t].sum;
        count += mine[t].count;
    }
    sum = warp_sum(sum);
    count = warp_sum(count);
    if (lane == 0) out[i] = float(sum / count);
}

// One block per row i of the map; threads over keys j.
template <typename T>
__global__ void attn_map_kernel(float* out, int Q, const T* qkv, const float* lse,
                                const __grid_constant__ AttnParams a) {
    const int i = blockIdx.x;
    for (int j = threadIdx.x; j < Q; j += blockDim.x) {
        double sum = 0;
        if (sees(a, i, j))
            for (int h = 0; h < a.H; h++) sum += weight(qkv, lse, a, 0, h, i, j);
        out[int64_t(i) * Q + j] = float(sum / a.H);
    }
}

// One block per position t < Tp: the channel std of each sequence's row t, averaged over sequences. One warp per
// sequence (warp w takes b = w, w + 32, ...), 16-byte loads where the rows allow, several in flight per lane; the
// warps' sums are added in warp order. Tp is small (64 by default), so the blocks are large: with 8 warps and
// element-wise loads the Tp blocks left most multiprocessors idle and each lane waited on one load at a time.
constexpr int kStdThreads = 1024;

template <typename T, int VW>
__global__ void __launch_bounds__(kStdThreads) position_std_kernel(float* out, const T* x, int B, int Tn, int D) {
    const int t = blockIdx.x, warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    double acc = 0;  // meaningful in lane 0
    for (int b = warp; b < B; b += nwarps) {
        const T* row = x + (int64_t(b) * Tn + t) * D;  // [D]
        double s1 = 0, s2 = 0;
#pragma unroll 4
        for (int d = lane * VW; d < D; d += 32 * VW) {
            float v[VW];
            load_f32<VW>(row + d, v);
            for (int e = 0; e < VW; e++) {
                s1 += v[e];
                s2 += double(v[e]) * v[e];
            }
        }
        s1 = warp_sum(s1);
        s2 = warp_sum(s2);
        const double mean = s1 / D;
        acc += sqrt(fmax(0.0, s2 / D - mean * mean));
    }
    __shared__ double part[32];
    if (lane == 0) part[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0;
        for (int w = 0; w < nwarps; w++) total += part[w];
        out[t] = float(total / B);
    }
}

// token0_stats in one block: warp w takes the token-0 rows of sequences b = w, w + nwarps, ..., 16-byte loads
// where the rows allow, several in flight per lane. Each warp keeps its rows' sum of dominances and its first largest
// |x| (b, then channel order); the warps' results are combined in warp order, so the result repeats exactly and
// ties resolve as a sequential scan's.
constexpr int kToken0Threads = 1024;

template <typename T, int VW>
__global__ void __launch_bounds__(kToken0Threads) token0_stats_kernel(float* out, const T* x, int B, int Tn, int D) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    double dominance = 0;
    float best = -1.f;
    int best_b = 0, best_arg = 0;
    for (int b = warp; b < B; b += nwarps) {
        const T* row = x + int64_t(b) * Tn * D;  // [D]
        double sa = 0;
        float mx = -1.f;
        int arg = 0;
#pragma unroll 4
        for (int d = lane * VW; d < D; d += 32 * VW) {
            float v[VW];
            load_f32<VW>(row + d, v);
            for (int e = 0; e < VW; e++) {
                const float a = fabsf(v[e]);
                sa += a;
                if (a > mx) mx = a, arg = d + e;  // each lane visits its channels in increasing order
            }
        }
        sa = warp_sum(sa);
        // Largest |x|, ties to the smallest channel, on every lane.
        for (int o = 16; o > 0; o >>= 1) {
            const float om = __shfl_xor_sync(0xffffffffu, mx, o);
            const int oa = __shfl_xor_sync(0xffffffffu, arg, o);
            if (om > mx || (om == mx && oa < arg)) mx = om, arg = oa;
        }
        dominance += sa == 0 ? 0.0 : mx / (sa / D);  // NaN states give NaN, not 0
        if (mx > best) best = mx, best_b = b, best_arg = arg;  // b grows, so > keeps the first
    }
    __shared__ double dom[32];
    __shared__ float wmax[32];
    __shared__ int wb[32], warg[32];
    if (lane == 0) dom[warp] = dominance, wmax[warp] = best, wb[warp] = best_b, warg[warp] = best_arg;
    __syncthreads();
    if (threadIdx.x != 0) return;
    double total = 0;
    float mx = -1.f;
    int mb = 0, arg = 0;
    for (int w = 0; w < nwarps; w++) {
        total += dom[w];
        if (wmax[w] > mx || (wmax[w] == mx && wb[w] < mb)) mx = wmax[w], mb = wb[w], arg = warg[w];
    }
    out[0] = float(total / B);
    out[1] = mx;
    out[2] = float(arg);
}

// One block over rstd [B, Tn] in a fixed order: each thread sums the norms of its strided elements, then block_sum.
__global__ void __launch_bounds__(kToken0Threads)
    token0_norm_ratio_kernel(float* out, const float* rstd, int64_t N, int64_t Tn, float eps) {
    double norm0 = 0, rest = 0;
    for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
        const double v = rstd[r];
        const double norm = sqrt(fmax(0.0, 1.0 / (v * v) - double(eps)));  // ||x|| / sqrt(D)
        if (r % Tn == 0)
            norm0 += norm;
        else
            rest += norm;
    }
    norm0 = block_sum(norm0);
    rest = block_sum(rest);
    if (threadIdx.x != 0) return;
    const double B = double(N / Tn);
    out[0] = Tn > 1 && rest > 0 ? float((norm0 / B) / (rest / (B * double(Tn - 1)))) : 0.f;
}

// Exact median of |x| by a radix select on the bits of |x| (for non-negative floats, integer order is float order),
// three levels of 11, 11 and 10 bits: a histogram of the top digit finds the bucket holding the wanted rank, the
// next digit's histogram within that bucket narrows it, and so on. 2048 bins fit in shared memory, so each block
// counts privately and adds its non-zero bins to the global histogram (values of a layer's output crowd into few
// bins: global atomics per element serialized on them). Up to kMaxSlices arrays run side by side, the slice in
// blockIdx.y (hist kernel) or blockIdx.x (select kernel), each with its own histogram and state: a layer's row block
// is too small to fill the GPU, and one launch per level for every layer saves 6 dependent launches per layer.
constexpr int kLevels = 3;
constexpr int kBins = 1 << 11;
// The digit of level l is bits >> digit_shift(l), masked to digit_width(l) bits.
__host__ __device__ constexpr int digit_width(int level) { return level < 2 ? 11 : 10; }
__host__ __device__ constexpr int digit_shift(int level) { return level == 0 ? 21 : level == 1 ? 10 : 0; }

constexpr int kMaxSlices = 32;

struct SelectState {
    unsigned prefix;   // the answer's bits above the current digit, once known
    unsigned rank;     // rank still wanted inside the current bucket
    unsigned maxbits;  // bits of the largest |x|
};

template <typename T> struct Slices {
    const T* x[kMaxSlices];
};

// hist [slices, kBins], state [slices]. The pointers are __grid_constant__ because they are indexed at run time.
template <typename T>
__global__ void abs_hist_kernel(unsigned* hist, SelectState* state, const __grid_constant__ Slices<T> xs, int64_t n,
                                int level) {
    const T* x = xs.x[blockIdx.y];  // [n]
    hist += blockIdx.y * kBins;
    state += blockIdx.y;
    __shared__ unsigned local[kBins];
    __shared__ unsigned local_max;
    for (int i = threadIdx.x; i < kBins; i += blockDim.x) local[i] = 0;
    if (threadIdx.x == 0) local_max = 0;
    __syncthreads();
    const int shift = digit_shift(level), above = shift + digit_width(level);
    const unsigned mask = (1u << digit_width(level)) - 1u, prefix = state->prefix;
    unsigned mx = 0;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const unsigned bits = __float_as_uint(fabsf(to_float(x[i])));
        if (level == 0 || (bits >> above) == prefix) atomicAdd(&local[(bits >> shift) & mask], 1u);
        mx = max(mx, bits);
    }
    if (level == 0) atomicMax(&local_max, mx);
    __syncthreads();
    for (int i = threadIdx.x; i < kBins; i += blockDim.x)
        if (local[i]) atomicAdd(&hist[i], local[i]);
    if (level == 0 && threadIdx.x == 0) atomicMax(&state->maxbits, local_max);
}

// One block of 1024 threads per slice: finds the bin holding the wanted rank (rank0 at level 0, then state->rank)
// and narrows the state to it. Each thread takes kPer bins into registers and zeroes them for the next level; a
// block-wide prefix sum tells each thread how many values lie below its bins, so the one thread whose bins hold
// the rank finishes the search. out [slices, 2].
__global__ void __launch_bounds__(1024)
    select_bin_kernel(float* out, unsigned* hist, SelectState* state, unsigned rank0, int level) {
    constexpr int kPer = kBins / 1024;
    out += 2 * blockIdx.x;
    hist += blockIdx.x * kBins;
    state += blockIdx.x;
    __shared__ unsigned warp_incl[32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const unsigned rank = level == 0 ? rank0 : state->rank;
    unsigned bins[kPer], mine = 0;
    for (int i = 0; i < kPer; i++) {
        bins[i] = hist[threadIdx.x * kPer + i];
        hist[threadIdx.x * kPer + i] = 0;
        mine += bins[i];
    }
    unsigned incl = mine;  // inclusive prefix sum within the warp
    for (int o = 1; o < 32; o <<= 1) {
        const unsigned y = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += y;
    }
    if (lane == 31) warp_incl[warp] = incl;
    __syncthreads();
    if (warp == 0) {
        unsigned t = warp_incl[lane];
        for (int o = 1; o < 32; o <<= 1) {
            const unsigned y = __shfl_up_sync(0xffffffffu, t, o);
            if (lane >= o) t += y;
        }
        warp_incl[lane] = t;
    }
    __syncthreads();
    unsigned before = incl - mine + (warp > 0 ? warp_incl[warp - 1] : 0u);
    if (!(before <= rank && rank < before + mine)) return;
    int i = 0;
    while (before + bins[i] <= rank) before += bins[i++];
    state->prefix = (state->prefix << digit_width(level)) | unsigned(threadIdx.x * kPer + i);
    state->rank = rank - before;
    if (level == kLevels - 1) {
        out[0] = __uint_as_float(state->maxbits);
        out[1] = __uint_as_float(state->prefix);
    }
}

// At least 16 elements per thread and at most 256 blocks: each block adds up to 2048 bins to the global histogram.
int hist_blocks(int64_t n) { return int(std::clamp<int64_t>(ceil_div(n, int64_t(kThreads) * 16), 1, 256)); }

}  // namespace

size_t attn_mass_scratch(int64_t rows, int H, int P) {
    return size_t(H) * P * size_t(ceil_div(rows, kMassRows)) * sizeof(MassPartial);
}

template <typename T>
void attn_mass(float* out, const T* qkv, const float* lse, const int* positions, int P, const AttnSpec& s,
               Scratch scratch, cudaStream_t st) {
    SL_ASSERT(P >= 1 && P <= kMaxTrackedPositions, "{} tracked positions", P);
    const int64_t tiles = ceil_div(int64_t(s.B) * s.T, kMassRows);
    SL_ASSERT(tiles <= INT32_MAX, "attn_mass over {} x {} rows", s.B, s.T);
    TrackedPositions pos{};
    for (int k = 0; k < P; k++) pos.p[k] = positions[k];
    auto* partial = scratch.take<MassPartial>(attn_mass_scratch(int64_t(s.B) * s.T, s.H, P), "attn_mass");
    const dim3 grid(unsigned(tiles), unsigned(s.H));
    // 16-byte loads need hd % kVec == 0 and aligned rows: W is then a multiple of kVec too.
    if (vec_ok<T>(s.hd, qkv))
        CUDA_LAUNCH(attn_mass_kernel<T, kVec<T>>, grid, kMassRows, 0, st, partial, qkv, lse, P, pos, attn_params(s));
    else
        CUDA_LAUNCH(attn_mass_kernel<T, 1>, grid, kMassRows, 0, st, partial, qkv, lse, P, pos, attn_params(s));
    const int n = s.H * P, warps_per_block = 4;
    CUDA_LAUNCH(attn_mass_finish_kernel, unsigned(ceil_div(n, warps_per_block)), 32 * warps_per_block, 0, st, out,
                partial, n, int(tiles));
}

template <typename T>
void attn_map(float* out, int Q, const T* qkv, const float* lse, const AttnSpec& s, cudaStream_t st) {
    SL_ASSERT(Q >= 1 && Q <= s.T, "attention map of {} positions, T = {}", Q, s.T);
    CUDA_LAUNCH(attn_map_kernel<T>, Q, 64, 0, st, out, Q, qkv, lse, attn_params(s));
}

template <typename T> void position_std(float* out, int Tp, const T* x, int B, int Tn, int D, cudaStream_t st) {
    SL_ASSERT(Tp >= 1 && Tp <= Tn, "position_std over {} of {} positions", Tp, Tn);
    if (vec_ok<T>(D, x))
        CUDA_LAUNCH(position_std_kernel<T, kVec<T>>, Tp, kStdThreads, 0, st, out, x, B, Tn, D);
    else
        CUDA_LAUNCH(position_std_kernel<T, 1>, Tp, kStdThreads, 0, st, out, x, B, Tn, D);
}

template <typename T> void token0_stats(float* out, const T* x, int B, int Tn, int D, cudaStream_t st) {
    SL_ASSERT(B > 0 && Tn > 0 && D > 0, "token0_stats of [{}, {}, {}]", B, Tn, D);
    if (vec_ok<T>(D, x))
        CUDA_LAUNCH(token0_stats_kernel<T, kVec<T>>, 1, kToken0Threads, 0, st, out, x, B, Tn, D);
    else
        CUDA_LAUNCH(token0_stats_kernel<T, 1>, 1, kToken0Threads, 0, st, out, x, B, Tn, D);
}

void token0_norm_ratio(float* out, const float* rstd, int64_t B, int64_t Tn, float eps, cudaStream_t st) {
    SL_ASSERT(B > 0 && Tn > 0, "token0_norm_ratio of rstd [{}, {}]", B, Tn);
    CUDA_LAUNCH(token0_norm_ratio_kernel, 1, kToken0Threads, 0, st, out, rstd, B * Tn, Tn, eps);
}

size_t abs_max_median_scratch() { return kMaxSlices * (kBins * sizeof(unsigned) + sizeof(SelectState)); }

template <typename T>
void abs_max_median(float* out, const T* const* xs, int K, int64_t n, Scratch scratch, cudaStream_t st) {
    SL_ASSERT(K >= 1 && n > 0 && n <= int64_t(UINT32_MAX), "median of {} x {} values", K, n);
    auto* hist = scratch.take<unsigned>(abs_max_median_scratch(), "abs_max_median");  // [kMaxSlices, kBins]
    auto* state = reinterpret_cast<SelectState*>(hist + kMaxSlices * kBins);  // [kMaxSlices]
    for (int k0 = 0; k0 < K; k0 += kMaxSlices) {
        const int k = std::min(kMaxSlices, K - k0);
        Slices<T> slices{};
        for (int i = 0; i < k; i++) slices.x[i] = xs[k0 + i];
        // Zero histograms and states; from then on each select_bin_kernel leaves its histogram zeroed.
        CUDA_CHECK(cudaMemsetAsync(hist, 0, abs_max_median_scratch(), st));
        for (int level = 0; level < kLevels; level++) {
            CUDA_LAUNCH(abs_hist_kernel<T>, dim3(unsigned(hist_blocks(n)), unsigned(k)), kThreads, 0, st, hist, state,
                        slices, n, level);
            CUDA_LAUNCH(select_bin_kernel, unsigned(k), 1024, 0, st, out + 2 * k0, hist, state, unsigned((n - 1) / 2),
                        level);
        }
    }
}

#define SL_INSTANTIATE(T)                                                                                         \
    template void attn_mass<T>(float*, const T*, const float*, const int*, int, const AttnSpec&, Scratch,          \
                               cudaStream_t);                                                                     \
    template void attn_map<T>(float*, int, const T*, const float*, const AttnSpec&, cudaStream_t);                \
    template void position_std<T>(float*, int, const T*, int, int, int, cudaStream_t);                            \
    template void token0_stats<T>(float*, const T*, int, int, int, cudaStream_t);                                 \
    template void abs_max_median<T>(float*, const T* const*, int, int64_t, Scratch, cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)

}  // namespace sinklab::cuda
