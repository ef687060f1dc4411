// Sink-metric reductions (the CUDA twin of kernels/cpu/metrics.cpp). Attention weights are rebuilt from the
// saved row log-sum-exp one query-key pair at a time; every sum has a fixed order, so results repeat exactly.
#include "kernels/cuda/attention.cuh"

namespace sinklab::cuda {

namespace {

constexpr int kThreads = 256;

struct TrackedPositions {
    int p[kMaxTrackedPositions];
};

__device__ __forceinline__ bool sees(const AttnParams& a, int i, int j) {
    return i == j || (i > j && !is_isolated(a, i));
}

// Weight query row i of sequence b, head h puts on key j: the attention's own formula, in double.
template <typename T>
__device__ double weight(const T* qkv, const float* lse, const AttnParams& a, int b, int h, int i, int j) {
    const int kv = h / (a.H / a.Hkv);
    const T* q = qkv + (int64_t(b) * a.T + i) * a.W + int64_t(h) * a.hd;
    const T* k = qkv + (int64_t(b) * a.T + j) * a.W + int64_t(a.H + kv) * a.hd;
    float z = 0.f;
    for (int d = 0; d < a.hd; d++) z = fmaf(to_float(q[d]), to_float(k[d]), z);
    const double zs = double(z) * a.scale;
    if (a.score == AttnScore::Sigmoid) return 1.0 / (1.0 + exp(-(zs + a.sigmoid_bias)));
    return exp(zs - double(lse[(int64_t(b) * a.H + h) * a.T + i]));
}

// One block per (head, tracked position): the mean weight over the batch rows that see the key. The parameters are
// __grid_constant__ because their arrays are indexed at run time, which would otherwise copy them to local memory.
template <typename T>
__global__ void attn_mass_kernel(float* out, const T* qkv, const float* lse, const __grid_constant__ TrackedPositions pos,
                                 int P, const __grid_constant__ AttnParams a) {
    const int h = blockIdx.x, k = blockIdx.y, p = pos.p[k], per_b = a.T - p;
    double sum = 0, count = 0;
    for (int64_t r = threadIdx.x; r < int64_t(a.B) * per_b; r += blockDim.x) {
        const int b = int(r / per_b), i = p + int(r % per_b);
        if (!sees(a, i, p)) continue;
        sum += weight(qkv, lse, a, b, h, i, p);
        count += 1;
    }
    sum = block_sum(sum);
    count = block_sum(count);
    if (threadIdx.x == 0) out[h * P + k] = float(sum / count);
}

// One block per row i of the map; threads over keys j.
template <typename T>
__global__ void attn_map_kernel(float* out, int Q, const T* qkv, const float* lse, const __grid_constant__ AttnParams a) {
    const int i = blockIdx.x;
    for (int j = threadIdx.x; j < Q; j += blockDim.x) {
        double sum = 0;
        if (sees(a, i, j))
            for (int h = 0; h < a.H; h++) sum += weight(qkv, lse, a, 0, h, i, j);
        out[int64_t(i) * Q + j] = float(sum / a.H);
    }
}

// One block per position t < Tp: the channel std of each sequence's row t, averaged over sequences.
template <typename T> __global__ void position_std_kernel(float* out, const T* x, int B, int Tn, int D) {
    const int t = blockIdx.x;
    double acc = 0;
    for (int b = 0; b < B; b++) {
        const T* row = x + (int64_t(b) * Tn + t) * D;
        double s1 = 0, s2 = 0;
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
            const double v = to_double(row[d]);
            s1 += v;
            s2 += v * v;
        }
        s1 = block_sum(s1);
        s2 = block_sum(s2);
        const double mean = s1 / D;
        acc += sqrt(fmax(0.0, s2 / D - mean * mean));
    }
    if (threadIdx.x == 0) out[t] = float(acc / B);
}

// Per-row statistics of x [N, D]: sum of squares, sum of |x|, max |x| and its first channel.
struct RowStats {
    double* sq;
    double* sum_abs;
    float* max_abs;
    int* arg;
};

template <typename T> __global__ void row_stats_kernel(RowStats st, const T* x, int D) {
    const int64_t r = blockIdx.x;
    const T* row = x + r * D;
    double sq = 0, sa = 0;
    float mx = -1.f;
    int arg = 0;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        const float a = fabsf(to_float(row[d]));
        sq += double(a) * a;
        sa += a;
        if (a > mx) mx = a, arg = d;  // each thread visits its channels in increasing order
    }
    sq = block_sum(sq);
    sa = block_sum(sa);
    // Largest |x|, ties to the smallest channel, so that the result matches a sequential scan.
    __shared__ float smx[kThreads];
    __shared__ int sarg[kThreads];
    smx[threadIdx.x] = mx;
    sarg[threadIdx.x] = arg;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            const float o = smx[threadIdx.x + s];
            const int oa = sarg[threadIdx.x + s];
            if (o > smx[threadIdx.x] || (o == smx[threadIdx.x] && oa < sarg[threadIdx.x]))
                smx[threadIdx.x] = o, sarg[threadIdx.x] = oa;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        st.sq[r] = sq;
        st.sum_abs[r] = sa;
        st.max_abs[r] = smx[0];
        st.arg[r] = sarg[0];
    }
}

__global__ void token0_reduce_kernel(float* out, RowStats st, int B, int Tn, int D) {
    double rest_norm = 0;
    float rest_max = 0.f;
    for (int64_t r = threadIdx.x; r < int64_t(B) * (Tn - 1); r += blockDim.x) {
        const int64_t row = (r / (Tn - 1)) * Tn + 1 + r % (Tn - 1);
        rest_norm += sqrt(st.sq[row]);
        rest_max = fmaxf(rest_max, st.max_abs[row]);
    }
    rest_norm = block_sum(rest_norm);
    __shared__ float smax[kThreads];
    smax[threadIdx.x] = rest_max;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) smax[threadIdx.x] = fmaxf(smax[threadIdx.x], smax[threadIdx.x + s]);
        __syncthreads();
    }
    if (threadIdx.x != 0) return;
    double dominance = 0, norm0 = 0;
    float max0 = -1.f;
    int top = 0;
    for (int b = 0; b < B; b++) {
        const int64_t row = int64_t(b) * Tn;
        dominance += st.sum_abs[row] > 0 ? st.max_abs[row] / (st.sum_abs[row] / D) : 0.0;
        norm0 += sqrt(st.sq[row]);
        if (st.max_abs[row] > max0) max0 = st.max_abs[row], top = st.arg[row];
    }
    out[0] = float(dominance / B);
    out[1] = Tn > 1 && rest_norm > 0 ? float((norm0 / B) / (rest_norm / (double(B) * (Tn - 1)))) : 0.f;
    out[2] = max0;
    out[3] = float(top);
    out[4] = smax[0];
}

// Exact median of |x| by a two-level radix select on the bits of |x| (for non-negative floats, integer order
// is float order): a histogram of the high 16 bits finds the bucket holding the wanted rank, a histogram of the
// low 16 bits within it finds the value.
constexpr int kBins = 1 << 16;

struct SelectState {
    unsigned prefix;   // high 16 bits of the answer, once known
    unsigned rank;     // rank still wanted inside the current bucket
    unsigned maxbits;  // bits of the largest |x|
};

__global__ void select_start_kernel(SelectState* state, unsigned rank) { *state = SelectState{0u, rank, 0u}; }

template <typename T>
__global__ void abs_hist_kernel(unsigned* hist, SelectState* state, const T* x, int64_t n, bool low_level) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const unsigned bits = __float_as_uint(fabsf(to_float(x[i])));
        if (!low_level) {
            atomicAdd(&hist[bits >> 16], 1u);
            atomicMax(&state->maxbits, bits);
        } else if ((bits >> 16) == state->prefix) {
            atomicAdd(&hist[bits & 0xffffu], 1u);
        }
    }
}

// One block of 1024 threads: finds the bin holding rank state->rank and narrows the state to it.
__global__ void select_bin_kernel(float* out, const unsigned* hist, SelectState* state, bool low_level) {
    constexpr int kPer = kBins / 1024;
    __shared__ unsigned part[1024];
    unsigned s = 0;
    for (int i = 0; i < kPer; i++) s += hist[threadIdx.x * kPer + i];
    part[threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned before = 0, rank = state->rank;
        int owner = 0;
        while (before + part[owner] <= rank) before += part[owner++];
        int bin = owner * kPer;
        while (before + hist[bin] <= rank) before += hist[bin++];
        if (!low_level) {
            state->prefix = unsigned(bin);
            state->rank = rank - before;
        } else {
            out[0] = __uint_as_float(state->maxbits);
            out[1] = __uint_as_float((state->prefix << 16) | unsigned(bin));
        }
    }
}

int grid_for(int64_t n) { return int(std::min<int64_t>(ceil_div(n, kThreads), 4096)); }

}  // namespace

template <typename T>
void attn_mass(float* out, const T* qkv, const float* lse, const int* positions, int P, const AttnSpec& s,
               cudaStream_t st) {
    SL_ASSERT(P >= 1 && P <= kMaxTrackedPositions, "{} tracked positions", P);
    TrackedPositions pos{};
    for (int k = 0; k < P; k++) pos.p[k] = positions[k];
    attn_mass_kernel<<<dim3(s.H, P), kThreads, 0, st>>>(out, qkv, lse, pos, P, attn_params(s));
    CUDA_CHECK_LAUNCH();
}

template <typename T> void attn_map(float* out, int Q, const T* qkv, const float* lse, const AttnSpec& s, cudaStream_t st) {
    SL_ASSERT(Q >= 1 && Q <= s.T, "attention map of {} positions, T = {}", Q, s.T);
    attn_map_kernel<<<Q, 64, 0, st>>>(out, Q, qkv, lse, attn_params(s));
    CUDA_CHECK_LAUNCH();
}

template <typename T> void position_std(float* out, int Tp, const T* x, int B, int Tn, int D, cudaStream_t st) {
    SL_ASSERT(Tp >= 1 && Tp <= Tn, "position_std over {} of {} positions", Tp, Tn);
    position_std_kernel<<<Tp, kThreads, 0, st>>>(out, x, B, Tn, D);
    CUDA_CHECK_LAUNCH();
}

size_t token0_stats_scratch(int64_t N) { return size_t(N) * (2 * sizeof(double) + sizeof(float) + sizeof(int)); }

template <typename T>
void token0_stats(float* out, const T* x, int64_t B, int64_t Tn, int64_t D, void* scratch, cudaStream_t st) {
    const int64_t N = B * Tn;
    SL_ASSERT(N > 0 && D > 0 && N <= INT32_MAX, "token0_stats of [{}, {}, {}]", B, Tn, D);
    RowStats rs;
    rs.sq = static_cast<double*>(scratch);
    rs.sum_abs = rs.sq + N;
    rs.max_abs = reinterpret_cast<float*>(rs.sum_abs + N);
    rs.arg = reinterpret_cast<int*>(rs.max_abs + N);
    row_stats_kernel<<<unsigned(N), kThreads, 0, st>>>(rs, x, int(D));
    CUDA_CHECK_LAUNCH();
    token0_reduce_kernel<<<1, kThreads, 0, st>>>(out, rs, int(B), int(Tn), int(D));
    CUDA_CHECK_LAUNCH();
}

size_t abs_max_median_scratch() { return kBins * sizeof(unsigned) + sizeof(SelectState); }

template <typename T> void abs_max_median(float* out, const T* x, int64_t n, void* scratch, cudaStream_t st) {
    SL_ASSERT(n > 0 && n <= int64_t(UINT32_MAX), "median of {} values", n);
    auto* hist = static_cast<unsigned*>(scratch);
    auto* state = reinterpret_cast<SelectState*>(hist + kBins);
    select_start_kernel<<<1, 1, 0, st>>>(state, unsigned((n - 1) / 2));
    CUDA_CHECK_LAUNCH();
    for (bool low : {false, true}) {
        CUDA_CHECK(cudaMemsetAsync(hist, 0, kBins * sizeof(unsigned), st));
        abs_hist_kernel<<<grid_for(n), kThreads, 0, st>>>(hist, state, x, n, low);
        CUDA_CHECK_LAUNCH();
        select_bin_kernel<<<1, 1024, 0, st>>>(out, hist, state, low);
        CUDA_CHECK_LAUNCH();
    }
}

#define SL_INSTANTIATE(T)                                                                                         \
    template void attn_mass<T>(float*, const T*, const float*, const int*, int, const AttnSpec&, cudaStream_t);   \
    template void attn_map<T>(float*, int, const T*, const float*, const AttnSpec&, cudaStream_t);                \
    template void position_std<T>(float*, int, const T*, int, int, int, cudaStream_t);                            \
    template void token0_stats<T>(float*, const T*, int64_t, int64_t, int64_t, void*, cudaStream_t);             \
    template void abs_max_median<T>(float*, const T*, int64_t, void*, cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)

}  // namespace sinklab::cuda
