// Head-wise RMSNorm and QK-norm: RMSNorm over hd of each head, as layouts of the grouped kernels in rmsnorm.cu.
#include "kernels/cuda/cuda_kernels.cuh"

namespace sinklab::cuda {

NormLayout headnorm_layout(int64_t N, int64_t nh, int64_t hd, bool per_head) {
    return NormLayout{N, int(nh * hd), int(nh), int(hd), int(nh), per_head};
}

// The q heads use gq, the k heads gk, the v heads are copied.
NormLayout qknorm_layout(const AttnSpec& s) {
    return NormLayout{int64_t(s.B) * s.T, s.qkv_width(), s.H + s.Hkv, s.hd, s.H, false};
}

template <typename T>
void headnorm_fwd(T* out, float* rstd, const T* x, const T* g, int64_t N, int64_t nh, int64_t hd, bool per_head,
                  float eps, cudaStream_t st) {
    norm_fwd(out, rstd, x, g, static_cast<const T*>(nullptr), headnorm_layout(N, nh, hd, per_head), eps, st);
}

template <typename T>
void headnorm_bwd(T* dx, float* dg, const T* dout, const T* x, const T* g, const float* rstd, int64_t N, int64_t nh,
                  int64_t hd, bool per_head, Scratch scratch, cudaStream_t st, float* rowdot, int64_t Tn) {
    norm_bwd(dx, dg, nullptr, dout, x, g, static_cast<const T*>(nullptr), rstd, headnorm_layout(N, nh, hd, per_head),
             false, scratch, st, rowdot, Tn);
}

template <typename T>
void qknorm_fwd(T* out, float* rstd, const T* in, const T* gq, const T* gk, const AttnSpec& s, float eps,
                cudaStream_t st) {
    norm_fwd(out, rstd, in, gq, gk, qknorm_layout(s), eps, st);
}

template <typename T>
void qknorm_bwd(T* din, float* dgq, float* dgk, const T* dout, const T* in, const T* gq, const T* gk,
                const float* rstd, const AttnSpec& s, Scratch scratch, cudaStream_t st) {
    norm_bwd(din, dgq, dgk, dout, in, gq, gk, rstd, qknorm_layout(s), false, scratch, st);
}

#define SL_INSTANTIATE(T)                                                                                          \
    template void headnorm_fwd<T>(T*, float*, const T*, const T*, int64_t, int64_t, int64_t, bool, float,          \
                                  cudaStream_t);                                                                   \
    template void headnorm_bwd<T>(T*, float*, const T*, const T*, const T*, const float*, int64_t, int64_t,        \
                                  int64_t, bool, Scratch, cudaStream_t, float*, int64_t);                           \
    template void qknorm_fwd<T>(T*, float*, const T*, const T*, const T*, const AttnSpec&, float, cudaStream_t);   \
    template void qknorm_bwd<T>(T*, float*, float*, const T*, const T*, const T*, const T*, const float*,          \
                                const AttnSpec&, Scratch, cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
