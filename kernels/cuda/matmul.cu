// Matmuls through cuBLASLt. Row-major X[r,c] is column-major X^T, so each row-major product is written as the
// column-major product of the transposes: out^T = W x^T (+ residual^T), dx^T = W^T dout^T, dW^T += x^T dout.
#include <compare>
#include <map>

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
    struct Plan {
        cublasLtMatmulDesc_t op = nullptr;
        cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
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
        for (auto& [key, plan] : plans) {
            cublasLtMatrixLayoutDestroy(plan.a);
            cublasLtMatrixLayoutDestroy(plan.b);
            cublasLtMatrixLayoutDestroy(plan.d);
            cublasLtMatmulDescDestroy(plan.op);
        }
        cudaFree(workspace);
        cublasLtDestroy(handle);
    }

    const Plan& plan(const Key& key) {
        auto it = plans.find(key);
        if (it != plans.end()) return it->second;
        Plan p;
        CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        cublasOperation_t ta = key.ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = key.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
        // Layouts describe the stored (untransposed) column-major matrices.
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, key.ab, key.ta ? key.k : key.m, key.ta ? key.m : key.k, key.lda));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, key.ab, key.tb ? key.n : key.k, key.tb ? key.k : key.n, key.ldb));
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, key.d, key.m, key.n, key.ldd));

        cublasLtMatmulPreference_t pref = nullptr;
        CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        uint64_t ws = kWorkspaceBytes;
        CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                          sizeof(ws)));
        for (auto [attr, al] : {std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align_a},
                                std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align_b},
                                std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align_c},
                                std::pair{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align_d}})
            CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &al, sizeof(al)));
        cublasLtMatmulHeuristicResult_t result{};
        int found = 0;
        CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, p.op, p.a, p.b, p.d, p.d, pref, 1, &result, &found));
        cublasLtMatmulPreferenceDestroy(pref);
        SL_ASSERT(found > 0, "cuBLASLt has no algorithm for m={} n={} k={} (ta={} tb={})", key.m, key.n, key.k,
                  key.ta, key.tb);
        p.algo = result.algo;
        return plans.emplace(key, p).first->second;
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
        CUBLAS_CHECK(cublasLtMatmul(handle, p.op, &alpha, A, p.a, B, p.b, &beta, c, p.d, D, p.d, &p.algo, workspace,
                                    kWorkspaceBytes, st));
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
