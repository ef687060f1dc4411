// Residual add, in-place scale and dtype conversion, for T in {float, bf16, double}. Arithmetic is done in
// double: exact for the products and (nearly always) sums of two f32/bf16 values, so each result is rounded
// once, and these memory-bound kernels lose nothing by it.
#include "kernels/cuda/cuda_kernels.cuh"
#include "kernels/cuda/launch.cuh"

namespace sinklab::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per VW consecutive elements; the last thread may have fewer.
template <typename T, int VW> __global__ void add_kernel(T* out, const T* a, const T* b, int64_t n) {
    int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * VW;
    if (i >= n) return;
    if (VW > 1 && i + VW <= n) {
        Pack<T> pa = load_pack(a + i), pb = load_pack(b + i), po;
        for (int e = 0; e < VW; e++) po.v[e] = from_double<T>(to_double(pa.v[e]) + to_double(pb.v[e]));
        store_pack(out + i, po);
    } else {
        for (int64_t j = i; j < n && j < i + VW; j++) out[j] = from_double<T>(to_double(a[j]) + to_double(b[j]));
    }
}

template <typename T> __global__ void scale_kernel(T* x, double s, int64_t n) {
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = from_double<T>(to_double(x[i]) * s);
}

template <typename D, typename S> __global__ void convert_kernel(D* dst, const S* src, int64_t n) {
    int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = from_double<D>(to_double(src[i]));
}

}  // namespace

template <typename T> void add(T* out, const T* a, const T* b, int64_t n, cudaStream_t st) {
    SL_ASSERT(n >= 0, "add of {} elements", n);
    if (n == 0) return;
    constexpr int VW = kVec<T>;
    if (vec_ok<T>(VW, out, a, b))  // only the bases need alignment: the kernel takes the tail element-wise
        CUDA_LAUNCH(add_kernel<T, VW>, unsigned(ceil_div(ceil_div(n, VW), kThreads)), kThreads, 0, st, out, a, b, n);
    else
        CUDA_LAUNCH(add_kernel<T, 1>, unsigned(ceil_div(n, kThreads)), kThreads, 0, st, out, a, b, n);
}

template <typename T> void scale(T* x, float s, int64_t n, cudaStream_t st) {
    SL_ASSERT(n >= 0, "scale of {} elements", n);
    if (n == 0) return;
    CUDA_LAUNCH(scale_kernel<T>, unsigned(ceil_div(n, kThreads)), kThreads, 0, st, x, double(s), n);
}

template <typename D, typename S> void convert(D* dst, const S* src, int64_t n, cudaStream_t st) {
    SL_ASSERT(n >= 0, "convert of {} elements", n);
    if (n == 0) return;
    CUDA_LAUNCH(convert_kernel<D, S>, unsigned(ceil_div(n, kThreads)), kThreads, 0, st, dst, src, n);
}

#define SL_INSTANTIATE(T)                                                       \
    template void add<T>(T*, const T*, const T*, int64_t, cudaStream_t);        \
    template void scale<T>(T*, float, int64_t, cudaStream_t);                   \
    template void convert<T, float>(T*, const float*, int64_t, cudaStream_t);   \
    template void convert<T, bf16>(T*, const bf16*, int64_t, cudaStream_t);     \
    template void convert<T, double>(T*, const double*, int64_t, cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
