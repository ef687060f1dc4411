// Rotary position embedding on the q and k heads of qkv, interleaved pairs (2i, 2i+1). One thread per
// (row, pair) computes the angle once, in double (positions up to 1e5 keep f32-exact sines), and rotates that
// pair in every q and k head, one access a pair.
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

// A pair (2i, 2i+1) as one access: 4 bytes in bf16, 8 in f32.
template <typename T> struct PairOf;
template <> struct PairOf<float> {
    using type = float2;
};
template <> struct PairOf<bf16> {
    using type = __nv_bfloat162;
};

// Heads whose loads a thread issues before it stores any of them. A store to qkv may alias the next head's load
// for all the compiler knows, so head by head each load would wait for the previous store.
constexpr int kHeadsInFlight = 4;

template <typename T>
__global__ void rope_kernel(T* qkv, int64_t N, int Tn, int W, int heads, int hd, double theta, int pos0, float sign) {
    using Pair = typename PairOf<T>::type;
    int half = hd / 2;
    int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (item >= N * half) return;
    int64_t n = item / half;
    int i = int(item % half);
    double angle = double(pos0 + n % Tn) * pow(theta, -2.0 * i / hd);
    double s, c;
    sincos(angle, &s, &c);
    float sf = sign * float(s), cf = float(c);
    Pair* pair = reinterpret_cast<Pair*>(qkv + n * W + 2 * i);  // pair i of head 0; head h's is half h pairs on
    for (int h0 = 0; h0 < heads; h0 += kHeadsInFlight) {
        Pair x[kHeadsInFlight];
#pragma unroll
        for (int u = 0; u < kHeadsInFlight; u++)
            if (h0 + u < heads) x[u] = pair[(h0 + u) * half];
#pragma unroll
        for (int u = 0; u < kHeadsInFlight; u++)
            if (h0 + u < heads) {
                float x0 = to_float(x[u].x), x1 = to_float(x[u].y);
                Pair y;
                y.x = from_float<T>(x0 * cf - x1 * sf);
                y.y = from_float<T>(x0 * sf + x1 * cf);
                pair[(h0 + u) * half] = y;
            }
    }
}

}  // namespace

template <typename T> void rope(T* qkv, const AttnSpec& s, float theta, int pos0, bool inverse, cudaStream_t st) {
    int64_t N = int64_t(s.B) * s.T, items = N * (s.hd / 2);
    if (items == 0) return;
    SL_ASSERT(reinterpret_cast<uintptr_t>(qkv) % (2 * sizeof(T)) == 0, "rope: qkv is not aligned to a pair");
    constexpr int kThreads = 256;
    CUDA_LAUNCH(rope_kernel<T>, unsigned(ceil_div(items, kThreads)), kThreads, 0, st, qkv, N, s.T, s.qkv_width(),
                s.H + s.Hkv, s.hd, double(theta), pos0, inverse ? -1.f : 1.f);
}

template void rope<float>(float*, const AttnSpec&, float, int, bool, cudaStream_t);
template void rope<bf16>(bf16*, const AttnSpec&, float, int, bool, cudaStream_t);

}  // namespace sinklab::cuda
