// cuBLASLt, loaded when a GPU run creates its handle instead of when the process starts. Linked, its ~6,500 static
// constructors register every kernel it ships at the start of every sinklab process, GPU or none: 0.26 s and 210 MB
// of memory each with CUDA 13.0, paid by `sinklab compare` on a login node and by each of the test suite's
// processes. These are the cuBLASLt functions sinklab calls (the build links no libcublasLt, so one missing here
// fails the link); each passes its arguments to the library's own, found by dlsym on first use.
#include <cublasLt.h>
#include <dlfcn.h>

#include "core/check.h"

#define SL_STRINGIFY(x) #x
#define SL_SONAME(major) "libcublasLt.so." SL_STRINGIFY(major)

namespace sinklab {
namespace {

// The major version the headers are of: its soname, as the linker would have recorded it. A literal, so that
// scripts/gpu_check.sh can read it from the carried binary to check that the GPU machine has it.
constexpr char kSoname[] = SL_SONAME(CUBLAS_VER_MAJOR);

void* library() {
    static void* const handle = [] {
        void* h = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
        SL_REQUIRE(h, "cannot load {}, the cuBLASLt this sinklab was built against ({}); put the folder that holds it "
                      "on LD_LIBRARY_PATH",
                   kSoname, ::dlerror());
        return h;
    }();
    return handle;
}

// The library's definition of `name` (dlsym on its handle: never these forwarders).
template <typename Fn> Fn real(const char* name) {
    void* f = ::dlsym(library(), name);
    SL_REQUIRE(f, "{} has no {}: it is older than the cuBLASLt this sinklab was built against", kSoname, name);
    return reinterpret_cast<Fn>(f);
}

}  // namespace
}  // namespace sinklab

// decltype(&fn) is the header's declaration: a definition below with other parameters would be a second overload,
// and taking its address here would not compile.
#define SL_REAL(fn)                                                                    \
    (*[] {                                                                             \
        static const auto f = ::sinklab::real<decltype(&fn)>(SL_STRINGIFY(fn));        \
        return f;                                                                      \
    }())

const char* cublasLtGetStatusName(cublasStatus_t status) { return SL_REAL(cublasLtGetStatusName)(status); }
const char* cublasLtGetStatusString(cublasStatus_t status) { return SL_REAL(cublasLtGetStatusString)(status); }

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) { return SL_REAL(cublasLtCreate)(handle); }
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) { return SL_REAL(cublasLtDestroy)(handle); }

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
    return SL_REAL(cublasLtMatmulDescCreate)(desc, compute, scale);
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) { return SL_REAL(cublasLtMatmulDescDestroy)(desc); }
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
    return SL_REAL(cublasLtMatmulDescSetAttribute)(desc, attr, buf, size);
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    return SL_REAL(cublasLtMatrixLayoutCreate)(layout, type, rows, cols, ld);
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    return SL_REAL(cublasLtMatrixLayoutDestroy)(layout);
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    return SL_REAL(cublasLtMatmulPreferenceCreate)(pref);
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    return SL_REAL(cublasLtMatmulPreferenceDestroy)(pref);
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
    return SL_REAL(cublasLtMatmulPreferenceSetAttribute)(pref, attr, buf, size);
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
    return SL_REAL(cublasLtMatmulAlgoGetHeuristic)(handle, desc, a, b, c, d, pref, requested, results, returned);
}
cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b, const void* beta,
                              const void* C, cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream) {
    return SL_REAL(cublasLtMatmul)(handle, desc, alpha, A, a, B, b, beta, C, c, D, d, algo, workspace,
                                   workspace_bytes, stream);
}
