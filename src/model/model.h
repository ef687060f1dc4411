// The Llama-style decoder, written once against the Backend: pre-norm RMSNorm, fused QKV with RoPE,
// causal attention (variants and interventions through AttnSpec and optional HeadNorm / gate), W_O,
// SwiGLU MLP, tied embeddings, no biases.
#pragma once
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "config/config.h"
#include "core/arena.h"
#include "model/params.h"

namespace sinklab {

// One block's tensors, as views into a flat buffer (weights or gradients). Optional ones are empty. W = (H + 2 Hkv) hd.
struct BlockTensors {
    Tensor attn_norm;         // [C]
    Tensor wqkv;              // [W, C]  q | k | v rows
    Tensor q_norm, k_norm;    // [hd], [hd]  (qk_norm only)
    Tensor sink;              // [H]  sink logits (sink_logit only)
    Tensor headnorm;          // [H, hd] or [hd] when shared (headnorm only)
    Tensor wgate;             // [H*hd, C] or [H, C] per head (gated only)
    Tensor wo;                // [C, H*hd]
    Tensor ffn_norm;          // [C]
    Tensor w13;               // [2F, C]  w1 | w3 rows
    Tensor w2;                // [C, F]
};

// Everything the forward pass keeps for the backward pass and for the sink metrics.
struct BlockActs {
    Tensor xn1, rstd1;         // [B,T,C], [N]   pre-attention RMSNorm
    Tensor qkv_raw, qk_rstd;   // [B,T,W], [N,H+Hkv]  before QK-norm (qk_norm only)
    Tensor qkv;                // [B,T,W]  after QK-norm and RoPE: what attention reads
    Tensor att, lse;           // [B,T,H,hd], [B,H,T]
    Tensor hn, hn_rstd;        // [B,T,H,hd], [N,H]  HeadNorm (headnorm only)
    Tensor glogit, gated;      // [N,H*hd|H], [B,T,H,hd]  gate (gated only)
    Tensor amp;                // [B,T,H,hd]  amplified W_O input (layers the intervention names)
    Tensor wo_in;              // alias of the last of att/hn/gated/amp: the W_O input
    Tensor x_mid;              // [B,T,C]  residual after attention
    Tensor xn2, rstd2;         // [B,T,C], [N]
    Tensor ab;                 // [B,T,2F]  fused w1|w3 projection
    Tensor act;                // [B,T,F]   SwiGLU output (the FFN intermediate)
};

struct Activations {
    std::vector<Tensor> x;  // L+1 of [B,T,C]: x[l] is block l's input, x[L] the last block's output
    std::vector<BlockActs> blocks;
    Tensor xnf, rstdf;      // [B,T,C], [N]  final RMSNorm
    Tensor logits;          // [B,T,V]  (dlogits in place after the loss)
    Tensor losses;          // [N] (wide)
    Tensor inputs, targets; // [B,T] i32
    Tensor ffn_rest_max;    // [L] f32  max |act| over tokens t > 0, per block: the SwiGLU forward's by-product
};

// Backward scratch, reused by every block.
struct BackwardScratch {
    Tensor dres, dxn;          // [N, C], [N, C]  the residual stream's gradient, a norm's input gradient
    Tensor dtmp;               // [N, C]  the gate projection's input gradient, added to dxn (gated only)
    Tensor dqkv, dqkv_raw;     // [B,T,W], [B,T,W]  after and before QK-norm (the second qk_norm only)
    Tensor datt, datt2;        // [B,T,H,hd] x 2  the W_O input's gradient back through gate/HeadNorm/amplify
    Tensor dglogit;            // [N, H*hd|H]  (gated only)
    Tensor dab, dact;          // [N, 2F], [N, F]  FFN
    Tensor rowdot;  // [B,H,T] (wide)  dL/d(att).att of each row: HeadNorm's backward hands it to attention's
};

// Bytes a training run's model needs on its backend, known before anything is allocated (sinklab info prints it):
// weights, master copy, gradients, AdamW m and v (the largest shard of them when train.shard_optimizer spreads them
// over `ranks`), the activation arena and, in bf16, the CUDA attention backward's scratch (attention_scratch_bytes);
// not the backends' other op scratch (a few MiB) or the metric buffers.
struct ModelFootprint {
    int64_t n_params = 0;
    size_t weights = 0, master = 0, grads = 0, moments = 0, activations = 0, attention_scratch = 0;
    size_t total() const { return weights + master + grads + moments + activations + attention_scratch; }
};
ModelFootprint model_footprint(const Config& cfg, int B, int T, DType compute, int ranks = 1);
// Training FLOPs (forward + backward) per token at sequence length T: matmuls and causal attention.
double flops_per_token(const Config& cfg, const ParamTable& table, int T);
AttnSpec make_attn_spec(const Config& cfg, int B, int T);
// The N(0,1) input [T0=64, C] that the first_token_std HeadNorm init pushes through block `layer`.
std::vector<float> headnorm_init_input(uint64_t seed, int layer, int64_t C);
constexpr int kHeadNormInitTokens = 64;

class Model {
public:
    // Sizes every buffer for micro-batches of B sequences of T tokens, on `backend`.
    Model(Backend& backend, const Config& cfg, int B, int T);

    Backend& backend() { return be_; }
    const Config& config() const { return cfg_; }
    const ParamTable& table() const { return table_; }
    int B() const { return B_; }
    int T() const { return T_; }

    // Draws the weights from `seed` (the same on every backend and rank) and sets HeadNorm gains.
    void init(uint64_t seed);

    // Runs the forward pass on one micro-batch ([B,T] host ids; targets < 0 are ignored) and returns the
    // mean loss over its counted tokens. When grad_scale != 0 the logits are replaced by
    // grad_scale * dloss/dlogits for backward().
    double forward(const int32_t* inputs, const int32_t* targets, float grad_scale);
    // Accumulates parameter gradients (+=) of the last forward's scaled loss.
    void backward();
    void zero_grad();

    // Flat buffers: weights in compute dtype, master weights (wide; empty when the weights are wide),
    // gradients (wide). The optimizer, the all-reduce and checkpoints use them whole.
    Tensor weights() const { return weights_; }
    Tensor master() const { return master_; }
    Tensor grads() const { return grads_; }
    // The wide copy that is the truth for the optimizer and checkpoints.
    Tensor truth() const { return master_.empty() ? weights_ : master_; }
    // Copies master weights into the compute-dtype weights (after loading or an optimizer step).
    void sync_weights();

    const Activations& acts() const { return acts_; }
    AttnSpec attn_spec() const { return spec_; }
    double flops_per_token() const { return sinklab::flops_per_token(cfg_, table_, T_); }

private:
    BlockTensors block(const Tensor& flat, int l) const;
    void block_forward(int l);
    void block_backward(int l, Tensor dres);
    void init_headnorm_gains(uint64_t seed);

    Backend& be_;
    Config cfg_;
    ParamTable table_;
    int B_, T_;
    AttnSpec spec_;
    Allocations params_;
    Tensor weights_, master_, grads_;  // [n] each: the flat parameter buffers, held by params_
    Arena arena_;
    Activations acts_;
    BackwardScratch g_;
};

}  // namespace sinklab
