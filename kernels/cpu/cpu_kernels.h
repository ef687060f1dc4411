// CPU reference kernels: plain C++ + OpenMP, templated on T = float (training) or double (gradient
// checks). One .cpp per op family, forward and backward side by side; each is instantiated for both.
// Semantics are those of src/backend/backend.h; these take raw pointers and sizes.
#pragma once
#include <cstdint>

#include "backend/backend.h"

namespace sinklab::cpu {

// out[N,C] = wte[ids[n]]; dwte[V,C] += rows of dout by id
template <typename T> void embedding_fwd(T* out, const int32_t* ids, const T* wte, int64_t N, int64_t V, int64_t C);
template <typename T> void embedding_bwd(T* dwte, const int32_t* ids, const T* dout, int64_t N, int64_t V, int64_t C);

template <typename T> void rmsnorm_fwd(T* out, T* rstd, const T* x, const T* g, int64_t N, int64_t C, float eps);
template <typename T>
void rmsnorm_bwd(T* dx, T* dg, const T* dout, const T* x, const T* g, const T* rstd, int64_t N, int64_t C,
                 bool accumulate = false);

// out[N,O] = x[N,I] W[O,I]^T; dx = dout W (dx may be null); dW += dout^T x
template <typename T>
void matmul_fwd(T* out, const T* x, const T* W, int64_t N, int64_t I, int64_t O, const T* residual = nullptr);
template <typename T>
void matmul_bwd(T* dx, T* dW, const T* dout, const T* x, const T* W, int64_t N, int64_t I, int64_t O);

// in place on the q and k heads of qkv[B,T,W]; inverse rotates by the negative angle
template <typename T> void rope(T* qkv, const AttnSpec& s, float theta, int pos0, bool inverse);

template <typename T> void attention_fwd(T* o, T* lse, const T* qkv, const T* sink, const AttnSpec& s);
// rowdot [B, H, T]: D = dout.o of each row when the caller has it (else computed from dout and o)
template <typename T>
void attention_bwd(T* dqkv, T* dsink, const T* dout, const T* o, const T* lse, const T* qkv, const T* sink,
                   const AttnSpec& s, const T* rowdot = nullptr);

// x, out [N, nh, hd]; rstd [N, nh]; g [nh, hd] when per_head, else [hd]
template <typename T>
void headnorm_fwd(T* out, T* rstd, const T* x, const T* g, int64_t N, int64_t nh, int64_t hd, bool per_head,
                  float eps);
// rowdot [B, nh, Tn] with N = B Tn (optional): dx.x of each head
template <typename T>
void headnorm_bwd(T* dx, T* dg, const T* dout, const T* x, const T* g, const T* rstd, int64_t N, int64_t nh,
                  int64_t hd, bool per_head, T* rowdot = nullptr, int64_t Tn = 0);
template <typename T>
void qknorm_fwd(T* out, T* rstd, const T* in, const T* gq, const T* gk, const AttnSpec& s, float eps);
template <typename T>
void qknorm_bwd(T* din, T* dgq, T* dgk, const T* dout, const T* in, const T* gq, const T* gk, const T* rstd,
                const AttnSpec& s);

// x, out [N, H, hd]; logit [N, H*hd] when per_channel, else [N, H]
template <typename T>
void gate_fwd(T* out, const T* x, const T* logit, int64_t N, int64_t H, int64_t hd, bool per_channel);
template <typename T>
void gate_bwd(T* dx, T* dlogit, const T* dout, const T* x, const T* logit, int64_t N, int64_t H, int64_t hd,
              bool per_channel);

// x, out [B, T, D]; row k of each sequence amplified about the mean of its first Tm rows (0: about zero)
template <typename T>
void amplify_fwd(T* out, const T* x, int64_t B, int64_t Tn, int64_t D, int k, float lambda, int64_t Tm);
template <typename T> void amplify_bwd(T* dx, const T* dout, int64_t B, int64_t Tn, int64_t D, int k, float lambda);

// ab [N, 2F] = [a | b]; out [N, F] = silu(a) * b. When rest_max is given, also *rest_max = max |out| over the rows n
// with n % Tn != 0 (out as [B, Tn, F]: the tokens after the first).
template <typename T>
void swiglu_fwd(T* out, const T* ab, int64_t N, int64_t F, float* rest_max = nullptr, int64_t Tn = 1);
template <typename T> void swiglu_bwd(T* dab, const T* dout, const T* ab, int64_t N, int64_t F);

template <typename T> void add(T* out, const T* a, const T* b, int64_t n);
template <typename T> void scale(T* x, float s, int64_t n);

template <typename T>
void cross_entropy(T* loss, T* dlogits, const T* logits, const int32_t* targets, int64_t N, int64_t V,
                   float scale);

// CPU weights are already wide: p is updated in place, there is no master copy
template <typename T> void adamw(T* p, T* m, T* v, const T* g, int64_t n, const AdamWStep& h);
template <typename T> double sum_squares(const T* g, int64_t n);

// Sink metrics (metrics.cpp): out[H, P]; out[Q, Q] of sequence 0; out[Tp] of x [B, T, D]; out[3] of x [B, T, D];
// out[1] of rstd [B, T]; out[2].
template <typename T>
void attn_mass(float* out, const T* qkv, const T* lse, const int* positions, int P, const AttnSpec& s);
template <typename T> void attn_map(float* out, int64_t Q, const T* qkv, const T* lse, const AttnSpec& s);
template <typename T> void position_std(float* out, int64_t Tp, const T* x, int64_t B, int64_t Tn, int64_t D);
template <typename T> void token0_stats(float* out, const T* x, int64_t B, int64_t Tn, int64_t D);
template <typename T> void token0_norm_ratio(float* out, const T* rstd, int64_t B, int64_t Tn, float eps);
template <typename T> void abs_max_median(float* out, const T* x, int64_t n);

}  // namespace sinklab::cpu
