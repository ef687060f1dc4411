// CUDA launchers: one .cu per op family (the names of kernels/cpu), forward and backward side by side.
// Semantics are those of src/backend/backend.h. Launchers take device pointers, sizes and a stream; they check
// what the kernels assume, launch, and check the launch. T is the element type of activations and parameters
// (float or bf16); parameter gradients are float and accumulate (+=), activation gradients are written (=).
// Launchers that need temporary memory say how much (*_scratch) and take it as `scratch`, which they check.
#pragma once
#include <cstdint>
#include <memory>

#include "backend/backend.h"
#include "kernels/cuda/attention_scratch.h"
#include "kernels/cuda/common.cuh"

namespace sinklab::cuda {

// ---- embedding.cu: out[N,C] = wte[ids[n]]; dwte[V,C] += rows of dout by id (sorted, no float atomics).
// An id outside [0, V) (which Model::forward refuses first) yields a NaN row, so that a direct call shows it too.
template <typename T> void embedding_fwd(T* out, const int32_t* ids, const T* wte, int64_t N, int64_t V, int64_t C,
                                         cudaStream_t st);
size_t embedding_bwd_scratch(int64_t N);
template <typename T>
void embedding_bwd(float* dwte, const int32_t* ids, const T* dout, int64_t N, int64_t V, int64_t C,
                   Scratch scratch, cudaStream_t st);

// ---- rmsnorm.cu: RMSNorm over groups of each row, shared by rmsnorm, headnorm and qknorm.
// x, out [N, W]: the first G groups of gs elements are normalized (rstd [N, G]), the rest is copied. Groups
// [0, G0) use gain g0, groups [G0, G) gain g1; a gain holds gs elements per group (per_group) or one shared
// vector of gs.
struct NormLayout {
    int64_t N;
    int W, G, gs, G0;
    bool per_group;
};
NormLayout rmsnorm_layout(int64_t N, int64_t C);
template <typename T> void norm_fwd(T* out, float* rstd, const T* x, const T* g0, const T* g1, const NormLayout& L,
                                    float eps, cudaStream_t st);
size_t norm_bwd_scratch(const NormLayout& L);
// dx is written, or added to with accumulate. rowdot [N / Tn, G, Tn] (optional, not with accumulate): dx.x of each
// group from dx as stored (rounded to T), the rows n taken as (n / Tn, n % Tn).
template <typename T> void norm_bwd(T* dx, float* dg0, float* dg1, const T* dout, const T* x, const T* g0,
                                    const T* g1, const float* rstd, const NormLayout& L, bool accumulate,
                                    Scratch scratch, cudaStream_t st, float* rowdot = nullptr, int64_t Tn = 0);
template <typename T> void rmsnorm_fwd(T* out, float* rstd, const T* x, const T* g, int64_t N, int64_t C, float eps,
                                       cudaStream_t st);
template <typename T> void rmsnorm_bwd(T* dx, float* dg, const T* dout, const T* x, const T* g, const float* rstd,
                                       int64_t N, int64_t C, bool accumulate, Scratch scratch, cudaStream_t st);

// ---- headnorm.cu: x [N, nh, hd], g [nh, hd] (per_head) or [hd]; qknorm on qkv [B, T, (H + 2 Hkv) hd].
NormLayout headnorm_layout(int64_t N, int64_t nh, int64_t hd, bool per_head);
NormLayout qknorm_layout(const AttnSpec& s);
template <typename T> void headnorm_fwd(T* out, float* rstd, const T* x, const T* g, int64_t N, int64_t nh, int64_t hd,
                                        bool per_head, float eps, cudaStream_t st);
// rowdot [N / Tn, nh, Tn] (optional): dx.x of each head, attention_bwd's rowdot when x is the attention output.
template <typename T> void headnorm_bwd(T* dx, float* dg, const T* dout, const T* x, const T* g, const float* rstd,
                                        int64_t N, int64_t nh, int64_t hd, bool per_head, Scratch scratch,
                                        cudaStream_t st, float* rowdot = nullptr, int64_t Tn = 0);
template <typename T> void qknorm_fwd(T* out, float* rstd, const T* in, const T* gq, const T* gk, const AttnSpec& s,
                                      float eps, cudaStream_t st);
template <typename T> void qknorm_bwd(T* din, float* dgq, float* dgk, const T* dout, const T* in, const T* gq,
                                      const T* gk, const float* rstd, const AttnSpec& s, Scratch scratch,
                                      cudaStream_t st);

// ---- matmul.cu: cuBLASLt with f32 accumulation (CUBLAS_COMPUTE_32F, never TF32).
// One workspace, allocated once; a plan (descriptors + heuristic algorithm) per shape, made on first use.
class Gemm {
public:
    Gemm();
    ~Gemm();
    Gemm(const Gemm&) = delete;
    Gemm& operator=(const Gemm&) = delete;

    // out[N,O] = x[N,I] W[O,I]^T, + residual[N,O] when not null (it may alias out)
    template <typename T> void fwd(T* out, const T* x, const T* W, const T* residual, int64_t N, int64_t I, int64_t O,
                                   cudaStream_t st);
    // dx[N,I] = dout W (skipped when dx is null); dW[O,I] += dout^T x
    template <typename T> void bwd(T* dx, float* dW, const T* dout, const T* x, const T* W, int64_t N, int64_t I,
                                   int64_t O, cudaStream_t st);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// ---- rope.cu: in place on the q and k heads of qkv [B, T, (H + 2 Hkv) hd]; angles in double.
template <typename T> void rope(T* qkv, const AttnSpec& s, float theta, int pos0, bool inverse, cudaStream_t st);

// ---- attention.cu: causal flash attention, o [B, T, H, hd], lse [B, H, T], qkv [B, T, (H + 2 Hkv) hd].
// bf16 runs tensor-core kernels; float runs plain-FMA kernels (the exact-parity mode). hd even, at most 128.
template <typename T> void attention_fwd(T* o, float* lse, const T* qkv, const T* sink, const AttnSpec& s,
                                         cudaStream_t st);
template <typename T> size_t attention_bwd_scratch(const AttnSpec& s);
// rowdot [B, H, T] (optional): D = dout.o of each row, computed from dout and o when not given.
template <typename T> void attention_bwd(T* dqkv, float* dsink, const T* dout, const T* o, const float* lse,
                                         const T* qkv, const T* sink, const AttnSpec& s, Scratch scratch,
                                         cudaStream_t st, const float* rowdot = nullptr);

#if SINKLAB_HAVE_CUDNN
// ---- attention_cudnn.cu (built only with cuDNN): the Softmax causal attention (no isolation) through cuDNN's fused
// flash attention, for attention.impl: cudnn. bf16, hd % 8 == 0 and hd <= 128; layouts and the natural-log lse as
// attention_fwd/bwd above. One cuDNN handle on the backend's stream; a plan per shape, built on first use. The
// backward is not bitwise reproducible (cuDNN accumulates dq with atomics).
class CudnnAttention {
public:
    explicit CudnnAttention(cudaStream_t st);
    ~CudnnAttention();
    CudnnAttention(const CudnnAttention&) = delete;
    CudnnAttention& operator=(const CudnnAttention&) = delete;

    size_t fwd_scratch(const AttnSpec& s);
    void fwd(bf16* o, float* lse, const bf16* qkv, const AttnSpec& s, Scratch scratch);
    size_t bwd_scratch(const AttnSpec& s);
    // dqkv [B, T, (H + 2 Hkv) hd] is written whole.
    void bwd(bf16* dqkv, const bf16* dout, const bf16* o, const float* lse, const bf16* qkv, const AttnSpec& s,
             Scratch scratch);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};
#endif

// ---- gate.cu: out[N,H,hd] = x * sigmoid(logit), logit [N, H*hd] (per_channel) or [N, H]; dlogit written.
template <typename T> void gate_fwd(T* out, const T* x, const T* logit, int64_t N, int64_t H, int64_t hd,
                                    bool per_channel, cudaStream_t st);
template <typename T> void gate_bwd(T* dx, T* dlogit, const T* dout, const T* x, const T* logit, int64_t N, int64_t H,
                                    int64_t hd, bool per_channel, cudaStream_t st);

// ---- amplify.cu: row k of each sequence of x [B, T, D] amplified about the mean of its first Tm rows (0: about
// zero); out may alias x.
template <typename T> void amplify_fwd(T* out, const T* x, int64_t B, int64_t Tn, int64_t D, int k, float lambda,
                                       int64_t Tm, cudaStream_t st);
template <typename T> void amplify_bwd(T* dx, const T* dout, int64_t B, int64_t Tn, int64_t D, int k, float lambda,
                                       cudaStream_t st);

// ---- swiglu.cu: ab [N, 2F] = [a | b], out [N, F] = silu(a) * b. rest_max (may be null): max |out| over the rows
// n with n % Tn != 0.
template <typename T>
void swiglu_fwd(T* out, const T* ab, int64_t N, int64_t F, float* rest_max, int Tn, cudaStream_t st);
template <typename T> void swiglu_bwd(T* dab, const T* dout, const T* ab, int64_t N, int64_t F, cudaStream_t st);

// ---- elementwise.cu: T in {float, bf16, double}; out may alias a or b.
template <typename T> void add(T* out, const T* a, const T* b, int64_t n, cudaStream_t st);
template <typename T> void scale(T* x, float s, int64_t n, cudaStream_t st);
template <typename D, typename S> void convert(D* dst, const S* src, int64_t n, cudaStream_t st);

// ---- cross_entropy.cu: one block per row. loss [N] = lse - logit[target]; dlogits = scale (softmax - onehot),
// may alias logits or be null. target < 0: loss 0, zero gradient; target >= V: NaN loss and gradient.
template <typename T> void cross_entropy(float* loss, T* dlogits, const T* logits, const int32_t* targets, int64_t N,
                                         int64_t V, float scale, cudaStream_t st);

// ---- adamw.cu: PyTorch's AdamW on the f32 weights w (the master copy, or the parameters themselves), then
// copy (when not null) = w rounded to P, to nearest or stochastically (h.stochastic_round, h.seed).
template <typename P> void adamw(float* w, P* copy, float* m, float* v, const float* g, int64_t n, const AdamWStep& h,
                                 cudaStream_t st);
// Sum of squares in f64: a fixed grid of per-block partials, summed in order on the host (synchronizes).
size_t sum_squares_scratch();
template <typename T>
double sum_squares(const T* g, int64_t n, double* scratch, double* host_partials, cudaStream_t st);

// ---- metrics.cu: sink-metric reductions (backend.h); f32 outputs, fixed summation order.
size_t attn_mass_scratch(int64_t rows, int H, int P);
template <typename T> void attn_mass(float* out, const T* qkv, const float* lse, const int* positions, int P,
                                     const AttnSpec& s, Scratch scratch, cudaStream_t st);
template <typename T> void attn_map(float* out, int Q, const T* qkv, const float* lse, const AttnSpec& s,
                                    cudaStream_t st);
template <typename T> void position_std(float* out, int Tp, const T* x, int B, int Tn, int D, cudaStream_t st);
template <typename T> void token0_stats(float* out, const T* x, int B, int Tn, int D, cudaStream_t st);
void token0_norm_ratio(float* out, const float* rstd, int64_t B, int64_t Tn, float eps, cudaStream_t st);
size_t abs_max_median_scratch();
// out [K, 2] for the K arrays xs[k] of n elements each.
template <typename T>
void abs_max_median(float* out, const T* const* xs, int K, int64_t n, Scratch scratch, cudaStream_t st);

}  // namespace sinklab::cuda
