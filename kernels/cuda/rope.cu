// Rotary position embedding on the q and k heads of qkv, interleaved pairs (2i, 2i+1). One thread per
// (row, pair) computes the angle once, in double (positions up to 1e5 keep f32-exact sines), and rotates that
// pair in every q and k head.
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

template <typename T>
__global__ void rope_kernel(T* qkv, int64_t N, int Tn, int W, int heads, int hd, double theta, int pos0, float sign) {
    int half = hd / 2;
    int64_t item = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (item >= N * half) return;
    int64_t n = item / half;
    int i = int(item % half);
    double angle = double(pos0 + n % Tn) * pow(theta, -2.0 * i / hd);
    double s, c;
    sincos(angle, &s, &c);
    float sf = sign * float(s), cf = float(c);
    T* row = qkv + n * W + 2 * i;  // pair i of head 0
    for (int h = 0; h < heads; h++) {
        float x0 = to_float(row[h * hd]), x1 = to_float(row[h * hd + 1]);
        row[h * hd] = from_float<T>(x0 * cf - x1 * sf);
        row[h * hd + 1] = from_float<T>(x0 * sf + x1 * cf);
    }
}

}  // namespace

template <typename T> void rope(T* qkv, const AttnSpec& s, float theta, int pos0, bool inverse, cudaStream_t st) {
    int64_t N = int64_t(s.B) * s.T, items = N * (s.hd / 2);
    if (items == 0) return;
    constexpr int kThreads = 256;
    CUDA_LAUNCH(rope_kernel<T>, unsigned(ceil_div(items, kThreads)), kThreads, 0, st, qkv, N, s.T, s.qkv_width(),
                s.H + s.Hkv, s.hd, double(theta), pos0, inverse ? -1.f : 1.f);
}

template void rope<float>(float*, const AttnSpec&, float, int, bool, cudaStream_t);
template void rope<bf16>(bf16*, const AttnSpec&, float, int, bool, cudaStream_t);

}  // namespace sinklab::cuda
