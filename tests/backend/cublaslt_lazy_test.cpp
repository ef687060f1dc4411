// src/backend/cublaslt_lazy.cu: the cuBLASLt functions sinklab calls reach the real library, which is loaded by the
// first of them. Descriptors and status names need no GPU, so this runs wherever CUDA was built.
#include <gtest/gtest.h>

#ifdef SINKLAB_HAVE_CUDA
#include <cublasLt.h>
#include <link.h>

#include <cstdint>
#include <cstring>

#include "backend/backend.h"
#endif

namespace sinklab::test {
namespace {

#ifdef SINKLAB_HAVE_CUDA
bool cublaslt_loaded() {
    return dl_iterate_phdr(
               [](dl_phdr_info* info, size_t, void*) {
                   const char* slash = std::strrchr(info->dlpi_name, '/');
                   return int(std::strncmp(slash ? slash + 1 : info->dlpi_name, "libcublasLt.so", 14) == 0);
               },
               nullptr) != 0;
}
#endif

TEST(CudaCublasLt, CallsReachTheLibraryLoadedByTheFirst) {
#ifndef SINKLAB_HAVE_CUDA
    GTEST_SKIP() << "built without CUDA";
#else
    // ctest runs each test in a process of its own; in one process for all (the GPU check) others may load it first.
    if (::testing::UnitTest::GetInstance()->test_to_run_count() == 1) {
        EXPECT_FALSE(cublaslt_loaded());
    }
    EXPECT_STREQ(cublasLtGetStatusName(CUBLAS_STATUS_NOT_INITIALIZED), "CUBLAS_STATUS_NOT_INITIALIZED");
    EXPECT_TRUE(cublaslt_loaded());
    EXPECT_STRNE(cublasLtGetStatusString(CUBLAS_STATUS_INVALID_VALUE), "");

    // Each argument arrives: the library refuses an attribute whose size is not its type's.
    cublasLtMatmulDesc_t desc = nullptr;
    ASSERT_EQ(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
    const int32_t trans = CUBLAS_OP_T;
    EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof trans),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, 1),
              CUBLAS_STATUS_INVALID_VALUE);
    cublasLtMatmulPreference_t pref = nullptr;
    ASSERT_EQ(cublasLtMatmulPreferenceCreate(&pref), CUBLAS_STATUS_SUCCESS);
    const uint64_t workspace = 1 << 20;
    EXPECT_EQ(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                   sizeof workspace),
              CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, 4),
              CUBLAS_STATUS_INVALID_VALUE);
    cublasLtMatrixLayout_t layout = nullptr;
    ASSERT_EQ(cublasLtMatrixLayoutCreate(&layout, CUDA_R_16BF, 64, 32, 64), CUBLAS_STATUS_SUCCESS);

    // Without a handle, the calls that need one say so.
    cublasLtMatmulHeuristicResult_t result{};
    int found = -1;
    EXPECT_EQ(cublasLtMatmulAlgoGetHeuristic(nullptr, desc, layout, layout, layout, layout, pref, 1, &result, &found),
              CUBLAS_STATUS_NOT_INITIALIZED);
    EXPECT_EQ(cublasLtMatmul(nullptr, desc, nullptr, nullptr, layout, nullptr, layout, nullptr, nullptr, layout,
                             nullptr, layout, nullptr, nullptr, 0, nullptr),
              CUBLAS_STATUS_NOT_INITIALIZED);
    EXPECT_EQ(cublasLtDestroy(nullptr), CUBLAS_STATUS_INVALID_VALUE);

    // A handle needs a GPU.
    cublasLtHandle_t handle = nullptr;
    const cublasStatus_t created = cublasLtCreate(&handle);
    if (cuda_available()) {
        EXPECT_EQ(created, CUBLAS_STATUS_SUCCESS);
        EXPECT_EQ(cublasLtDestroy(handle), CUBLAS_STATUS_SUCCESS);
    } else {
        EXPECT_NE(created, CUBLAS_STATUS_SUCCESS);
    }

    EXPECT_EQ(cublasLtMatrixLayoutDestroy(layout), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasLtMatmulPreferenceDestroy(pref), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasLtMatmulDescDestroy(desc), CUBLAS_STATUS_SUCCESS);
#endif
}

}  // namespace
}  // namespace sinklab::test
