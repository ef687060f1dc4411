// Linear layers through OpenBLAS: out = x W^T (+ residual), dx = dout W, dW += dout^T x.
#include <cblas.h>

#include <algorithm>

#include "kernels/cpu/cpu_kernels.h"

namespace sinklab::cpu {
namespace {

// Row-major C[M,N] = alpha op(A) op(B) + beta C, one name for both precisions.
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1.f, A, lda, B, ldb, beta, C, ldc);
}
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda,
          const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
    cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, 1.0, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

// out [N, O] (=, or residual + when residual [N, O] is given; it may alias out); x [N, I]; W [O, I]
template <typename T>
void matmul_fwd(T* out, const T* x, const T* W, int64_t N, int64_t I, int64_t O, const T* residual) {
    if (residual && residual != out) std::copy_n(residual, N * O, out);
    gemm(CblasNoTrans, CblasTrans, N, O, I, x, I, W, I, residual ? T(1) : T(0), out, O);
}

// dx [N, I] (=, skipped when null); dW [O, I] (+=); dout [N, O]
template <typename T>
void matmul_bwd(T* dx, T* dW, const T* dout, const T* x, const T* W, int64_t N, int64_t I, int64_t O) {
    if (dx) gemm(CblasNoTrans, CblasNoTrans, N, I, O, dout, O, W, I, T(0), dx, I);
    gemm(CblasTrans, CblasNoTrans, O, I, N, dout, O, x, I, T(1), dW, I);
}

#define SL_INSTANTIATE(T)                                                                     \
    template void matmul_fwd<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, const T*); \
    template void matmul_bwd<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);
SL_INSTANTIATE(float)
SL_INSTANTIATE(double)
#undef SL_INSTANTIATE

}  // namespace sinklab::cpu
