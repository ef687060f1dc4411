// Shape and dtype checks for every op, written once for all backends.
#include "backend/backend.h"

#include <algorithm>
#include <vector>

#include "core/checksum.h"
#include "kernels/cuda/attention_scratch.h"

namespace sinklab {

size_t attention_scratch_bytes(const AttnSpec& s, DType compute) {
    if (compute != DType::BF16) return 0;
    return s.cudnn ? cuda::CudnnBwdScratch(s, 0).total : cuda::attn_bwd_scratch(s, true).bytes;
}

const char* op_family_name(OpFamily f) {
    static const char* names[] = {"embedding",    "rmsnorm",       "matmul",        "rope",
                                  "attention_fwd", "attention_bwd", "headnorm",     "gate",
                                  "swiglu",       "residual",      "cross_entropy", "optimizer",
                                  "metric_mass",  "metric_stats",  "metric_median", "intervention",
                                  "memory"};
    static_assert(sizeof(names) / sizeof(names[0]) == size_t(OpFamily::kCount));
    return names[size_t(f)];
}

namespace {

bool is_float(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F64; }

void expect_dtype(const Tensor& t, DType want, const char* what) {
    SL_ASSERT(t.dtype == want, "{} is {}, expected {}", what, dtype_name(t.dtype), dtype_name(want));
}

void expect_shape(const Tensor& t, std::initializer_list<int64_t> dims, const char* what) {
    bool ok = t.ndim == int(dims.size());
    int i = 0;
    for (int64_t d : dims) ok = ok && t.shape[i++] == d;
    Tensor want(nullptr, t.dtype, dims);
    SL_ASSERT(ok, "{} has shape {}, expected {}", what, t.shape_str(), want.shape_str());
}

// Rows and last dimension of a tensor seen as [rows, cols].
int64_t rows_of(const Tensor& t) { return t.numel() / t.dim(-1); }

}  // namespace

void Backend::write(Tensor dst, const void* host, DType host_dtype) {
    SL_ASSERT((dst.dtype == DType::I32) == (host_dtype == DType::I32), "write {} from {}", dtype_name(dst.dtype),
              dtype_name(host_dtype));
    OpScope s(*this, OpFamily::Memory);
    do_write(dst, host, host_dtype);
}

void Backend::read(void* host, DType host_dtype, Tensor src) {
    SL_ASSERT((src.dtype == DType::I32) == (host_dtype == DType::I32), "read {} into {}", dtype_name(src.dtype),
              dtype_name(host_dtype));
    OpScope s(*this, OpFamily::Memory);
    do_read(host, host_dtype, src);
}

void Backend::zero(Tensor t) {
    OpScope s(*this, OpFamily::Memory);
    do_zero(t);
}

void Backend::convert(Tensor dst, Tensor src) {
    SL_ASSERT(dst.numel() == src.numel() && is_float(dst.dtype) && is_float(src.dtype), "convert {} {} <- {} {}",
              dst.shape_str(), dtype_name(dst.dtype), src.shape_str(), dtype_name(src.dtype));
    OpScope s(*this, OpFamily::Memory);
    do_convert(dst, src);
}

void Backend::scale(Tensor x, float f) {
    SL_ASSERT(is_float(x.dtype), "scale of a {} tensor", dtype_name(x.dtype));
    OpScope s(*this, OpFamily::Optimizer);
    do_scale(x, f);
}

uint64_t Backend::checksum(Tensor t) {
    // In place where backend memory is the host's: a copy of the weights would double their memory.
    if (host_memory()) return checksum64(t.data, t.bytes());
    std::vector<char> host(t.bytes());
    read(host.data(), t.dtype, t);
    return checksum64(host.data(), host.size());
}

void Backend::embedding_fwd(Tensor out, Tensor ids, Tensor wte) {
    SL_ASSERT(wte.ndim == 2, "wte {} must be [V, C]", wte.shape_str());
    int64_t N = ids.numel(), C = wte.dim(1);
    expect_dtype(ids, DType::I32, "ids");
    expect_dtype(out, compute_, "embedding out");
    expect_dtype(wte, compute_, "wte");
    expect_shape(out, {N, C}, "embedding out");
    OpScope s(*this, OpFamily::Embedding);
    do_embedding_fwd(out, ids, wte);
}

void Backend::embedding_bwd(Tensor dwte, Tensor ids, Tensor dout) {
    int64_t N = ids.numel(), C = dwte.dim(1);
    expect_dtype(ids, DType::I32, "ids");
    expect_dtype(dwte, wide(), "dwte");
    expect_shape(dout, {N, C}, "embedding dout");
    OpScope s(*this, OpFamily::Embedding);
    do_embedding_bwd(dwte, ids, dout);
}

void Backend::rmsnorm_fwd(Tensor out, Tensor rstd, Tensor x, Tensor g, float eps) {
    int64_t N = x.dim(0), C = x.dim(1);
    expect_shape(x, {N, C}, "rmsnorm x");
    expect_shape(out, {N, C}, "rmsnorm out");
    expect_shape(rstd, {N}, "rmsnorm rstd");
    expect_shape(g, {C}, "rmsnorm g");
    expect_dtype(rstd, wide(), "rmsnorm rstd");
    OpScope s(*this, OpFamily::RMSNorm);
    do_rmsnorm_fwd(out, rstd, x, g, eps);
}

void Backend::rmsnorm_bwd(Tensor dx, Tensor dg, Tensor dout, Tensor x, Tensor g, Tensor rstd, bool accumulate) {
    int64_t N = x.dim(0), C = x.dim(1);
    expect_shape(dx, {N, C}, "rmsnorm dx");
    expect_shape(dout, {N, C}, "rmsnorm dout");
    expect_shape(dg, {C}, "rmsnorm dg");
    expect_dtype(dg, wide(), "rmsnorm dg");
    expect_shape(rstd, {N}, "rmsnorm rstd");
    OpScope s(*this, OpFamily::RMSNorm);
    do_rmsnorm_bwd(dx, dg, dout, x, g, rstd, accumulate);
}

void Backend::matmul_fwd(Tensor out, Tensor x, Tensor W, Tensor residual) {
    int64_t N = rows_of(x), I = x.dim(-1), O = W.dim(0);
    expect_shape(W, {O, I}, "matmul W");
    SL_ASSERT(rows_of(out) == N && out.dim(-1) == O, "matmul out {} for x {} W {}", out.shape_str(), x.shape_str(),
              W.shape_str());
    expect_dtype(out, compute_, "matmul out");
    if (!residual.empty()) {
        SL_ASSERT(rows_of(residual) == N && residual.dim(-1) == O, "matmul residual {} for out {}",
                  residual.shape_str(), out.shape_str());
        expect_dtype(residual, compute_, "matmul residual");
    }
    OpScope s(*this, OpFamily::Matmul);
    do_matmul_fwd(out, x, W, residual);
}

void Backend::matmul_bwd(Tensor dx, Tensor dW, Tensor dout, Tensor x, Tensor W) {
    int64_t N = rows_of(x), I = x.dim(-1), O = W.dim(0);
    expect_shape(dW, {O, I}, "matmul dW");
    expect_dtype(dW, wide(), "matmul dW");
    SL_ASSERT(rows_of(dout) == N && dout.dim(-1) == O, "matmul dout {} for x {} W {}", dout.shape_str(),
              x.shape_str(), W.shape_str());
    SL_ASSERT(dx.empty() || (rows_of(dx) == N && dx.dim(-1) == I), "matmul dx {}", dx.shape_str());
    OpScope s(*this, OpFamily::Matmul);
    do_matmul_bwd(dx, dW, dout, x, W);
}

static void check_qkv(const Tensor& qkv, const AttnSpec& s, const char* what) {
    SL_ASSERT(s.H > 0 && s.Hkv > 0 && s.H % s.Hkv == 0 && s.hd % 2 == 0, "attention spec H={} Hkv={} hd={}", s.H,
              s.Hkv, s.hd);
    expect_shape(qkv, {s.B, s.T, s.qkv_width()}, what);
}

void Backend::rope_fwd(Tensor qkv, const AttnSpec& s, float theta, int pos0) {
    check_qkv(qkv, s, "rope qkv");
    OpScope sc(*this, OpFamily::Rope);
    do_rope(qkv, s, theta, pos0, false);
}

void Backend::rope_bwd(Tensor dqkv, const AttnSpec& s, float theta, int pos0) {
    check_qkv(dqkv, s, "rope dqkv");
    OpScope sc(*this, OpFamily::Rope);
    do_rope(dqkv, s, theta, pos0, true);
}

void Backend::attention_fwd(Tensor o, Tensor lse, Tensor qkv, Tensor sink, const AttnSpec& s) {
    check_qkv(qkv, s, "attention qkv");
    expect_shape(o, {s.B, s.T, s.H, s.hd}, "attention o");
    expect_shape(lse, {s.B, s.H, s.T}, "attention lse");
    expect_dtype(lse, wide(), "attention lse");
    SL_ASSERT((s.score == AttnScore::SinkLogit) == !sink.empty(), "sink logits given: {}", !sink.empty());
    if (!sink.empty()) expect_shape(sink, {s.H}, "attention sink");
    SL_ASSERT(s.n_isolate >= 0 && s.n_isolate <= AttnSpec::kMaxIsolate, "{} isolated rows", s.n_isolate);
    OpScope sc(*this, OpFamily::AttentionFwd);
    do_attention_fwd(o, lse, qkv, sink, s);
}

void Backend::attention_bwd(Tensor dqkv, Tensor dsink, Tensor dout, Tensor o, Tensor lse, Tensor qkv, Tensor sink,
                            const AttnSpec& s, Tensor rowdot) {
    check_qkv(qkv, s, "attention qkv");
    check_qkv(dqkv, s, "attention dqkv");
    expect_shape(dout, {s.B, s.T, s.H, s.hd}, "attention dout");
    expect_shape(o, {s.B, s.T, s.H, s.hd}, "attention o");
    expect_shape(lse, {s.B, s.H, s.T}, "attention lse");
    SL_ASSERT((s.score == AttnScore::SinkLogit) == !sink.empty() && sink.empty() == dsink.empty(),
              "sink logits and their gradient go together with SinkLogit");
    if (!dsink.empty()) {
        expect_shape(dsink, {s.H}, "attention dsink");
        expect_dtype(dsink, wide(), "attention dsink");
    }
    SL_ASSERT(s.n_isolate >= 0 && s.n_isolate <= AttnSpec::kMaxIsolate, "{} isolated rows", s.n_isolate);
    if (!rowdot.empty()) {
        expect_shape(rowdot, {s.B, s.H, s.T}, "attention rowdot");
        expect_dtype(rowdot, wide(), "attention rowdot");
    }
    OpScope sc(*this, OpFamily::AttentionBwd);
    do_attention_bwd(dqkv, dsink, dout, o, lse, qkv, sink, s, rowdot);
}

static void check_headnorm(const Tensor& x, const Tensor& g, const Tensor& rstd, DType wide) {
    SL_ASSERT(x.ndim == 3, "headnorm x {} must be [N, nh, hd]", x.shape_str());
    int64_t N = x.dim(0), nh = x.dim(1), hd = x.dim(2);
    SL_ASSERT((g.ndim == 2 && g.dim(0) == nh && g.dim(1) == hd) || (g.ndim == 1 && g.dim(0) == hd),
              "headnorm gain {} for x {}", g.shape_str(), x.shape_str());
    expect_shape(rstd, {N, nh}, "headnorm rstd");
    expect_dtype(rstd, wide, "headnorm rstd");
}

void Backend::headnorm_fwd(Tensor out, Tensor rstd, Tensor x, Tensor g, float eps) {
    check_headnorm(x, g, rstd, wide());
    expect_shape(out, {x.dim(0), x.dim(1), x.dim(2)}, "headnorm out");
    OpScope sc(*this, OpFamily::HeadNorm);
    do_headnorm_fwd(out, rstd, x, g, eps);
}

void Backend::headnorm_bwd(Tensor dx, Tensor dg, Tensor dout, Tensor x, Tensor g, Tensor rstd, Tensor rowdot) {
    check_headnorm(x, g, rstd, wide());
    expect_shape(dx, {x.dim(0), x.dim(1), x.dim(2)}, "headnorm dx");
    expect_shape(dout, {x.dim(0), x.dim(1), x.dim(2)}, "headnorm dout");
    SL_ASSERT(dg.numel() == g.numel() && dg.dtype == wide(), "headnorm dg {} {}", dg.shape_str(),
              dtype_name(dg.dtype));
    if (!rowdot.empty()) {
        SL_ASSERT(rowdot.ndim == 3 && rowdot.dim(1) == x.dim(1) && rowdot.dim(0) * rowdot.dim(2) == x.dim(0),
                  "headnorm rowdot {} must be [B, nh, T] with B T = N for x {}", rowdot.shape_str(), x.shape_str());
        expect_dtype(rowdot, wide(), "headnorm rowdot");
    }
    OpScope sc(*this, OpFamily::HeadNorm);
    do_headnorm_bwd(dx, dg, dout, x, g, rstd, rowdot);
}

void Backend::qknorm_fwd(Tensor out, Tensor rstd, Tensor in, Tensor gq, Tensor gk, const AttnSpec& s, float eps) {
    check_qkv(in, s, "qknorm in");
    check_qkv(out, s, "qknorm out");
    expect_shape(rstd, {int64_t(s.B) * s.T, s.H + s.Hkv}, "qknorm rstd");
    expect_dtype(rstd, wide(), "qknorm rstd");
    expect_shape(gq, {s.hd}, "qknorm gq");
    expect_shape(gk, {s.hd}, "qknorm gk");
    OpScope sc(*this, OpFamily::HeadNorm);
    do_qknorm_fwd(out, rstd, in, gq, gk, s, eps);
}

void Backend::qknorm_bwd(Tensor din, Tensor dgq, Tensor dgk, Tensor dout, Tensor in, Tensor gq, Tensor gk,
                         Tensor rstd, const AttnSpec& s) {
    check_qkv(in, s, "qknorm in");
    check_qkv(din, s, "qknorm din");
    check_qkv(dout, s, "qknorm dout");
    expect_shape(dgq, {s.hd}, "qknorm dgq");
    expect_shape(dgk, {s.hd}, "qknorm dgk");
    expect_dtype(dgq, wide(), "qknorm dgq");
    expect_dtype(dgk, wide(), "qknorm dgk");
    expect_shape(rstd, {int64_t(s.B) * s.T, s.H + s.Hkv}, "qknorm rstd");
    expect_dtype(rstd, wide(), "qknorm rstd");
    OpScope sc(*this, OpFamily::HeadNorm);
    do_qknorm_bwd(din, dgq, dgk, dout, in, gq, gk, rstd, s);
}

static void check_gate(const Tensor& x, const Tensor& logit, DType compute) {
    SL_ASSERT(x.ndim == 3, "gate x {} must be [N, H, hd]", x.shape_str());
    expect_dtype(x, compute, "gate x");
    expect_dtype(logit, compute, "gate logit");
    int64_t N = x.dim(0), H = x.dim(1), hd = x.dim(2);
    SL_ASSERT(logit.ndim == 2 && logit.dim(0) == N && (logit.dim(1) == H * hd || logit.dim(1) == H),
              "gate logit {} for x {}", logit.shape_str(), x.shape_str());
}

void Backend::gate_fwd(Tensor out, Tensor x, Tensor logit) {
    check_gate(x, logit, compute_);
    expect_shape(out, {x.dim(0), x.dim(1), x.dim(2)}, "gate out");
    OpScope sc(*this, OpFamily::Gate);
    do_gate_fwd(out, x, logit);
}

void Backend::gate_bwd(Tensor dx, Tensor dlogit, Tensor dout, Tensor x, Tensor logit) {
    check_gate(x, logit, compute_);
    expect_shape(dx, {x.dim(0), x.dim(1), x.dim(2)}, "gate dx");
    expect_shape(dout, {x.dim(0), x.dim(1), x.dim(2)}, "gate dout");
    SL_ASSERT(dlogit.numel() == logit.numel(), "gate dlogit {}", dlogit.shape_str());
    OpScope sc(*this, OpFamily::Gate);
    do_gate_bwd(dx, dlogit, dout, x, logit);
}

void Backend::amplify_fwd(Tensor out, Tensor x, int k, float lambda, int n_mean) {
    SL_ASSERT(x.ndim == 3 && k >= 0 && k < x.dim(1) && n_mean >= 0 && n_mean <= x.dim(1),
              "amplify row {} of {} about the mean of {} rows", k, x.shape_str(), n_mean);
    expect_shape(out, {x.dim(0), x.dim(1), x.dim(2)}, "amplify out");
    OpScope sc(*this, OpFamily::Intervention);
    do_amplify_fwd(out, x, k, lambda, n_mean);
}

void Backend::amplify_bwd(Tensor dx, Tensor dout, int k, float lambda) {
    SL_ASSERT(dout.ndim == 3 && k >= 0 && k < dout.dim(1), "amplify row {} of {}", k, dout.shape_str());
    expect_shape(dx, {dout.dim(0), dout.dim(1), dout.dim(2)}, "amplify dx");
    OpScope sc(*this, OpFamily::Intervention);
    do_amplify_bwd(dx, dout, k, lambda);
}

void Backend::swiglu_fwd(Tensor out, Tensor ab, Tensor rest_max) {
    int64_t N = rows_of(ab), F = ab.dim(-1) / 2;
    SL_ASSERT(ab.dim(-1) == 2 * F && rows_of(out) == N && out.dim(-1) == F, "swiglu out {} ab {}", out.shape_str(),
              ab.shape_str());
    expect_dtype(ab, compute_, "swiglu ab");
    expect_dtype(out, compute_, "swiglu out");
    if (!rest_max.empty()) {
        SL_ASSERT(out.ndim == 3, "swiglu out {} must be [B, T, F] with rest_max", out.shape_str());
        expect_shape(rest_max, {1}, "swiglu rest_max");
        expect_dtype(rest_max, DType::F32, "swiglu rest_max");
    }
    OpScope sc(*this, OpFamily::SwiGLU);
    do_swiglu_fwd(out, ab, rest_max);
}

void Backend::swiglu_bwd(Tensor dab, Tensor dout, Tensor ab) {
    int64_t N = rows_of(ab), F = ab.dim(-1) / 2;
    SL_ASSERT(dab.numel() == ab.numel() && rows_of(dout) == N && dout.dim(-1) == F, "swiglu dab {} dout {} ab {}",
              dab.shape_str(), dout.shape_str(), ab.shape_str());
    expect_dtype(dab, compute_, "swiglu dab");
    expect_dtype(dout, compute_, "swiglu dout");
    expect_dtype(ab, compute_, "swiglu ab");
    OpScope sc(*this, OpFamily::SwiGLU);
    do_swiglu_bwd(dab, dout, ab);
}

void Backend::add(Tensor out, Tensor a, Tensor b) {
    SL_ASSERT(out.numel() == a.numel() && a.numel() == b.numel() && out.dtype == a.dtype && a.dtype == b.dtype,
              "add {} = {} + {}", out.shape_str(), a.shape_str(), b.shape_str());
    OpScope sc(*this, OpFamily::Residual);
    do_add(out, a, b);
}

void Backend::cross_entropy(Tensor loss, Tensor dlogits, Tensor logits, Tensor targets, float scale) {
    int64_t N = rows_of(logits), V = logits.dim(-1);
    expect_shape(loss, {N}, "cross_entropy loss");
    expect_dtype(loss, wide(), "cross_entropy loss");
    expect_dtype(targets, DType::I32, "cross_entropy targets");
    expect_dtype(logits, compute_, "cross_entropy logits");
    SL_ASSERT(targets.numel() == N, "cross_entropy targets {} for logits {}", targets.shape_str(), logits.shape_str());
    SL_ASSERT(dlogits.empty() || (rows_of(dlogits) == N && dlogits.dim(-1) == V), "cross_entropy dlogits {}",
              dlogits.shape_str());
    OpScope sc(*this, OpFamily::CrossEntropy);
    do_cross_entropy(loss, dlogits, logits, targets, scale);
}

void Backend::adamw(Tensor master, Tensor p, Tensor m, Tensor v, Tensor g, const AdamWStep& h) {
    int64_t n = p.numel();
    SL_ASSERT(m.numel() == n && v.numel() == n && g.numel() == n && (master.empty() || master.numel() == n),
              "adamw sizes p {} m {} v {} g {}", n, m.numel(), v.numel(), g.numel());
    SL_ASSERT(master.empty() ? p.dtype == wide() : master.dtype == wide(), "adamw: the weights it updates must be {}",
              dtype_name(wide()));
    OpScope sc(*this, OpFamily::Optimizer);
    do_adamw(master, p, m, v, g, h);
}

double Backend::sum_squares(Tensor g) {
    OpScope sc(*this, OpFamily::Optimizer);
    return do_sum_squares(g);
}

void Backend::attn_mass(Tensor out, Tensor qkv, Tensor lse, const std::vector<int>& positions, const AttnSpec& s) {
    check_qkv(qkv, s, "attn_mass qkv");
    expect_shape(lse, {s.B, s.H, s.T}, "attn_mass lse");
    expect_dtype(lse, wide(), "attn_mass lse");
    const int64_t P = int64_t(positions.size());
    SL_ASSERT(P >= 1 && P <= kMaxTrackedPositions, "{} tracked positions", P);
    for (int p : positions) SL_ASSERT(p >= 0 && p < s.T, "tracked position {} outside [0, {})", p, s.T);
    expect_shape(out, {s.H, P}, "attn_mass out");
    expect_dtype(out, DType::F32, "attn_mass out");
    OpScope sc(*this, OpFamily::MetricMass);
    do_attn_mass(out, qkv, lse, positions, s);
}

void Backend::attn_map(Tensor out, Tensor qkv, Tensor lse, const AttnSpec& s) {
    check_qkv(qkv, s, "attn_map qkv");
    expect_shape(lse, {s.B, s.H, s.T}, "attn_map lse");
    expect_dtype(lse, wide(), "attn_map lse");
    const int64_t Q = out.dim(0);
    SL_ASSERT(Q >= 1 && Q <= s.T, "attention map of {} positions, T = {}", Q, s.T);
    expect_shape(out, {Q, Q}, "attn_map out");
    expect_dtype(out, DType::F32, "attn_map out");
    OpScope sc(*this, OpFamily::MetricMass);
    do_attn_map(out, qkv, lse, s);
}

void Backend::position_std(Tensor out, Tensor x) {
    SL_ASSERT(x.ndim == 3 && out.ndim == 1 && out.dim(0) >= 1 && out.dim(0) <= x.dim(1), "position_std out {} x {}",
              out.shape_str(), x.shape_str());
    expect_dtype(out, DType::F32, "position_std out");
    OpScope sc(*this, OpFamily::MetricStats);
    do_position_std(out, x);
}

void Backend::token0_stats(Tensor out, Tensor x) {
    SL_ASSERT(x.ndim == 3, "token0_stats x {} must be [B, T, D]", x.shape_str());
    expect_shape(out, {3}, "token0_stats out");
    expect_dtype(out, DType::F32, "token0_stats out");
    OpScope sc(*this, OpFamily::MetricStats);
    do_token0_stats(out, x);
}

void Backend::token0_norm_ratio(Tensor out, Tensor rstd, float eps) {
    SL_ASSERT(rstd.ndim == 2, "token0_norm_ratio rstd {} must be [B, T]", rstd.shape_str());
    expect_dtype(rstd, wide(), "token0_norm_ratio rstd");
    expect_shape(out, {1}, "token0_norm_ratio out");
    expect_dtype(out, DType::F32, "token0_norm_ratio out");
    OpScope sc(*this, OpFamily::MetricStats);
    do_token0_norm_ratio(out, rstd, eps);
}

void Backend::abs_max_median(Tensor out, const std::vector<Tensor>& xs) {
    SL_ASSERT(!xs.empty(), "abs_max_median of no tensors");
    const Tensor& x = xs[0];
    SL_ASSERT(x.ndim == 2 && x.numel() > 0, "abs_max_median x {} must be [T, D]", x.shape_str());
    for (const Tensor& other : xs) {
        expect_shape(other, {x.dim(0), x.dim(1)}, "abs_max_median x");
        expect_dtype(other, compute_dtype(), "abs_max_median x");
    }
    expect_shape(out, {int64_t(xs.size()), 2}, "abs_max_median out");
    expect_dtype(out, DType::F32, "abs_max_median out");
    OpScope sc(*this, OpFamily::MetricMedian);
    do_abs_max_median(out, xs);
}

void* Backend::alloc(size_t bytes) {
    void* p = do_alloc(bytes);
    if (p) {
        sizes_[p] = bytes;
        in_use_ += bytes;
        peak_ = std::max(peak_, in_use_);
    }
    return p;
}

void Backend::release(void* p) {
    if (!p) return;
    const auto it = sizes_.find(p);
    SL_ASSERT(it != sizes_.end(), "release of memory this backend did not allocate");
    in_use_ -= it->second;
    sizes_.erase(it);
    do_release(p);
}

std::array<double, size_t(OpFamily::kCount)> Backend::profile() { return prof_collect(); }

void Backend::reset_profile() { (void)prof_collect(); }

}  // namespace sinklab
