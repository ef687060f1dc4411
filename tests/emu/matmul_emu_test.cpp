// kernels/cuda/matmul.cu against the cuBLASLt stand-in's refusals (tests/emu/include/cublasLt.h), which a GPU shows
// only when its cuBLASLt happens to refuse: a matmul it has no algorithm for, and pointers less aligned than an
// algorithm chosen for others. The products themselves are CudaOps.Matmul*'s, on the emulator and the GPU alike.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/check.h"
#include "kernels/cuda/cuda_kernels.cuh"
#include "test_util.h"

namespace sinklab {
namespace {

// Device buffers of floats, all 1, freed at the end.
struct Buffers {
    std::vector<float*> all;
    float* make(size_t n) {
        float* p = nullptr;
        CUDA_CHECK(cudaMalloc(&p, (n + 64) * sizeof(float)));
        std::vector<float> ones(n + 64, 1.f);
        CUDA_CHECK(cudaMemcpyAsync(p, ones.data(), ones.size() * sizeof(float), cudaMemcpyHostToDevice));
        all.push_back(p);
        return p;
    }
    ~Buffers() {
        for (float* p : all) cudaFree(p);
    }
};

// The error names the matmul as cuBLASLt saw it, which its status alone does not.
TEST(EmuMatmul, ARefusedMatmulIsNamedByItsShape) {
    const int64_t N = 5, I = 24, O = 40;
    Buffers buf;
    float *x = buf.make(N * I), *W = buf.make(O * I), *out = buf.make(N * O);
    cuda::Gemm gemm;
    emu::refuse_matmuls_with_rows(O);
    const std::string e = test::error_of([&] { gemm.fwd<float>(out, x, W, nullptr, N, I, O, nullptr); });
    emu::refuse_matmuls_with_rows(-1);
    EXPECT_NE(e.find("cublasLtMatmulAlgoGetHeuristic failed for D[40, 5] = op(A) op(B) over k=24 (A f32 transposed "
                     "lda=24, B f32 ldb=24, D f32 ldd=40; aligned A/B/C/D 256/256/256/256 bytes; column-major): "
                     "CUBLAS_STATUS_NOT_SUPPORTED"),
              std::string::npos)
        << e;
    gemm.fwd<float>(out, x, W, nullptr, N, I, O, nullptr);  // found again once allowed
}

// An algorithm is chosen for the alignment of the pointers it first ran on: operands at an offset into a buffer
// must get one of their own, or cuBLASLt may run one that reads them as aligned as the first.
TEST(EmuMatmul, OperandsLessAlignedGetAnAlgorithmOfTheirOwn) {
    const int64_t N = 3, I = 16, O = 8;
    Buffers buf;
    float *x = buf.make(N * I), *W = buf.make(O * I), *out = buf.make(N * O);
    cuda::Gemm gemm;
    gemm.fwd<float>(out, x, W, nullptr, N, I, O, nullptr);
    for (int shift : {1, 2, 4}) {
        SCOPED_TRACE("shift " + std::to_string(shift));
        gemm.fwd<float>(out + shift, x + shift, W + shift, nullptr, N, I, O, nullptr);
        std::vector<float> got(size_t(N * O));
        CUDA_CHECK(cudaMemcpyAsync(got.data(), out + shift, got.size() * sizeof(float), cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaStreamSynchronize(nullptr));
        for (float v : got) ASSERT_EQ(v, float(I));
    }
}

}  // namespace
}  // namespace sinklab
