// kernels/cuda/matmul.cu against the cuBLASLt stand-in's refusals (tests/emu/include/cublasLt.h), which a GPU shows
// only when its cuBLASLt happens to refuse: a matmul it has no algorithm for, and pointers less aligned than an
// algorithm chosen for others. The products themselves are CudaOps.Matmul*'s, on the emulator and the GPU alike.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/check.h"
#include "cuda/device_array.cuh"
#include "kernels/cuda/cuda_kernels.cuh"
#include "test_util.h"

namespace sinklab {
namespace {

// n floats of 1 on the device, and 64 more: room for operands at an offset.
struct Ones : test::DeviceArray<float> {
    explicit Ones(size_t n) : DeviceArray(n + 64) {
        const std::vector<float> ones(n + 64, 1.f);
        CUDA_CHECK(cudaMemcpyAsync(p, ones.data(), ones.size() * sizeof(float), cudaMemcpyHostToDevice));
    }
};

// The error names the matmul as cuBLASLt saw it, which its status alone does not.
TEST(EmuMatmul, ARefusedMatmulIsNamedByItsShape) {
    const int64_t N = 5, I = 24, O = 40;
    const Ones xs(N * I), Ws(O * I), outs(N * O);
    float *x = xs.p, *W = Ws.p, *out = outs.p;
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
    const Ones xs(N * I), Ws(O * I), outs(N * O);
    float *x = xs.p, *W = Ws.p, *out = outs.p;
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
