// Stands in for cuBLASLt's header in tests/emu: only the status type that kernels/cuda/common.cuh names.
#pragma once

enum cublasStatus_t { CUBLAS_STATUS_SUCCESS = 0 };
inline const char* cublasLtGetStatusName(cublasStatus_t) { return "CUBLAS_STATUS_SUCCESS"; }
inline const char* cublasLtGetStatusString(cublasStatus_t) { return "success"; }
