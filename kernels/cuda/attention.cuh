// Internals of the attention kernels shared by attention.cu (bf16, tensor cores) and attention_f32.cu (f32, FMA).
//
// Semantics (backend.h): for query row t of head h (kv head h / (H / Hkv)), the visible keys are j <= t, or
// only j = t when t is isolated; z_j = scale q_t.k_j.
//   Softmax:   p_j = exp(z_j - lse), lse = log sum_j exp(z_j)
//   SinkLogit: lse = log(exp(s_h) + sum_j exp(z_j)) (OffByOne: s_h = 0); p_j = exp(z_j - lse)
//   Sigmoid:   p_j = sigmoid(z_j + bias), lse = 0
// o_t = sum_j p_j v_j. Backward, with dp_j = dout_t.v_j and D_t = dout_t.o_t:
//   softmax family: dz_j = p_j (dp_j - D_t);  dsink_h += -sum_t exp(s_h - lse_t) D_t
//   sigmoid:        dz_j = dp_j p_j (1 - p_j)
//   dq_t = scale sum_j dz_j k_j, dk_j = scale sum_t dz_j q_t, dv_j = sum_t p_j dout_t.
#pragma once
#include "kernels/cuda/cuda_kernels.cuh"

namespace sinklab::cuda {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// AttnSpec as a plain kernel argument.
struct AttnParams {
    int B, T, H, Hkv, hd, W;  // W = (H + 2 Hkv) hd, the row stride of qkv
    float scale;
    AttnScore score;
    float sigmoid_bias;
    int n_isolate;
    int isolate[AttnSpec::kMaxIsolate];
};

inline AttnParams attn_params(const AttnSpec& s) {
    AttnParams p{s.B, s.T, s.H, s.Hkv, s.hd, s.qkv_width(), s.scale, s.score, s.sigmoid_bias, s.n_isolate, {}};
    for (int i = 0; i < s.n_isolate; i++) p.isolate[i] = s.isolate[i];
    return p;
}

__device__ __forceinline__ bool is_isolated(const AttnParams& p, int t) {
    for (int i = 0; i < p.n_isolate; i++)
        if (p.isolate[i] == t) return true;
    return false;
}

// Whether query t (isolated or not) sees key j.
__device__ __forceinline__ bool visible(const AttnParams& p, int t, bool t_isolated, int j) {
    return j < p.T && (t_isolated ? j == t : j <= t);
}

// The f32 kernels of attention_f32.cu. D [B, H, T] holds dout.o per row (softmax family only).
void attention_fwd_f32(float* o, float* lse, const float* qkv, const float* sink, const AttnParams& p,
                       cudaStream_t st);
void attention_bwd_f32(float* dqkv, const float* dout, const float* lse, const float* D, const float* qkv,
                       const AttnParams& p, cudaStream_t st);

}  // namespace sinklab::cuda
