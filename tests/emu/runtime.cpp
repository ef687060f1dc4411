// The CUDA runtime and cuBLASLt calls of tests/emu/include, on host memory.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <unistd.h>

#include "core/check.h"
#include "core/dtype.h"
#include "emu.h"

using sinklab::emu::kDeviceBytes;

struct CUstream_st {
    std::deque<std::function<void()>> work;  // queued, in order
};
struct CUevent_st {
    std::chrono::steady_clock::time_point at;
    bool done = false;  // its record has run
};

namespace sinklab::emu {
namespace {

bool eager_from_environment() {
    const char* v = std::getenv("SINKLAB_EMU_STREAMS");
    const std::string mode = v ? v : "deferred";
    if (mode != "eager" && mode != "deferred")
        throw Error(fmt::format("SINKLAB_EMU_STREAMS={}: expected eager or deferred", mode));
    return mode == "eager";
}

bool& eager() {
    static bool e = eager_from_environment();
    return e;
}

std::set<CUstream_st*>& streams() {
    static auto* s = new std::set<CUstream_st*>;
    return *s;
}

void drain(CUstream_st* st) {
    while (!st->work.empty()) {
        std::function<void()> work = std::move(st->work.front());
        st->work.pop_front();
        try {
            work();
        } catch (...) {
            st->work.clear();
            throw;
        }
    }
}

void drain_all() {
    for (CUstream_st* st : streams()) drain(st);
}

// cudaMallocHost's allocations (start -> bytes): asynchronous copies to or from them stay queued.
std::map<const char*, size_t>& pinned() {
    static auto* m = new std::map<const char*, size_t>;
    return *m;
}

bool is_pinned(const void* p) {
    const auto* c = static_cast<const char*>(p);
    auto it = pinned().upper_bound(c);
    if (it == pinned().begin()) return false;
    --it;
    return c < it->first + it->second;
}

}  // namespace

bool device_accessible(const void* p) { return in_device_memory(p) || is_pinned(p); }

void enqueue(CUstream_st* stream, std::function<void()> work) {
    if (!stream || eager()) return work();
    stream->work.push_back(std::move(work));
}
void set_streams_eager(bool e) {
    drain_all();
    eager() = e;
}
bool streams_eager() { return eager(); }

}  // namespace sinklab::emu

using sinklab::emu::drain;
using sinklab::emu::drain_all;
using sinklab::emu::enqueue;

cudaError_t cudaGetLastError() { return cudaSuccess; }
const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        default: return "cudaErrorInvalidValue";
    }
}
const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorNotReady: return "device not ready";
        default: return "invalid argument";
    }
}
cudaError_t cudaGetDeviceCount(int* n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : cudaErrorInvalidValue; }
cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
    *prop = cudaDeviceProp{};
    std::strcpy(prop->name, "emulated sm_90 (tests/emu)");
    const int64_t owner = sinklab::emu::device_shared() ? 0 : int64_t(getpid());
    std::memcpy(prop->uuid.bytes, &owner, sizeof owner);
    prop->major = 9, prop->minor = 0, prop->multiProcessorCount = 132;
    prop->totalGlobalMem = kDeviceBytes;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    *free_bytes = kDeviceBytes - sinklab::emu::device_allocated(), *total_bytes = kDeviceBytes;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t bytes) {
    *p = sinklab::emu::device_alloc(bytes);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) {
    drain_all();
    return !p || sinklab::emu::device_free(p) ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
    *p = std::malloc(bytes ? bytes : 1);
    if (!*p) return cudaErrorMemoryAllocation;
    sinklab::emu::pinned()[static_cast<const char*>(*p)] = bytes;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
    drain_all();
    sinklab::emu::pinned().erase(static_cast<const char*>(p));
    std::free(p);
    return cudaSuccess;
}
// Pageable host memory: a copy from it has read it on return, and a copy into it has landed (CUDA's "API
// synchronization behavior"); both after the stream's earlier work.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t st) {
    using sinklab::emu::in_device_memory;
    // The kind names which side is the device's; CUDA refuses (or faults on) host memory there.
    const bool to_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool from_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (bytes > 0 && ((to_device && !in_device_memory(dst)) || (from_device && !in_device_memory(src))))
        return cudaErrorInvalidValue;
    const bool pageable = (kind == cudaMemcpyHostToDevice && !sinklab::emu::is_pinned(src)) ||
                          (kind == cudaMemcpyDeviceToHost && !sinklab::emu::is_pinned(dst));
    if (pageable && st) drain(st);
    enqueue(pageable ? nullptr : st, [=] { std::memmove(dst, src, bytes); });
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t st) {
    if (bytes > 0 && !sinklab::emu::in_device_memory(p)) return cudaErrorInvalidValue;
    enqueue(st, [=] { std::memset(p, value, bytes); });
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* st, unsigned) {
    *st = new CUstream_st;
    sinklab::emu::streams().insert(*st);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t st) {
    drain(st);  // a destroyed stream's queued work still runs
    sinklab::emu::streams().erase(st);
    delete st;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t st) {
    if (st) drain(st);
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* ev) {
    *ev = new CUevent_st;
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t ev) {
    delete ev;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t st) {
    ev->done = false;
    enqueue(st, [ev] { ev->at = std::chrono::steady_clock::now(), ev->done = true; });
    return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    if (!start->done || !end->done) return cudaErrorNotReady;
    *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
    return cudaSuccess;
}

// ---- cuBLASLt ---------------------------------------------------------------------------------------------------
struct cublasLtContext {};
struct cublasLtMatmulDescOpaque_t {
    cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
};
struct cublasLtMatrixLayoutOpaque_t {
    cudaDataType_t type;
    int64_t rows, cols, ld;
    bool operator==(const cublasLtMatrixLayoutOpaque_t&) const = default;
};
// cuBLASLt's defaults: no workspace, every reduction scheme, 256-byte alignment.
struct cublasLtMatmulPreferenceOpaque_t {
    uint64_t workspace = 0;
    uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_MASK;
    uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D
};

namespace {

// What the heuristic chose, in the algorithm's opaque words.
enum AlgoWord { kMagic, kSplitInOutputType, kAlignA, kAlignB, kAlignC, kAlignD, kWorkspace };
constexpr uint64_t kAlgoMagic = 0x5e1ec7ed;
int64_t refused_rows = -1;

uint32_t alignment_of(const void* p) {
    const auto a = reinterpret_cast<uintptr_t>(p);
    return a == 0 ? 256 : uint32_t(std::min<uintptr_t>(a & (~a + 1), 256));
}

}  // namespace

void sinklab::emu::refuse_matmuls_with_rows(int64_t m) { refused_rows = m; }

const char* cublasLtGetStatusName(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        default: return "CUBLAS_STATUS_INVALID_VALUE";
    }
}
const char* cublasLtGetStatusString(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "success";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
        default: return "an invalid value was used as an argument";
    }
}
cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) {
    *h = new cublasLtContext;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
    if (compute != CUBLAS_COMPUTE_32F || scale != CUDA_R_32F) return CUBLAS_STATUS_INVALID_VALUE;
    *d = new cublasLtMatmulDescOpaque_t;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
    delete d;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t bytes) {
    if (bytes != sizeof(cublasOperation_t)) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr != CUBLASLT_MATMUL_DESC_TRANSA && attr != CUBLASLT_MATMUL_DESC_TRANSB) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(attr == CUBLASLT_MATMUL_DESC_TRANSA ? &d->ta : &d->tb, buf, bytes);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType_t type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
    if (ld < int64_t(rows)) return CUBLAS_STATUS_INVALID_VALUE;
    *l = new cublasLtMatrixLayoutOpaque_t{type, int64_t(rows), int64_t(cols), ld};
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    delete l;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) {
    *p = new cublasLtMatmulPreferenceOpaque_t;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    delete p;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t bytes) {
    void* field = nullptr;
    size_t want = sizeof(uint32_t);
    switch (attr) {
        case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: field = &p->workspace, want = sizeof(uint64_t); break;
        case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK: field = &p->schemes; break;
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: field = &p->align[0]; break;
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: field = &p->align[1]; break;
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: field = &p->align[2]; break;
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: field = &p->align[3]; break;
    }
    if (!field || bytes != want) return CUBLAS_STATUS_INVALID_VALUE;
    std::memcpy(field, buf, bytes);
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t a,
                                              cublasLtMatrixLayout_t, cublasLtMatrixLayout_t,
                                              cublasLtMatrixLayout_t d, cublasLtMatmulPreference_t pref,
                                              int requested, cublasLtMatmulHeuristicResult_t* results, int* found) {
    if (requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
    *found = 0;
    if (d->rows == refused_rows) return CUBLAS_STATUS_NOT_SUPPORTED;
    const int64_t k = op->ta == CUBLAS_OP_T ? a->rows : a->cols;
    const uint64_t partials_bytes = uint64_t(2 * d->rows * d->cols) * sizeof(uint16_t);
    const bool split = d->type == CUDA_R_16BF && k >= 2 && partials_bytes <= pref->workspace &&
                       (pref->schemes & (CUBLASLT_REDUCTION_SCHEME_INPLACE | CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE));
    results[0] = cublasLtMatmulHeuristicResult_t{};
    uint64_t* w = results[0].algo.data;
    w[kMagic] = kAlgoMagic, w[kSplitInOutputType] = split, w[kWorkspace] = split ? partials_bytes : 0;
    for (int i = 0; i < 4; i++) w[kAlignA + i] = pref->align[i];
    results[0].workspaceSize = size_t(w[kWorkspace]);
    results[0].state = CUBLAS_STATUS_SUCCESS;
    *found = 1;
    return CUBLAS_STATUS_SUCCESS;
}

namespace {

float element(const void* base, const cublasLtMatrixLayoutOpaque_t& l, int64_t r, int64_t c) {
    const int64_t i = r + c * l.ld;
    if (l.type == CUDA_R_32F) return static_cast<const float*>(base)[i];
    return sinklab::bf16_bits_to_float(static_cast<const uint16_t*>(base)[i]);
}

void set_element(void* base, const cublasLtMatrixLayoutOpaque_t& l, int64_t r, int64_t c, float v) {
    const int64_t i = r + c * l.ld;
    if (l.type == CUDA_R_32F) static_cast<float*>(base)[i] = v;
    else static_cast<uint16_t*>(base)[i] = sinklab::float_to_bf16_bits(v);
}

float round_bf16(float v) { return sinklab::bf16_bits_to_float(sinklab::float_to_bf16_bits(v)); }

}  // namespace

// The scalars are read at the call (host pointer mode), the matrices when the stream gets to the product.
cublasStatus_t cublasLtMatmul(cublasLtHandle_t, cublasLtMatmulDesc_t op, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t a_layout, const void* B, cublasLtMatrixLayout_t b_layout,
                              const void* beta, const void* C, cublasLtMatrixLayout_t c_layout, void* D,
                              cublasLtMatrixLayout_t d_layout, const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_bytes, cudaStream_t st) {
    const bool ta = op->ta == CUBLAS_OP_T, tb = op->tb == CUBLAS_OP_T;
    const cublasLtMatrixLayoutOpaque_t a = *a_layout, b = *b_layout, c = *c_layout, d = *d_layout;
    const int64_t m = ta ? a.cols : a.rows, k = ta ? a.rows : a.cols;
    const int64_t kb = tb ? b.cols : b.rows, n = tb ? b.rows : b.cols;
    if (k != kb || d.rows != m || d.cols != n || c.rows != m || c.cols != n) return CUBLAS_STATUS_INVALID_VALUE;
    if (C == D && !(c == d)) return CUBLAS_STATUS_INVALID_VALUE;  // in place needs one layout
    // This stand-in's algorithms come from its heuristic, and hold it to the workspace and alignments asked there.
    const uint64_t* w = algo ? algo->data : nullptr;
    if (!w || w[kMagic] != kAlgoMagic || workspace_bytes < w[kWorkspace] || (w[kWorkspace] > 0 && !workspace))
        return CUBLAS_STATUS_INVALID_VALUE;
    const void* operands[4] = {A, B, C, D};
    for (int i = 0; i < 4; i++)
        if (alignment_of(operands[i]) < w[kAlignA + i]) return CUBLAS_STATUS_INVALID_VALUE;
    const bool split = w[kSplitInOutputType] != 0;
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    enqueue(st, [=] {
        std::vector<float> out(size_t(m * n));
        for (int64_t j = 0; j < n; j++)
            for (int64_t i = 0; i < m; i++) {
                float acc = 0.f, first_half = 0.f;
                for (int64_t p = 0; p < k; p++) {
                    if (split && p == k / 2) first_half = round_bf16(acc), acc = 0.f;
                    acc += element(A, a, ta ? p : i, ta ? i : p) * element(B, b, tb ? j : p, tb ? p : j);
                }
                if (split) acc = first_half + round_bf16(acc);
                out[size_t(i + j * m)] = al * acc + (be != 0.f ? be * element(C, c, i, j) : 0.f);
            }
        for (int64_t j = 0; j < n; j++)  // after every read: C may be D
            for (int64_t i = 0; i < m; i++) set_element(D, d, i, j, out[size_t(i + j * m)]);
    });
    return CUBLAS_STATUS_SUCCESS;
}
