// The Backend: every op the model needs, with one semantics for CPU and CUDA.
//
// The model calls the public methods below. Each one checks shapes and dtypes once, here, for every
// backend, times itself when profiling is on, and forwards to the backend's protected do_* method.
// Conventions:
//   - Tensors live in backend memory and are contiguous in the layout their comment gives; N = B*T rows.
//   - Activations and parameters are in compute_dtype() (f32 on CPU; bf16 or f32 on CUDA; f64 for the CPU
//     backend's gradient checks). Parameter gradients, master weights and AdamW moments are in
//     wide_dtype(compute_dtype()), and so are saved statistics (rstd, lse) and per-token losses: f32 for
//     bf16/f32 compute, f64 in the CPU backend's gradient checks. Metric outputs are f32.
//   - Activation gradients are written (=); parameter gradients accumulate (+=).
//   - qkv is one fused buffer [B, T, (H + 2*Hkv) * hd]: the H query heads, then Hkv key heads, then Hkv
//     value heads; query head h reads kv head h / (H / Hkv).
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"

namespace sinklab {

// How a query row turns its scores z = scale * q.k into weights on the keys it may see.
enum class AttnScore : uint8_t {
    Softmax,    // p = exp(z - lse)
    SinkLogit,  // softmax with a learnable per-head logit s_h in the denominator only
    OffByOne,   // SinkLogit with s_h fixed at 0
    Sigmoid,    // p = sigmoid(z + bias), no normalization; lse is written as 0
};

struct AttnSpec {
    static constexpr int kMaxIsolate = 16;
    static constexpr int kMaxHeadDim = 128;  // of every attention kernel, CPU and CUDA
    int B = 0, T = 0, H = 0, Hkv = 0, hd = 0;
    float scale = 0.f;  // usually 1/sqrt(hd)
    AttnScore score = AttnScore::Softmax;
    float sigmoid_bias = 0.f;
    // Isolation mask (intervention): these query rows see only their own key; other rows stay causal.
    int n_isolate = 0;
    std::array<int, kMaxIsolate> isolate{};
    // attention.impl: cudnn. The CUDA backend then runs cuDNN's fused flash attention (Softmax, no isolation, bf16
    // only), so that our kernels are measured against it in the same run; the CPU backend computes the same math
    // and ignores it.
    bool cudnn = false;
    // attention.impl: sinklab_wgmma. The CUDA backend runs our kernels on Hopper's warpgroup MMA instead of mma.sync
    // (sm_90 builds and devices, bf16, head dim 64 after padding); the CPU backend ignores it.
    bool wgmma = false;
    // attention.ds_scratch_mib, in bytes: the most scratch in which the CUDA backend's bf16 backward keeps the score
    // gradients dS for its dQ pass (kernels/cuda/attention_scratch.h); 0 = the dQ pass recomputes them. The default is
    // the config's; the CPU backend ignores it.
    size_t ds_budget = size_t(1) << 30;

    int qkv_width() const { return (H + 2 * Hkv) * hd; }
    bool isolated(int t) const {
        for (int i = 0; i < n_isolate; i++)
            if (isolate[i] == t) return true;
        return false;
    }
};

// Scratch bytes the CUDA backend's bf16 attention backward takes, for memory estimates made before any backend
// exists: ours, the row sums D and the dS it keeps (head dims up to 64: up to s.ds_budget); cuDNN's, its row sums and
// f32 dQ accumulator (not its plan's workspace, which only cuDNN knows). 0 in other dtypes, where D is all (a few
// MiB) and the CPU backend takes none.
size_t attention_scratch_bytes(const AttnSpec& s, DType compute);

// The most key positions attn_mass tracks at once.
constexpr int kMaxTrackedPositions = 32;
// The most sequences in a micro-batch: the CUDA kernels put them in a grid dimension, which takes at most 65535.
constexpr int kMaxMicroBatch = 65535;
// The most tokens in a sequence: the CUDA attention kernels put its tiles of 32 (times a power of two) in a grid's y,
// which takes at most 65535.
constexpr int kMaxSeqLen = 65535 * 32;
// The most channels a norm normalizes in one row (d_model; (n_head + n_kv_head) x head_dim for QK-norm): the CUDA
// norm backward sums a row's gain gradients in 96 KiB of shared memory.
constexpr int kMaxNormChannels = 24576;

struct AdamWStep {
    float lr = 0.f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.f;
    float grad_scale = 1.f;  // multiplies every gradient first (clipping)
    int64_t t = 1;           // 1-based step count, for bias correction
    // How the CUDA backend rounds updated f32 master weights to bf16: to nearest, or stochastically from a
    // hash of (seed, element index). The CPU backend keeps no narrow copy and ignores both.
    bool stochastic_round = false;
    uint64_t seed = 0;
};

// Op families, for the profile `sinklab bench` prints. Attention forward and backward, and the three kinds of sink
// metric (attention mass and map, per-row statistics, the median), are apart so that a profile says which to make
// cheaper.
enum class OpFamily : uint8_t {
    Embedding, RMSNorm, Matmul, Rope, AttentionFwd, AttentionBwd, HeadNorm, Gate, SwiGLU, Residual, CrossEntropy,
    Optimizer, MetricMass, MetricStats, MetricMedian, Intervention, Memory, kCount
};
const char* op_family_name(OpFamily f);

class Backend {
public:
    virtual ~Backend() = default;

    virtual std::string name() const = 0;         // "cpu", "cuda"
    virtual std::string device_name() const = 0;  // what it runs on, for logs
    // Dense peak FLOP/s of the device in the compute dtype, for MFU; 0 where no meaningful peak exists.
    virtual double peak_flops() const { return 0.0; }
    // True when backend memory is host memory (the CPU backend): communicators, checkpoints and checksum() then use
    // the pointers directly instead of staging through read/write.
    virtual bool host_memory() const { return false; }
    // Empty when this backend runs attention.impl `impl` as asked; else a line for the run's log saying what it runs
    // instead (the same attention, by another implementation).
    virtual std::string attention_impl_note(const std::string& impl) const { return ""; }
    DType compute_dtype() const { return compute_; }
    DType wide() const { return wide_dtype(compute_); }

    // ---- memory -------------------------------------------------------------------------------
    void* alloc(size_t bytes);  // zero-filled
    void release(void* p);
    // Bytes held through alloc now, and the most held at once since the last reset_peak_memory(): the peak is what
    // `sinklab bench` reports next to `sinklab info`'s estimate (library workspaces and the CUDA context are not
    // counted).
    size_t memory_in_use() const { return in_use_; }
    size_t peak_memory() const { return peak_; }
    void reset_peak_memory() { peak_ = in_use_; }
    virtual void synchronize() = 0;
    // Host <-> backend copies that convert between f32/f64/bf16 (i32 only to i32).
    void write(Tensor dst, const void* host, DType host_dtype);
    void read(void* host, DType host_dtype, Tensor src);
    void zero(Tensor t);
    void convert(Tensor dst, Tensor src);  // same numel, any float dtypes
    void scale(Tensor x, float s);         // x *= s
    uint64_t checksum(Tensor t);           // checksum64 (core/checksum.h) of t's bytes as stored

    // ---- ops ----------------------------------------------------------------------------------
    // out[N,C] = wte[ids[N]]; ids outside [0, V) are the caller's error (Model::forward checks them): NaN rows on
    // CUDA, an internal error on the CPU.
    void embedding_fwd(Tensor out, Tensor ids, Tensor wte);
    void embedding_bwd(Tensor dwte, Tensor ids, Tensor dout);  // dwte[V,C] += scatter of dout[N,C]

    // out[N,C] = x * rstd * g, rstd[N] = 1/sqrt(mean(x^2) + eps). Backward: dx is written, or with accumulate
    // added to (dx +=): the residual stream's gradient takes the norm's branch without a separate add.
    void rmsnorm_fwd(Tensor out, Tensor rstd, Tensor x, Tensor g, float eps);
    void rmsnorm_bwd(Tensor dx, Tensor dg, Tensor dout, Tensor x, Tensor g, Tensor rstd, bool accumulate = false);

    // out[N,O] = x[N,I] W[O,I]^T, plus residual[N,O] when given (it may alias out): the residual add done by the
    // GEMM, which reads the residual once instead of a separate add reading both operands and writing again.
    // Backward: dx = dout W (skipped when dx is empty), dW += dout^T x.
    void matmul_fwd(Tensor out, Tensor x, Tensor W, Tensor residual = {});
    void matmul_bwd(Tensor dx, Tensor dW, Tensor dout, Tensor x, Tensor W);

    // Rotates the q and k heads of qkv[B,T,W] in place: pairs (2i, 2i+1) of head_dim by the angle
    // (pos0 + t) * theta^(-2i/hd). Backward rotates the gradient back.
    void rope_fwd(Tensor qkv, const AttnSpec& s, float theta, int pos0);
    void rope_bwd(Tensor dqkv, const AttnSpec& s, float theta, int pos0);

    // o[B,T,H,hd], lse[B,H,T] (wide); sink[H] is the per-head logit for SinkLogit (empty otherwise).
    void attention_fwd(Tensor o, Tensor lse, Tensor qkv, Tensor sink, const AttnSpec& s);
    // dqkv[B,T,W] is written; dsink[H] += (SinkLogit only). rowdot[B,H,T] (wide), when given, is the softmax
    // backward's D = dout.o of every row, which the caller already has (HeadNorm's backward emits it): the kernels
    // read it instead of computing it from dout and o. cuDNN's fused backward computes its own.
    void attention_bwd(Tensor dqkv, Tensor dsink, Tensor dout, Tensor o, Tensor lse, Tensor qkv,
                       Tensor sink, const AttnSpec& s, Tensor rowdot = {});

    // Head-wise RMSNorm over hd of each head: x, out [N, nh, hd]; rstd [N, nh]; g [nh, hd] or [hd].
    void headnorm_fwd(Tensor out, Tensor rstd, Tensor x, Tensor g, float eps);
    // With rowdot[B, nh, T] (wide, N = B T) the backward also writes dx.x of each head, of dx as stored (in the
    // compute dtype): attention_bwd's rowdot when x is the attention output, without reading dx and x again.
    void headnorm_bwd(Tensor dx, Tensor dg, Tensor dout, Tensor x, Tensor g, Tensor rstd, Tensor rowdot = {});
    // QK-norm: RMSNorm over hd of every q head (gain gq[hd]) and k head (gain gk[hd]) of qkv[B,T,W];
    // v heads are copied. rstd [N, H + Hkv].
    void qknorm_fwd(Tensor out, Tensor rstd, Tensor in, Tensor gq, Tensor gk, const AttnSpec& s, float eps);
    void qknorm_bwd(Tensor din, Tensor dgq, Tensor dgk, Tensor dout, Tensor in, Tensor gq, Tensor gk,
                    Tensor rstd, const AttnSpec& s);

    // Gated attention: out[N,H,hd] = x * sigmoid(logit); logit [N, H*hd] (per channel) or [N, H] (per head).
    void gate_fwd(Tensor out, Tensor x, Tensor logit);
    void gate_bwd(Tensor dx, Tensor dlogit, Tensor dout, Tensor x, Tensor logit);

    // Variance amplification (intervention) on x[B,T,D], row k of each sequence: out_k = mu + lambda (x_k - mu),
    // mu = mean_{t < n_mean} x[b,t,:] (no gradient through mu; 0 when n_mean = 0: plain scaling). Other rows are
    // copied. out may alias x.
    void amplify_fwd(Tensor out, Tensor x, int k, float lambda, int n_mean);
    void amplify_bwd(Tensor dx, Tensor dout, int k, float lambda);

    // out[N,F] = silu(a) * b, with ab[N, 2F] = [a | b] (the fused w1|w3 projection). With rest_max ([1] f32; out
    // then [B, T, F]), also rest_max = max_{b, t>0, f} |out| (before out is rounded to its dtype): the sink metrics'
    // FFN maximum away from token 0, taken while the values are in registers instead of by reading out again.
    void swiglu_fwd(Tensor out, Tensor ab, Tensor rest_max = {});
    void swiglu_bwd(Tensor dab, Tensor dout, Tensor ab);

    void add(Tensor out, Tensor a, Tensor b);  // out = a + b; out may alias a or b

    // loss[N] (wide) = logsumexp(logits) - logits[target]; dlogits = scale * (softmax - onehot).
    // Rows with target < 0 get loss 0 and zero gradient; targets >= V are the caller's error, as ids are for
    // embedding_fwd. dlogits may alias logits, or be empty.
    void cross_entropy(Tensor loss, Tensor dlogits, Tensor logits, Tensor targets, float scale);

    // PyTorch's AdamW. master (wide) holds the weights when p is narrower; else master is empty and
    // p itself is updated. m, v, g are wide.
    void adamw(Tensor master, Tensor p, Tensor m, Tensor v, Tensor g, const AdamWStep& h);
    // Sum of squares of g, accumulated in f64 in a fixed order (reproducible); returns to the host.
    double sum_squares(Tensor g);

    // ---- sink metrics: reductions of one forward pass's activations into small f32 outputs ------------
    // A query row i "sees" key p when i == p, or i > p and i is not isolated.
    // out[H, P]: for each head and tracked key positions[k], the mean over the batch and over the rows that see
    // it of the weight they put on it: exp(scale q_i.k_p - lse_i), or sigmoid(scale q_i.k_p + bias) for Sigmoid.
    void attn_mass(Tensor out, Tensor qkv, Tensor lse, const std::vector<int>& positions, const AttnSpec& s);
    // out[Q, Q], Q <= T: the attention weights among the first Q positions of sequence 0, averaged over heads
    // (zero where a row does not see a key).
    void attn_map(Tensor out, Tensor qkv, Tensor lse, const AttnSpec& s);
    // out[Tp], Tp <= T: for x [B, T, D], the population std over D of x[b, t, :], averaged over b.
    void position_std(Tensor out, Tensor x);
    // out[3] for x [B, T, D], from the B rows of token 0 only: mean_b max_j|x_b0j| / mean_j|x_b0j|;
    // max_{b,j} |x_b0j|; the channel j of that maximum (the first, in b then j order, on ties).
    void token0_stats(Tensor out, Tensor x);
    // out[1] = mean_b ||x_b0|| / mean_{b,t>0} ||x_bt|| for the input x of an RMSNorm, from its rstd [B, T]
    // (wide) and eps: ||x_bt||^2 = D (1/rstd^2 - eps), and D cancels. The norm already read x; this reads B T floats.
    void token0_norm_ratio(Tensor out, Tensor rstd, float eps);
    // out[K, 2] for K tensors xs[k] [T, D] of one shape: each one's largest |x| and median of |x| (the lower one for
    // an even count). All in one call, because each is small and takes several dependent passes.
    void abs_max_median(Tensor out, const std::vector<Tensor>& xs);

    // ---- profiling ----------------------------------------------------------------------------
    void set_profiling(bool on) { profiling_ = on; }
    // Seconds per op family since the last reset (synchronizes).
    std::array<double, size_t(OpFamily::kCount)> profile();
    void reset_profile();

protected:
    explicit Backend(DType compute) : compute_(compute) {}

    virtual void* do_alloc(size_t bytes) = 0;
    virtual void do_release(void* p) = 0;

    virtual void do_write(Tensor dst, const void* host, DType host_dtype) = 0;
    virtual void do_read(void* host, DType host_dtype, Tensor src) = 0;
    virtual void do_zero(Tensor t) = 0;
    virtual void do_convert(Tensor dst, Tensor src) = 0;
    virtual void do_scale(Tensor x, float s) = 0;
    virtual void do_embedding_fwd(Tensor out, Tensor ids, Tensor wte) = 0;
    virtual void do_embedding_bwd(Tensor dwte, Tensor ids, Tensor dout) = 0;
    virtual void do_rmsnorm_fwd(Tensor out, Tensor rstd, Tensor x, Tensor g, float eps) = 0;
    virtual void do_rmsnorm_bwd(Tensor dx, Tensor dg, Tensor dout, Tensor x, Tensor g, Tensor rstd,
                                bool accumulate) = 0;
    virtual void do_matmul_fwd(Tensor out, Tensor x, Tensor W, Tensor residual) = 0;
    virtual void do_matmul_bwd(Tensor dx, Tensor dW, Tensor dout, Tensor x, Tensor W) = 0;
    virtual void do_rope(Tensor qkv, const AttnSpec& s, float theta, int pos0, bool inverse) = 0;
    virtual void do_attention_fwd(Tensor o, Tensor lse, Tensor qkv, Tensor sink, const AttnSpec& s) = 0;
    virtual void do_attention_bwd(Tensor dqkv, Tensor dsink, Tensor dout, Tensor o, Tensor lse,
                                  Tensor qkv, Tensor sink, const AttnSpec& s, Tensor rowdot) = 0;
    virtual void do_headnorm_fwd(Tensor out, Tensor rstd, Tensor x, Tensor g, float eps) = 0;
    virtual void do_headnorm_bwd(Tensor dx, Tensor dg, Tensor dout, Tensor x, Tensor g, Tensor rstd,
                                 Tensor rowdot) = 0;
    virtual void do_qknorm_fwd(Tensor out, Tensor rstd, Tensor in, Tensor gq, Tensor gk,
                               const AttnSpec& s, float eps) = 0;
    virtual void do_qknorm_bwd(Tensor din, Tensor dgq, Tensor dgk, Tensor dout, Tensor in, Tensor gq,
                               Tensor gk, Tensor rstd, const AttnSpec& s) = 0;
    virtual void do_gate_fwd(Tensor out, Tensor x, Tensor logit) = 0;
    virtual void do_gate_bwd(Tensor dx, Tensor dlogit, Tensor dout, Tensor x, Tensor logit) = 0;
    virtual void do_amplify_fwd(Tensor out, Tensor x, int k, float lambda, int n_mean) = 0;
    virtual void do_amplify_bwd(Tensor dx, Tensor dout, int k, float lambda) = 0;
    virtual void do_swiglu_fwd(Tensor out, Tensor ab, Tensor rest_max) = 0;
    virtual void do_swiglu_bwd(Tensor dab, Tensor dout, Tensor ab) = 0;
    virtual void do_add(Tensor out, Tensor a, Tensor b) = 0;
    virtual void do_cross_entropy(Tensor loss, Tensor dlogits, Tensor logits, Tensor targets, float scale) = 0;
    virtual void do_adamw(Tensor master, Tensor p, Tensor m, Tensor v, Tensor g, const AdamWStep& h) = 0;
    virtual double do_sum_squares(Tensor g) = 0;
    virtual void do_attn_mass(Tensor out, Tensor qkv, Tensor lse, const std::vector<int>& positions,
                              const AttnSpec& s) = 0;
    virtual void do_attn_map(Tensor out, Tensor qkv, Tensor lse, const AttnSpec& s) = 0;
    virtual void do_position_std(Tensor out, Tensor x) = 0;
    virtual void do_token0_stats(Tensor out, Tensor x) = 0;
    virtual void do_token0_norm_ratio(Tensor out, Tensor rstd, float eps) = 0;
    virtual void do_abs_max_median(Tensor out, const std::vector<Tensor>& xs) = 0;

    // Profiling hooks: CPU reads a clock, CUDA records events.
    virtual void prof_begin(OpFamily f) = 0;
    virtual void prof_end(OpFamily f) = 0;
    virtual std::array<double, size_t(OpFamily::kCount)> prof_collect() = 0;

    bool profiling_ = false;

private:
    DType compute_;
    std::unordered_map<void*, size_t> sizes_;  // live allocations
    size_t in_use_ = 0, peak_ = 0;
    friend class OpScope;
};

// Times one op when profiling is on.
class OpScope {
public:
    OpScope(Backend& b, OpFamily f) : b_(b), f_(f) {
        if (b_.profiling_) b_.prof_begin(f_);
    }
    ~OpScope() {
        if (b_.profiling_) b_.prof_end(f_);
    }

private:
    Backend& b_;
    OpFamily f_;
};

// Which backend a run uses: "cpu", "cuda", or "auto" (CUDA when a GPU is present).
struct BackendOptions {
    std::string kind = "auto";
    DType cuda_compute = DType::BF16;  // precision.compute on GPU
    int device = -1;                   // CUDA device, modulo the visible GPUs; -1 = 0 (train/run_backend.h)
    int threads = 0;                   // CPU threads of any backend's host work; 0 = all cores
};
std::unique_ptr<Backend> make_backend(const BackendOptions& opt);
// The CPU backend in any float compute dtype (tests use f64).
std::unique_ptr<Backend> make_cpu_backend(DType compute, int threads = 0);
// The process's OpenMP and OpenBLAS threads (0 = OpenMP's default, all cores); returns the count in use. The CPU
// backend computes with them; on a GPU they do the host work (the data's scan at start, the effective rank's SVDs),
// which under several ranks per node would otherwise start all cores in every rank.
int use_host_threads(int threads);
bool cuda_available();
// Why cuda_available() is false: CUDA's error, or that this sinklab was built without CUDA.
std::string cuda_unavailable_reason();
// The GPUs this process sees, as one number (gpu_set_id of their UUIDs); 0 when it sees none.
uint64_t visible_gpus();
// A set of GPU UUIDs as one number, whatever their order: ranks whose CUDA_DEVICE_ORDER or CUDA_VISIBLE_DEVICES list
// one machine's GPUs in different orders still see the same GPUs. 0 for none.
uint64_t gpu_set_id(std::vector<std::array<unsigned char, 16>> uuids);

}  // namespace sinklab
