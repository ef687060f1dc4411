// The CUDA backend: one device, one stream, the launchers of kernels/cuda.
// Activations and parameters are bf16 (precision.compute: bf16) or f32 (fp32, the exact-parity mode); parameter
// gradients, master weights and AdamW moments are f32. Host copies go through a pinned staging buffer and
// convert on the device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "kernels/cuda/cuda_kernels.cuh"

namespace sinklab {
namespace {

using cuda::bf16;

constexpr size_t kStageBytes = size_t(16) << 20;     // pinned host staging (and its device twin)
constexpr size_t kFirstScratch = size_t(32) << 20;   // op scratch; grows on first use by a larger shape

}  // namespace
// Device code's bf16 is CUDA's type, not the host's bf16_bits.
template <> constexpr DType dtype_of<bf16>() { return DType::BF16; }
namespace {

// The device pointer of a tensor holding T, or null for an empty tensor.
template <typename T> T* dp(const Tensor& t) { return t.empty() ? nullptr : t.ptr<T>(); }

// Calls f(std::type_identity<T>{}) with T the device type of a float dtype.
template <typename F> void with_float_type(DType t, F&& f) {
    switch (t) {
        case DType::F32: f(std::type_identity<float>{}); break;
        case DType::BF16: f(std::type_identity<bf16>{}); break;
        case DType::F64: f(std::type_identity<double>{}); break;
        case DType::I32: SL_ASSERT(false, "a float operation on an i32 tensor");
    }
}

// n elements of any float dtype to any float dtype, on the device.
void convert_on_device(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n, cudaStream_t st) {
    with_float_type(dst_dtype, [&](auto d) {
        using D = typename decltype(d)::type;
        with_float_type(src_dtype, [&](auto s) {
            using S = typename decltype(s)::type;
            cuda::convert(static_cast<D*>(dst), static_cast<const S*>(src), n, st);
        });
    });
}

// A kernel that exists only to ask the runtime whether this binary has code for the device.
__global__ void probe_kernel() {}

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(const BackendOptions& opt) : Backend(opt.cuda_compute) {
        SL_REQUIRE(opt.cuda_compute == DType::BF16 || opt.cuda_compute == DType::F32,
                   "precision.compute on GPU must be bf16 or fp32, not {}", dtype_name(opt.cuda_compute));
        int count = 0;
        CUDA_CHECK(cudaGetDeviceCount(&count));
        // The local rank picks the GPU; modulo the visible ones, so that sites that give each task only its own
        // GPU (CUDA_VISIBLE_DEVICES per task) work too.
        device_ = opt.device < 0 ? 0 : opt.device % count;
        CUDA_CHECK(cudaSetDevice(device_));
        CUDA_CHECK(cudaGetDeviceProperties(&prop_, device_));
        cudaFuncAttributes attr;
        cudaError_t e = cudaFuncGetAttributes(&attr, probe_kernel);
        (void)cudaGetLastError();
        SL_REQUIRE(e == cudaSuccess,
                   "this sinklab has no GPU code for {} (sm_{}{}): rebuild with -DSINKLAB_CUDA_ARCH={}{} ({})",
                   prop_.name, prop_.major, prop_.minor, prop_.major, prop_.minor, cudaGetErrorString(e));
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        // A GPU already full (another job on it) fails here: what was made is given back, as the destructor would.
        try {
            CUDA_CHECK(cudaMallocHost(&stage_host_, kStageBytes));
            stage_device_ = device_malloc(kStageBytes);
            sum_partials_ = static_cast<double*>(device_malloc(cuda::sum_squares_scratch()));
            CUDA_CHECK(cudaMallocHost(&sum_partials_host_, cuda::sum_squares_scratch()));
            grow_scratch(kFirstScratch);
            gemm_ = std::make_unique<cuda::Gemm>();
        } catch (...) {
            free_all();
            throw;
        }
    }

    ~CudaBackend() override { free_all(); }

    std::string name() const override { return "cuda"; }
    std::string device_name() const override {
        return fmt::format("{} (device {}, sm_{}{}, {:.0f} GiB), {}", prop_.name, device_, prop_.major, prop_.minor,
                           double(prop_.totalGlobalMem) / double(1 << 30), dtype_name(compute_dtype()));
    }

    // Dense datasheet peaks in the compute dtype, for MFU: H100/H200 (sm_90) 989 TFLOP/s bf16 and 67 fp32 (no TF32
    // here), A100 (sm_80) 312 and 19.5. Other devices report 0: no MFU rather than a wrong one.
    double peak_flops() const override {
        const bool bf16 = compute_dtype() == DType::BF16;
        if (prop_.major == 9 && prop_.minor == 0) return bf16 ? 989e12 : 67e12;
        if (prop_.major == 8 && prop_.minor == 0) return bf16 ? 312e12 : 19.5e12;
        return 0.0;
    }

    void* do_alloc(size_t bytes) override {
        if (bytes == 0) return nullptr;
        void* p = device_malloc(bytes);
        CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
        return p;
    }
    void do_release(void* p) override {
        if (!p) return;
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        CUDA_CHECK(cudaFree(p));
    }
    void synchronize() override { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

protected:
    // Calls f(std::type_identity<T>{}) with T the compute type (float or bf16).
    template <typename F> void dispatch(F&& f) {
        if (compute_dtype() == DType::BF16)
            f(std::type_identity<bf16>{});
        else
            f(std::type_identity<float>{});
    }

    // Host data goes host -> pinned -> device (staged in the host dtype) -> converted into dst, chunk by chunk.
    void do_write(Tensor dst, const void* host, DType host_dtype) override {
        size_t hs = dtype_size(host_dtype), ds = dtype_size(dst.dtype);
        int64_t n = dst.numel(), chunk = int64_t(kStageBytes / hs);
        for (int64_t i0 = 0; i0 < n; i0 += chunk) {
            int64_t m = std::min(chunk, n - i0);
            std::memcpy(stage_host_, static_cast<const char*>(host) + i0 * hs, size_t(m) * hs);
            char* d = static_cast<char*>(dst.data) + i0 * ds;
            if (host_dtype == dst.dtype) {
                CUDA_CHECK(cudaMemcpyAsync(d, stage_host_, size_t(m) * hs, cudaMemcpyHostToDevice, stream_));
            } else {
                CUDA_CHECK(
                    cudaMemcpyAsync(stage_device_, stage_host_, size_t(m) * hs, cudaMemcpyHostToDevice, stream_));
                convert_on_device(d, dst.dtype, stage_device_, host_dtype, m, stream_);
            }
            CUDA_CHECK(cudaStreamSynchronize(stream_));  // before the staging buffer is reused
        }
    }
    void do_read(void* host, DType host_dtype, Tensor src) override {
        size_t hs = dtype_size(host_dtype), ss = dtype_size(src.dtype);
        int64_t n = src.numel(), chunk = int64_t(kStageBytes / hs);
        for (int64_t i0 = 0; i0 < n; i0 += chunk) {
            int64_t m = std::min(chunk, n - i0);
            const char* s = static_cast<const char*>(src.data) + i0 * ss;
            if (host_dtype == src.dtype) {
                CUDA_CHECK(cudaMemcpyAsync(stage_host_, s, size_t(m) * hs, cudaMemcpyDeviceToHost, stream_));
            } else {
                convert_on_device(stage_device_, host_dtype, s, src.dtype, m, stream_);
                CUDA_CHECK(
                    cudaMemcpyAsync(stage_host_, stage_device_, size_t(m) * hs, cudaMemcpyDeviceToHost, stream_));
            }
            CUDA_CHECK(cudaStreamSynchronize(stream_));
            std::memcpy(static_cast<char*>(host) + i0 * hs, stage_host_, size_t(m) * hs);
        }
    }
    void do_zero(Tensor t) override { CUDA_CHECK(cudaMemsetAsync(t.data, 0, t.bytes(), stream_)); }
    void do_convert(Tensor dst, Tensor src) override {
        if (dst.dtype == src.dtype)
            CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, src.bytes(), cudaMemcpyDeviceToDevice, stream_));
        else
            convert_on_device(dst.data, dst.dtype, src.data, src.dtype, src.numel(), stream_);
    }
    void do_scale(Tensor x, float s) override {
        with_float_type(x.dtype, [&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::scale(dp<T>(x), s, x.numel(), stream_);
        });
    }

    void do_embedding_fwd(Tensor out, Tensor ids, Tensor wte) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::embedding_fwd(dp<T>(out), dp<int32_t>(ids), dp<T>(wte), ids.numel(), wte.dim(0), wte.dim(1),
                                stream_);
        });
    }
    void do_embedding_bwd(Tensor dwte, Tensor ids, Tensor dout) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::embedding_bwd(dp<float>(dwte), dp<int32_t>(ids), dp<T>(dout), ids.numel(), dwte.dim(0),
                                dwte.dim(1), scratch(cuda::embedding_bwd_scratch(ids.numel())), stream_);
        });
    }
    void do_rmsnorm_fwd(Tensor out, Tensor rstd, Tensor x, Tensor g, float eps) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::rmsnorm_fwd(dp<T>(out), dp<float>(rstd), dp<T>(x), dp<T>(g), x.dim(0), x.dim(1), eps, stream_);
        });
    }
    void do_rmsnorm_bwd(Tensor dx, Tensor dg, Tensor dout, Tensor x, Tensor g, Tensor rstd, bool accumulate) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            const cuda::Scratch s = scratch(cuda::norm_bwd_scratch(cuda::rmsnorm_layout(x.dim(0), x.dim(1))));
            cuda::rmsnorm_bwd(dp<T>(dx), dp<float>(dg), dp<T>(dout), dp<T>(x), dp<T>(g), dp<float>(rstd), x.dim(0),
                              x.dim(1), accumulate, s, stream_);
        });
    }
    void do_matmul_fwd(Tensor out, Tensor x, Tensor W, Tensor residual) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            gemm_->fwd(dp<T>(out), dp<T>(x), dp<T>(W), dp<T>(residual), x.numel() / x.dim(-1), x.dim(-1), W.dim(0),
                       stream_);
        });
    }
    void do_matmul_bwd(Tensor dx, Tensor dW, Tensor dout, Tensor x, Tensor W) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            gemm_->bwd(dp<T>(dx), dp<float>(dW), dp<T>(dout), dp<T>(x), dp<T>(W), x.numel() / x.dim(-1), x.dim(-1),
                       W.dim(0), stream_);
        });
    }
    void do_rope(Tensor qkv, const AttnSpec& s, float theta, int pos0, bool inverse) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::rope(dp<T>(qkv), s, theta, pos0, inverse, stream_);
        });
    }
    void check_wgmma(const AttnSpec& s) const {
        SL_REQUIRE(!s.wgmma || (prop_.major == 9 && prop_.minor == 0),
                   "attention.impl: sinklab_wgmma needs an sm_90 GPU (H100/H200); {} is sm_{}{}. Use attention.impl: "
                   "sinklab",
                   prop_.name, prop_.major, prop_.minor);
    }
    void do_attention_fwd(Tensor o, Tensor lse, Tensor qkv, Tensor sink, const AttnSpec& s) override {
        if (s.cudnn) return cudnn_attention_fwd(o, lse, qkv, s);
        check_wgmma(s);
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::attention_fwd(dp<T>(o), dp<float>(lse), dp<T>(qkv), dp<T>(sink), s, stream_);
        });
    }
    void do_attention_bwd(Tensor dqkv, Tensor dsink, Tensor dout, Tensor o, Tensor lse, Tensor qkv, Tensor sink,
                          const AttnSpec& s, Tensor rowdot) override {
        if (s.cudnn) return cudnn_attention_bwd(dqkv, dout, o, lse, qkv, s);
        check_wgmma(s);
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::attention_bwd(dp<T>(dqkv), dp<float>(dsink), dp<T>(dout), dp<T>(o), dp<float>(lse), dp<T>(qkv),
                                dp<T>(sink), s, scratch(cuda::attention_bwd_scratch<T>(s)), stream_,
                                dp<float>(rowdot));
        });
    }
    void do_headnorm_fwd(Tensor out, Tensor rstd, Tensor x, Tensor g, float eps) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::headnorm_fwd(dp<T>(out), dp<float>(rstd), dp<T>(x), dp<T>(g), x.dim(0), x.dim(1), x.dim(2),
                               g.ndim == 2, eps, stream_);
        });
    }
    void do_headnorm_bwd(Tensor dx, Tensor dg, Tensor dout, Tensor x, Tensor g, Tensor rstd,
                         Tensor rowdot) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            const cuda::Scratch s =
                scratch(cuda::norm_bwd_scratch(cuda::headnorm_layout(x.dim(0), x.dim(1), x.dim(2), g.ndim == 2)));
            cuda::headnorm_bwd(dp<T>(dx), dp<float>(dg), dp<T>(dout), dp<T>(x), dp<T>(g), dp<float>(rstd), x.dim(0),
                               x.dim(1), x.dim(2), g.ndim == 2, s, stream_, dp<float>(rowdot),
                               rowdot.empty() ? 0 : rowdot.dim(2));
        });
    }
    void do_qknorm_fwd(Tensor out, Tensor rstd, Tensor in, Tensor gq, Tensor gk, const AttnSpec& s,
                       float eps) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::qknorm_fwd(dp<T>(out), dp<float>(rstd), dp<T>(in), dp<T>(gq), dp<T>(gk), s, eps, stream_);
        });
    }
    void do_qknorm_bwd(Tensor din, Tensor dgq, Tensor dgk, Tensor dout, Tensor in, Tensor gq, Tensor gk, Tensor rstd,
                       const AttnSpec& s) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            const cuda::Scratch sc = scratch(cuda::norm_bwd_scratch(cuda::qknorm_layout(s)));
            cuda::qknorm_bwd(dp<T>(din), dp<float>(dgq), dp<float>(dgk), dp<T>(dout), dp<T>(in), dp<T>(gq),
                             dp<T>(gk), dp<float>(rstd), s, sc, stream_);
        });
    }
    void do_gate_fwd(Tensor out, Tensor x, Tensor logit) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::gate_fwd(dp<T>(out), dp<T>(x), dp<T>(logit), x.dim(0), x.dim(1), x.dim(2), logit.dim(1) != x.dim(1),
                           stream_);
        });
    }
    void do_gate_bwd(Tensor dx, Tensor dlogit, Tensor dout, Tensor x, Tensor logit) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::gate_bwd(dp<T>(dx), dp<T>(dlogit), dp<T>(dout), dp<T>(x), dp<T>(logit), x.dim(0), x.dim(1),
                           x.dim(2), logit.dim(1) != x.dim(1), stream_);
        });
    }
    void do_amplify_fwd(Tensor out, Tensor x, int k, float lambda, int n_mean) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::amplify_fwd(dp<T>(out), dp<T>(x), x.dim(0), x.dim(1), x.dim(2), k, lambda, n_mean, stream_);
        });
    }
    void do_amplify_bwd(Tensor dx, Tensor dout, int k, float lambda) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::amplify_bwd(dp<T>(dx), dp<T>(dout), dout.dim(0), dout.dim(1), dout.dim(2), k, lambda, stream_);
        });
    }
    void do_swiglu_fwd(Tensor out, Tensor ab, Tensor rest_max) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            float* mx = rest_max.empty() ? nullptr : dp<float>(rest_max);
            cuda::swiglu_fwd(dp<T>(out), dp<T>(ab), out.numel() / out.dim(-1), out.dim(-1), mx,
                             mx ? int(out.dim(1)) : 1, stream_);
        });
    }
    void do_swiglu_bwd(Tensor dab, Tensor dout, Tensor ab) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::swiglu_bwd(dp<T>(dab), dp<T>(dout), dp<T>(ab), dout.numel() / dout.dim(-1), dout.dim(-1), stream_);
        });
    }
    void do_add(Tensor out, Tensor a, Tensor b) override {
        with_float_type(out.dtype, [&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::add(dp<T>(out), dp<T>(a), dp<T>(b), out.numel(), stream_);
        });
    }
    void do_cross_entropy(Tensor loss, Tensor dlogits, Tensor logits, Tensor targets, float scale) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::cross_entropy(dp<float>(loss), dp<T>(dlogits), dp<T>(logits), dp<int32_t>(targets),
                                logits.numel() / logits.dim(-1), logits.dim(-1), scale, stream_);
        });
    }
    void do_adamw(Tensor master, Tensor p, Tensor m, Tensor v, Tensor g, const AdamWStep& h) override {
        float* w = master.empty() ? dp<float>(p) : dp<float>(master);
        auto* mp = dp<float>(m);
        auto* vp = dp<float>(v);
        const auto* gp = dp<float>(g);
        if (master.empty())
            cuda::adamw(w, static_cast<float*>(nullptr), mp, vp, gp, p.numel(), h, stream_);
        else if (p.dtype == DType::BF16)
            cuda::adamw(w, dp<bf16>(p), mp, vp, gp, p.numel(), h, stream_);
        else
            cuda::adamw(w, dp<float>(p), mp, vp, gp, p.numel(), h, stream_);
    }
    double do_sum_squares(Tensor g) override {
        if (g.dtype == DType::BF16)
            return cuda::sum_squares(dp<bf16>(g), g.numel(), sum_partials_, sum_partials_host_, stream_);
        return cuda::sum_squares(dp<float>(g), g.numel(), sum_partials_, sum_partials_host_, stream_);
    }

    void do_attn_mass(Tensor out, Tensor qkv, Tensor lse, const std::vector<int>& positions,
                      const AttnSpec& s) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            const int P = int(positions.size());
            cuda::attn_mass(dp<float>(out), dp<T>(qkv), dp<float>(lse), positions.data(), P, s,
                            scratch(cuda::attn_mass_scratch(int64_t(s.B) * s.T, s.H, P)), stream_);
        });
    }
    void do_attn_map(Tensor out, Tensor qkv, Tensor lse, const AttnSpec& s) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::attn_map(dp<float>(out), int(out.dim(0)), dp<T>(qkv), dp<float>(lse), s, stream_);
        });
    }
    void do_position_std(Tensor out, Tensor x) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::position_std(dp<float>(out), int(out.dim(0)), dp<T>(x), int(x.dim(0)), int(x.dim(1)),
                               int(x.dim(2)), stream_);
        });
    }
    void do_token0_stats(Tensor out, Tensor x) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            cuda::token0_stats(dp<float>(out), dp<T>(x), int(x.dim(0)), int(x.dim(1)), int(x.dim(2)), stream_);
        });
    }
    void do_token0_norm_ratio(Tensor out, Tensor rstd, float eps) override {
        cuda::token0_norm_ratio(dp<float>(out), dp<float>(rstd), rstd.dim(0), rstd.dim(1), eps, stream_);
    }
    void do_abs_max_median(Tensor out, const std::vector<Tensor>& xs) override {
        dispatch([&](auto tag) {
            using T = typename decltype(tag)::type;
            std::vector<const T*> ptrs;
            for (const Tensor& x : xs) ptrs.push_back(dp<T>(x));
            cuda::abs_max_median(dp<float>(out), ptrs.data(), int(ptrs.size()), xs[0].numel(),
                                 scratch(cuda::abs_max_median_scratch()), stream_);
        });
    }

    // One pair of events per timed op; elapsed times are read (and the events recycled) at collection.
    void prof_begin(OpFamily) override {
        open_ = event();
        CUDA_CHECK(cudaEventRecord(open_, stream_));
    }
    void prof_end(OpFamily f) override {
        cudaEvent_t end = event();
        CUDA_CHECK(cudaEventRecord(end, stream_));
        marks_.push_back({f, open_, end});
    }
    std::array<double, size_t(OpFamily::kCount)> prof_collect() override {
        std::array<double, size_t(OpFamily::kCount)> r{};
        CUDA_CHECK(cudaStreamSynchronize(stream_));
        for (const Mark& m : marks_) {
            float ms = 0.f;
            CUDA_CHECK(cudaEventElapsedTime(&ms, m.start, m.end));
            r[size_t(m.family)] += ms * 1e-3;
            pool_.insert(pool_.end(), {m.start, m.end});
        }
        marks_.clear();
        return r;
    }

private:
    struct Mark {
        OpFamily family;
        cudaEvent_t start, end;
    };

    cudaEvent_t event() {
        if (pool_.empty()) {
            cudaEvent_t ev;
            CUDA_CHECK(cudaEventCreate(&ev));
            return ev;
        }
        cudaEvent_t ev = pool_.back();
        pool_.pop_back();
        return ev;
    }

#if SINKLAB_HAVE_CUDNN
    // The cuDNN path, made on first use: sinklab runs that never ask for it never initialize cuDNN.
    cuda::CudnnAttention& cudnn(const AttnSpec& s) {
        SL_REQUIRE(compute_dtype() == DType::BF16,
                   "attention.impl: cudnn runs in bf16 only (cuDNN's fused attention has no fp32 path); use "
                   "precision.compute: bf16 or attention.impl: sinklab");
        SL_REQUIRE(s.score == AttnScore::Softmax && s.n_isolate == 0,
                   "attention.impl: cudnn runs plain causal softmax attention only (no sink logit, sigmoid or "
                   "isolation); use attention.impl: sinklab");
        if (!cudnn_) cudnn_ = std::make_unique<cuda::CudnnAttention>(stream_);
        return *cudnn_;
    }
    void cudnn_attention_fwd(Tensor o, Tensor lse, Tensor qkv, const AttnSpec& s) {
        cuda::CudnnAttention& c = cudnn(s);
        c.fwd(dp<bf16>(o), dp<float>(lse), dp<bf16>(qkv), s, scratch(c.fwd_scratch(s)));
    }
    void cudnn_attention_bwd(Tensor dqkv, Tensor dout, Tensor o, Tensor lse, Tensor qkv, const AttnSpec& s) {
        cuda::CudnnAttention& c = cudnn(s);
        c.bwd(dp<bf16>(dqkv), dp<bf16>(dout), dp<bf16>(o), dp<float>(lse), dp<bf16>(qkv), s,
              scratch(c.bwd_scratch(s)));
    }
#else
    [[noreturn]] static void cudnn_missing() {
        fail("attention.impl: cudnn, but this sinklab was built without cuDNN (no cudnn.h / libcudnn at configure "
             "time); install cuDNN 9 and rebuild, or use attention.impl: sinklab");
    }
    void cudnn_attention_fwd(Tensor, Tensor, Tensor, const AttnSpec&) { cudnn_missing(); }
    void cudnn_attention_bwd(Tensor, Tensor, Tensor, Tensor, Tensor, const AttnSpec&) { cudnn_missing(); }
#endif

    // Scratch for one op at a time (all ops run in order on one stream), lent whole: the launcher checks its need
    // against what is there. It only grows, on the first call with a larger shape; memory then stays constant for
    // the run.
    cuda::Scratch scratch(size_t bytes) {
        if (bytes > scratch_bytes_) grow_scratch(bytes);
        return {scratch_, scratch_bytes_};
    }

    // Teardown must not throw: errors here are ignored. Also what a constructor that failed half-way made.
    void free_all() {
        cudaStreamSynchronize(stream_);
        gemm_.reset();
#if SINKLAB_HAVE_CUDNN
        cudnn_.reset();
#endif
        for (auto& m : marks_) pool_.insert(pool_.end(), {m.start, m.end});
        for (cudaEvent_t ev : pool_) cudaEventDestroy(ev);
        cudaFree(scratch_);
        cudaFree(sum_partials_);
        cudaFreeHost(sum_partials_host_);
        cudaFree(stage_device_);
        cudaFreeHost(stage_host_);
        cudaStreamDestroy(stream_);
    }

    // cudaMalloc, with the user's message when the GPU has no room.
    void* device_malloc(size_t bytes) const {
        void* p = nullptr;
        const cudaError_t e = cudaMalloc(&p, bytes);
        if (e == cudaSuccess) return p;
        // Any other error (an earlier kernel's fault, a lost GPU) is itself the news, not a lack of room.
        if (e != cudaErrorMemoryAllocation) cuda::check_cuda(e, "cudaMalloc", __FILE__, __LINE__);
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        const std::string room = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess
                                     ? fmt::format(" ({:.1f} of {:.1f} GiB free)", double(free_b) / (1 << 30),
                                                   double(total_b) / (1 << 30))
                                     : "";
        fail("out of GPU memory allocating {:.1f} MiB on {}{}: the model or batch is too large for this GPU, or "
             "another process holds it; `sinklab info CONFIG` shows the memory a run needs: lower "
             "train.micro_batch / model.seq_len, attention.ds_scratch_mib or model.* sizes",
             double(bytes) / (1 << 20), prop_.name, room);
    }

    void grow_scratch(size_t bytes) {
        if (scratch_) release(scratch_);
        scratch_ = nullptr;
        scratch_bytes_ = 0;
        scratch_ = alloc(bytes);
        scratch_bytes_ = bytes;
    }

    int device_ = 0;
    cudaDeviceProp prop_{};
    cudaStream_t stream_ = nullptr;
    std::unique_ptr<cuda::Gemm> gemm_;
#if SINKLAB_HAVE_CUDNN
    std::unique_ptr<cuda::CudnnAttention> cudnn_;
#endif
    void* stage_host_ = nullptr;
    void* stage_device_ = nullptr;
    void* scratch_ = nullptr;
    size_t scratch_bytes_ = 0;
    double* sum_partials_ = nullptr;
    double* sum_partials_host_ = nullptr;
    cudaEvent_t open_ = nullptr;
    std::vector<Mark> marks_;
    std::vector<cudaEvent_t> pool_;
};

}  // namespace

namespace {

// Without a driver cudaGetDeviceCount fails (error 35, not "no device") and leaves the count alone: any error
// means no GPU, and the sticky error is cleared so later calls start clean. Empty when a GPU is there.
const std::string& device_error() {
    static const std::string error = [] {
        int n = 0;
        if (const cudaError_t e = cudaGetDeviceCount(&n); e != cudaSuccess) {
            (void)cudaGetLastError();
            return fmt::format("cudaGetDeviceCount: {} ({})", cudaGetErrorString(e), int(e));
        }
        return n > 0 ? std::string() : std::string("CUDA sees no device");
    }();
    return error;
}

}  // namespace

bool cuda_device_present() { return device_error().empty(); }
std::string cuda_device_error() { return device_error(); }

uint64_t cuda_visible_gpus() {
    int n = 0;
    CUDA_CHECK(cudaGetDeviceCount(&n));
    std::vector<std::array<unsigned char, 16>> uuids(static_cast<size_t>(n));
    for (int d = 0; d < n; d++) {
        cudaDeviceProp prop{};
        CUDA_CHECK(cudaGetDeviceProperties(&prop, d));
        static_assert(sizeof(prop.uuid.bytes) == 16);
        std::memcpy(uuids[size_t(d)].data(), prop.uuid.bytes, 16);
    }
    return gpu_set_id(std::move(uuids));
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& opt) { return std::make_unique<CudaBackend>(opt); }

}  // namespace sinklab
