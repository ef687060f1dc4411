// The CPU backend: f32 (training) or f64 (gradient checks) through kernels/cpu.
#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <cstring>

#include "backend/backend.h"
#include "kernels/cpu/cpu_kernels.h"

extern "C" void openblas_set_num_threads(int);

namespace sinklab {
namespace {

using Clock = std::chrono::steady_clock;

template <typename T> void convert_copy(T* dst, const void* src, DType src_dtype, int64_t n) {
    switch (src_dtype) {
        case DType::F32: for (int64_t i = 0; i < n; i++) dst[i] = T(static_cast<const float*>(src)[i]); break;
        case DType::F64: for (int64_t i = 0; i < n; i++) dst[i] = T(static_cast<const double*>(src)[i]); break;
        case DType::BF16:
            for (int64_t i = 0; i < n; i++) dst[i] = T(bf16_bits_to_float(static_cast<const uint16_t*>(src)[i]));
            break;
        case DType::I32: SL_ASSERT(false, "float copy from i32");
    }
}

// Converts n elements between any two float dtypes (or copies i32 to i32).
void copy_any(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n) {
    if (dst_dtype == src_dtype) {
        std::memcpy(dst, src, size_t(n) * dtype_size(dst_dtype));
        return;
    }
    switch (dst_dtype) {
        case DType::F32: convert_copy(static_cast<float*>(dst), src, src_dtype, n); break;
        case DType::F64: convert_copy(static_cast<double*>(dst), src, src_dtype, n); break;
        case DType::BF16: {
            auto* d = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; i++) {
                float f = src_dtype == DType::F32 ? static_cast<const float*>(src)[i]
                                                  : float(static_cast<const double*>(src)[i]);
                d[i] = float_to_bf16_bits(f);
            }
            break;
        }
        case DType::I32: SL_ASSERT(false, "i32 copy from {}", dtype_name(src_dtype));
    }
}

template <typename T> T* p(const Tensor& t) { return t.empty() ? nullptr : t.ptr<T>(); }

class CpuBackend final : public Backend {
public:
    CpuBackend(DType compute, int threads) : Backend(compute) {
        SL_ASSERT(compute == DType::F32 || compute == DType::F64, "the CPU backend computes in f32 or f64, not {}",
                  dtype_name(compute));
        threads_ = use_host_threads(threads);
    }

    std::string name() const override { return "cpu"; }
    std::string device_name() const override { return fmt::format("CPU ({} threads)", threads_); }
    bool host_memory() const override { return true; }

    void* do_alloc(size_t bytes) override {
        // aligned_alloc takes whole multiples of the alignment; rounding a size near SIZE_MAX up would wrap.
        void* ptr = bytes <= SIZE_MAX - 63 ? std::aligned_alloc(64, (bytes + 63) / 64 * 64) : nullptr;
        SL_REQUIRE(ptr,
                   "out of host memory allocating {:.1f} GiB: the model or batch is too large for this machine; "
                   "`sinklab info CONFIG` shows the memory a run needs: lower model.* sizes or train.micro_batch / "
                   "model.seq_len",
                   double(bytes) / double(1 << 30));
        std::memset(ptr, 0, bytes);
        return ptr;
    }
    void do_release(void* ptr) override { std::free(ptr); }
    void synchronize() override {}

protected:
    // Every op dispatches on the compute dtype to the f32 or f64 kernel.
    template <typename F> void dispatch(F&& f) {
        if (compute_dtype() == DType::F64)
            f(double{});
        else
            f(float{});
    }

    std::string attention_impl_note(const std::string& impl) const override {
        if (impl == "sinklab") return "";
        return fmt::format("attention.impl: {} is a CUDA implementation; the CPU backend computes the same attention "
                           "with its own kernels",
                           impl);
    }
    void do_write(Tensor dst, const void* host, DType hd) override {
        copy_any(dst.data, dst.dtype, host, hd, dst.numel());
    }
    void do_read(void* host, DType hd, Tensor src) override { copy_any(host, hd, src.data, src.dtype, src.numel()); }
    void do_zero(Tensor t) override { std::memset(t.data, 0, t.bytes()); }
    void do_convert(Tensor dst, Tensor src) override {
        copy_any(dst.data, dst.dtype, src.data, src.dtype, src.numel());
    }
    void do_scale(Tensor x, float s) override {
        if (x.dtype == DType::F64)
            cpu::scale(x.ptr<double>(), s, x.numel());
        else
            cpu::scale(x.ptr<float>(), s, x.numel());
    }

    void do_embedding_fwd(Tensor out, Tensor ids, Tensor wte) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::embedding_fwd(p<T>(out), p<int32_t>(ids), p<T>(wte), ids.numel(), wte.dim(0), wte.dim(1));
        });
    }
    void do_embedding_bwd(Tensor dwte, Tensor ids, Tensor dout) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::embedding_bwd(p<T>(dwte), p<int32_t>(ids), p<T>(dout), ids.numel(), dwte.dim(0), dwte.dim(1));
        });
    }
    void do_rmsnorm_fwd(Tensor out, Tensor rstd, Tensor x, Tensor g, float eps) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::rmsnorm_fwd(p<T>(out), p<T>(rstd), p<T>(x), p<T>(g), x.dim(0), x.dim(1), eps);
        });
    }
    void do_rmsnorm_bwd(Tensor dx, Tensor dg, Tensor dout, Tensor x, Tensor g, Tensor rstd, bool accumulate) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::rmsnorm_bwd(p<T>(dx), p<T>(dg), p<T>(dout), p<T>(x), p<T>(g), p<T>(rstd), x.dim(0), x.dim(1),
                             accumulate);
        });
    }
    void do_matmul_fwd(Tensor out, Tensor x, Tensor W, Tensor residual) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::matmul_fwd(p<T>(out), p<T>(x), p<T>(W), x.numel() / x.dim(-1), x.dim(-1), W.dim(0),
                            p<T>(residual));
        });
    }
    void do_matmul_bwd(Tensor dx, Tensor dW, Tensor dout, Tensor x, Tensor W) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::matmul_bwd(p<T>(dx), p<T>(dW), p<T>(dout), p<T>(x), p<T>(W), x.numel() / x.dim(-1), x.dim(-1),
                            W.dim(0));
        });
    }
    void do_rope(Tensor qkv, const AttnSpec& s, float theta, int pos0, bool inverse) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::rope(p<T>(qkv), s, theta, pos0, inverse);
        });
    }
    void do_attention_fwd(Tensor o, Tensor lse, Tensor qkv, Tensor sink, const AttnSpec& s) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::attention_fwd(p<T>(o), p<T>(lse), p<T>(qkv), p<T>(sink), s);
        });
    }
    void do_attention_bwd(Tensor dqkv, Tensor dsink, Tensor dout, Tensor o, Tensor lse, Tensor qkv, Tensor sink,
                          const AttnSpec& s, Tensor rowdot) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::attention_bwd(p<T>(dqkv), p<T>(dsink), p<T>(dout), p<T>(o), p<T>(lse), p<T>(qkv), p<T>(sink), s,
                               p<T>(rowdot));
        });
    }
    void do_headnorm_fwd(Tensor out, Tensor rstd, Tensor x, Tensor g, float eps) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::headnorm_fwd(p<T>(out), p<T>(rstd), p<T>(x), p<T>(g), x.dim(0), x.dim(1), x.dim(2), g.ndim == 2,
                              eps);
        });
    }
    void do_headnorm_bwd(Tensor dx, Tensor dg, Tensor dout, Tensor x, Tensor g, Tensor rstd,
                         Tensor rowdot) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::headnorm_bwd(p<T>(dx), p<T>(dg), p<T>(dout), p<T>(x), p<T>(g), p<T>(rstd), x.dim(0), x.dim(1),
                              x.dim(2), g.ndim == 2, p<T>(rowdot), rowdot.empty() ? 0 : rowdot.dim(2));
        });
    }
    void do_qknorm_fwd(Tensor out, Tensor rstd, Tensor in, Tensor gq, Tensor gk, const AttnSpec& s,
                       float eps) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::qknorm_fwd(p<T>(out), p<T>(rstd), p<T>(in), p<T>(gq), p<T>(gk), s, eps);
        });
    }
    void do_qknorm_bwd(Tensor din, Tensor dgq, Tensor dgk, Tensor dout, Tensor in, Tensor gq, Tensor gk,
                       Tensor rstd, const AttnSpec& s) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::qknorm_bwd(p<T>(din), p<T>(dgq), p<T>(dgk), p<T>(dout), p<T>(in), p<T>(gq), p<T>(gk),
                            p<T>(rstd), s);
        });
    }
    void do_gate_fwd(Tensor out, Tensor x, Tensor logit) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::gate_fwd(p<T>(out), p<T>(x), p<T>(logit), x.dim(0), x.dim(1), x.dim(2), logit.dim(1) != x.dim(1));
        });
    }
    void do_gate_bwd(Tensor dx, Tensor dlogit, Tensor dout, Tensor x, Tensor logit) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::gate_bwd(p<T>(dx), p<T>(dlogit), p<T>(dout), p<T>(x), p<T>(logit), x.dim(0), x.dim(1), x.dim(2),
                          logit.dim(1) != x.dim(1));
        });
    }
    void do_amplify_fwd(Tensor out, Tensor x, int k, float lambda, int n_mean) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::amplify_fwd(p<T>(out), p<T>(x), x.dim(0), x.dim(1), x.dim(2), k, lambda, n_mean);
        });
    }
    void do_amplify_bwd(Tensor dx, Tensor dout, int k, float lambda) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::amplify_bwd(p<T>(dx), p<T>(dout), dout.dim(0), dout.dim(1), dout.dim(2), k, lambda);
        });
    }
    void do_swiglu_fwd(Tensor out, Tensor ab, Tensor rest_max) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            float* mx = rest_max.empty() ? nullptr : p<float>(rest_max);
            cpu::swiglu_fwd(p<T>(out), p<T>(ab), out.numel() / out.dim(-1), out.dim(-1), mx, mx ? out.dim(1) : 1);
        });
    }
    void do_swiglu_bwd(Tensor dab, Tensor dout, Tensor ab) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::swiglu_bwd(p<T>(dab), p<T>(dout), p<T>(ab), dout.numel() / dout.dim(-1), dout.dim(-1));
        });
    }
    void do_add(Tensor out, Tensor a, Tensor b) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::add(p<T>(out), p<T>(a), p<T>(b), out.numel());
        });
    }
    void do_cross_entropy(Tensor loss, Tensor dlogits, Tensor logits, Tensor targets, float scale) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::cross_entropy(p<T>(loss), p<T>(dlogits), p<T>(logits), p<int32_t>(targets),
                               logits.numel() / logits.dim(-1), logits.dim(-1), scale);
        });
    }
    void do_adamw(Tensor master, Tensor pw, Tensor m, Tensor v, Tensor g, const AdamWStep& h) override {
        SL_ASSERT(master.empty(), "the CPU backend keeps no master copy");
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::adamw(p<T>(pw), p<T>(m), p<T>(v), p<T>(g), pw.numel(), h);
        });
    }
    double do_sum_squares(Tensor g) override {
        return g.dtype == DType::F64 ? cpu::sum_squares(g.ptr<double>(), g.numel())
                                     : cpu::sum_squares(g.ptr<float>(), g.numel());
    }

    void do_attn_mass(Tensor out, Tensor qkv, Tensor lse, const std::vector<int>& positions,
                      const AttnSpec& s) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::attn_mass(p<float>(out), p<T>(qkv), p<T>(lse), positions.data(), int(positions.size()), s);
        });
    }
    void do_attn_map(Tensor out, Tensor qkv, Tensor lse, const AttnSpec& s) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::attn_map(p<float>(out), out.dim(0), p<T>(qkv), p<T>(lse), s);
        });
    }
    void do_position_std(Tensor out, Tensor x) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::position_std(p<float>(out), out.dim(0), p<T>(x), x.dim(0), x.dim(1), x.dim(2));
        });
    }
    void do_token0_stats(Tensor out, Tensor x) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::token0_stats(p<float>(out), p<T>(x), x.dim(0), x.dim(1), x.dim(2));
        });
    }
    void do_token0_norm_ratio(Tensor out, Tensor rstd, float eps) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            cpu::token0_norm_ratio(p<float>(out), p<T>(rstd), rstd.dim(0), rstd.dim(1), eps);
        });
    }
    void do_abs_max_median(Tensor out, const std::vector<Tensor>& xs) override {
        dispatch([&](auto z) {
            using T = decltype(z);
            for (size_t k = 0; k < xs.size(); k++)
                cpu::abs_max_median(p<float>(out) + 2 * k, p<T>(xs[k]), xs[k].numel());
        });
    }

    void prof_begin(OpFamily) override { t0_ = Clock::now(); }
    void prof_end(OpFamily f) override {
        prof_[size_t(f)] += std::chrono::duration<double>(Clock::now() - t0_).count();
    }
    std::array<double, size_t(OpFamily::kCount)> prof_collect() override {
        auto r = prof_;
        prof_.fill(0.0);
        return r;
    }

private:
    int threads_ = 1;
    Clock::time_point t0_;
    std::array<double, size_t(OpFamily::kCount)> prof_{};
};

}  // namespace

int use_host_threads(int threads) {
    if (threads > 0) omp_set_num_threads(threads);
    // OpenBLAS gets the same threads; its own pool would oversubscribe the cores under MPI.
    openblas_set_num_threads(omp_get_max_threads());
    return omp_get_max_threads();
}

std::unique_ptr<Backend> make_cpu_backend(DType compute, int threads) {
    return std::make_unique<CpuBackend>(compute, threads);
}

}  // namespace sinklab
