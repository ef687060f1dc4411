// Matmuls through cuBLASLt. Row-major X[r,c] is column-major X^T, so each row-major product is written as the
// column-major product of the transposes: out^T = W x^T (+ residual^T), dx^T = W^T dout^T, dW^T += x^T dout.
#include <compare>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "kernels/cuda/cuda_kernels.cuh"

namespace sinklab::cuda {
namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;

template <typename T> constexpr cudaDataType_t data_type();
template <> constexpr cudaDataType_t data_type<float>() { return CUDA_R_32F; }
template <> constexpr cudaDataType_t data_type<bf16>() { return CUDA_R_16BF; }

// The largest power of two (at most 256, cuBLASLt's default requirement) that divides the address.
uint32_t alignment(const void* p) {
    auto a = reinterpret_cast<uintptr_t>(p);
    uint32_t al = 256;
    while (al > 1 && a % al != 0) al /= 2;
    return al;
}

const char* type_name(cudaDataType_t t) { return t == CUDA_R_16BF ? "bf16" : "f32"; }

}  // namespace

struct Gemm::Impl {
    // Everything the algorithm choice depends on, pointer alignment included.
    struct Key {
        bool ta, tb;
        int64_t m, n, k, lda, ldb, ldd;
        cudaDataType_t ab, d;
        bool accumulate;
        uint32_t align_a, align_b, align_c, align_d;
        auto operator<=>(const Key&) const = default;
    };

    // The matmul as cuBLASLt sees it, for its errors: a status alone does not say which shape was refused.
    static std::string describe(const Key& k) {
        return fmt::format("D[{}, {}] {}= op(A) op(B) over k={} (A {}{} lda={}, B {}{} ldb={}, D {} ldd={}; aligned "
                           "A/B/C/D {}/{}/{}/{} bytes; column-major)",
                           k.m, k.n, k.accumulate ? "+" : "", k.k, type_name(k.ab), k.ta ? " transposed" : "", k.lda,
                           type_name(k.ab), k.tb ? " transposed" : "", k.ldb, type_name(k.d), k.ldd, k.align_a,
                           k.align_b, k.align_c, k.align_d);
    }

    static void check_matmul(cublasStatus_t s, std::string_view call, const Key& key) {
        if (s != CUBLAS_STATUS_SUCCESS)
            fail_internal(__FILE__, __LINE__,
                          fmt::format("{} failed for {}: {} ({})", call, describe(key), cublasLtGetStatusName(s),
                                      cublasLtGetStatusString(s)));
    }

    // cuBLASLt's descriptors, destroyed with whatever holds them: a plan, or plan() itself when a later call fails.
    template <typename Handle, cublasStatus_t (*destroy)(Handle)> struct Destroy {
        void operator()(Handle h) const { destroy(h); }
    };
    template <typename Handle, cublasStatus_t (*destroy)(Handle)>
    using Owned = std::unique_ptr<std::remove_pointer_t<Handle>, Destroy<Handle, destroy>>;
    using OpDesc = Owned<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>;
    using Layout = Owned<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>;
    using Preference = Owned<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>;

    struct Plan {
        OpDesc op;
        Layout a, b, d;
        cublasLtMatmulAlgo_t algo{};
    };

    cublasLtHandle_t handle = nullptr;
    void* workspace = nullptr;
    std::map<Key, Plan> plans;

    Impl() {
        CUBLAS_CHECK(cublasLtCreate(&handle));
        CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
    }
    ~Impl() {
        plans.clear();
        cudaFree(workspace);
        cublasLtDestroy(handle);
    }

    const Plan& plan(const Key& key) {
        auto it = plans.find(key);
        if (it != plans.end()) return it->second;
        Plan p;
        cublasLtMatmulDesc_t op = nullptr;
        check_matmul(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate", key);
        p.op.reset(op);
        cublasOperation_t ta = key.ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = key.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        check_matmul(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)),
                     "cublasLtMatmulDescSetAttribute(TRANSA)", key);
        check_matmul(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)),
                     "cublasLtMatmulDescSetAttribute(TRANSB)", key);
        // Layouts describe the stored (untransposed) column-major matrices.
        auto layout = [&](Layout& into, cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld) {
            cublasLtMatrixLayout_t l = nullptr;
            check_matmul(cublasLtMatrixLayoutCreate(&l, type, uint64_t(rows), uint64_t(cols), ld),
                         "cublasLtMatrixLayoutCreate", key);
            into.reset(l);
        };
        layout(p.a, key.ab, key.ta ? key.k : key.m, key.ta ? key.m : key.k, key.lda);
        layout(p.b, key.ab, key.tb ? key.n : key.k, key.tb ? key.k : key.n, key.ldb);
        layout(p.d, key.d, key.m, key.n, key.ldd);

        cublasLtMatmulPreference_t pref = nullptr;
        check_matmul(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate", key);
        const Preference owned_pref(pref);
        auto prefer = [&](cublasLtMatmulPreferenceAttributes_t attr, const auto& value, const char* name) {
            check_matmul(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)),
                         fmt::format("cublasLtMatmulPreferenceSetAttribute({})", name), key);
        };
        prefer(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, uint64_t(kWorkspaceBytes), "MAX_WORKSPACE_BYTES");
        prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a, "MIN_ALIGNMENT_A_BYTES");
        prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b, "MIN_ALIGNMENT_B_BYTES");
        prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c, "MIN_ALIGNMENT_C_BYTES");
        prefer(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d, "MIN_ALIGNMENT_D_BYTES");
        // A split-K algorithm may add its partial sums in D's type (INPLACE in D itself, OUTPUT_TYPE in the
        // workspace): for a bf16 D that rounds each partial to bf16 before their sum, where sinklab's precision
        // rules (and its CPU reference) round the f32 sum once. Partials in f32, or no split, for bf16 outputs.
        if (key.d == CUDA_R_16BF)
            prefer(CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, uint32_t(CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE),
                   "REDUCTION_SCHEME_MASK");
        cublasLtMatmulHeuristicResult_t result{};
        int found = 0;
        const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(handle, op, p.a.get(), p.b.get(), p.d.get(),
                                                                p.d.get(), pref, 1, &result, &found);
        if (s == CUBLAS_STATUS_SUCCESS && (found == 0 || result.state != CUBLAS_STATUS_SUCCESS))
            fail_internal(__FILE__, __LINE__,
                          fmt::format("cuBLASLt has no algorithm for {} ({})", describe(key),
                                      found == 0 ? "none found" : cublasLtGetStatusName(result.state)));
        check_matmul(s, "cublasLtMatmulAlgoGetHeuristic", key);
        p.algo = result.algo;
        return plans.emplace(key, std::move(p)).first->second;
    }

    // D[m,n] = op(A)[m,k] op(B)[k,n], plus C[m,n] (D's layout; it may be D itself) when C is not null;
    // column-major.
    void run(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* A, int64_t lda, const void* B,
             int64_t ldb, cudaDataType_t ab, const void* C, void* D, int64_t ldd, cudaDataType_t d, cudaStream_t st) {
        const bool accumulate = C != nullptr;
        if (m == 0 || n == 0 || (k == 0 && C == D)) return;
        const void* c = accumulate ? C : D;  // read only when beta != 0
        Key key{ta, tb, m, n, k, lda, ldb, ldd, ab, d, accumulate, alignment(A), alignment(B), alignment(c),
                alignment(D)};
        const Plan& p = plan(key);
        float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
        check_matmul(cublasLtMatmul(handle, p.op.get(), &alpha, A, p.a.get(), B, p.b.get(), &beta, c, p.d.get(), D,
                                    p.d.get(), &p.algo, workspace, kWorkspaceBytes, st),
                     "cublasLtMatmul", key);
    }
};

Gemm::Gemm() : impl_(std::make_unique<Impl>()) {}
Gemm::~Gemm() = default;

template <typename T>
void Gemm::fwd(T* out, const T* x, const T* W, const T* residual, int64_t N, int64_t I, int64_t O, cudaStream_t st) {
    // out^T[O,N] = (W^T[I,O])^T x^T[I,N] + residual^T[O,N]
    impl_->run(true, false, O, N, I, W, I, x, I, data_type<T>(), residual, out, O, data_type<T>(), st);
}

template <typename T>
void Gemm::bwd(T* dx, float* dW, const T* dout, const T* x, const T* W, int64_t N, int64_t I, int64_t O,
               cudaStream_t st) {
    // dx^T[I,N] = W^T[I,O] dout^T[O,N]
    if (dx) impl_->run(false, false, I, N, O, W, I, dout, O, data_type<T>(), nullptr, dx, I, data_type<T>(), st);
    // dW^T[I,O] += x^T[I,N] (dout^T[O,N])^T
    impl_->run(false, true, I, O, N, x, I, dout, O, data_type<T>(), dW, dW, I, CUDA_R_32F, st);
}

#define SL_INSTANTIATE(T)                                                                                  \
    template void Gemm::fwd<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t, cudaStream_t); \
    template void Gemm::bwd<T>(T*, float*, const T*, const T*, const T*, int64_t, int64_t, int64_t,        \
                               cudaStream_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(bf16)
#undef SL_INSTANTIATE

}  // namespace sinklab::cuda
