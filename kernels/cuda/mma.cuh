// Tensor-core, asynchronous-copy and special-function instructions (sm_80 and later; wgmma: sm_90a) as device
// functions: the only inline PTX of the attention kernels. tests/emu provides a header of the same name that runs
// them on the CPU.
#pragma once
#include "kernels/cuda/common.cuh"

namespace sinklab::cuda {

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// Four 8x8 b16 matrices from shared memory; lane l gives the address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const bf16* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

// d += a b for a 16x16 (row-major) by 16x8 (column-major) bf16 tile pair, f32 accumulators.
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Copies 16 bytes global -> shared without a register round trip; zero-fills when !valid.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}
// 4 bytes, for the per-row lse and D; zero-fills when !valid.
__device__ __forceinline__ void cp_async4(float* dst, const float* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
                 "r"(valid ? 4 : 0)
                 : "memory");
}
// 2^x and 1/x as one special-function instruction each, subnormal inputs and results flushed to zero. exp2f and
// 1.f / x keep subnormal results (a compare and two multiplies more per exp2f, a Newton step and a slow path per
// division), which the softmax never needs: a weight below 2^-126 of the row maximum's is zero either way.
__device__ __forceinline__ float ex2_ftz(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
__device__ __forceinline__ float rcp_ftz(float x) {
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ---- Hopper's warpgroup MMA (sm_90a) --------------------------------------------------------------------------
// The 4 warps of a warpgroup issue each wgmma together: d [64 x 64] += A [64 x 16] B [16 x 64], f32 accumulators
// in the m16n8 layout of each warp's 16 rows (d[n8 tile][4], as mma() leaves them). Always +=: given a run-time
// choice to overwrite d, ptxas serializes the wgmmas (its C7511 note), so a chain starts from zeroed accumulators.
// Operands in shared memory are 64 x 64 bf16 tiles of 128-byte rows with the 128-byte swizzle (16-byte chunk c of
// row r at chunk c ^ r % 8), starting on a 1024-byte boundary; one descriptor serves a tile read K-major and read
// N-major. Issue, commit and wait are asynchronous like cp.async: between a wgmma and the wait that retires it,
// neither its accumulators nor its A registers nor the shared tiles it reads may change, which wg_hold tells the
// compiler. The tiles and their descriptors: wgmma_tile.cuh.
#if defined(__CUDA_ARCH__) && !defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SINKLAB_SM90A_ONLY(body) __trap()  // launched only on sm_90 devices (attention.cu)
#else
#define SINKLAB_SM90A_ONLY(body) body
#endif

__device__ __forceinline__ void wg_fence() {
    SINKLAB_SM90A_ONLY(asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"));
}
__device__ __forceinline__ void wg_commit() {
    SINKLAB_SM90A_ONLY(asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"));
}
template <int N> __device__ __forceinline__ void wg_wait() {
    SINKLAB_SM90A_ONLY(asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"));
}
// cp.async writes through the generic proxy and wgmma reads through the async one: each thread runs this after
// its copies land and before the __syncthreads that hands the tiles to the warpgroup.
__device__ __forceinline__ void fence_async_smem() {
    SINKLAB_SM90A_ONLY(asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"));
}
// Keeps the compiler from moving reads or writes of these registers across a wgmma's issue or wait.
template <int N> __device__ __forceinline__ void wg_hold(float (&d)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+f"(d[i][e])::"memory");
}
template <int N> __device__ __forceinline__ void wg_hold(uint32_t (&a)[N][4]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+r"(a[i][e])::"memory");
}

// The 32 accumulators of an m64n64 wgmma as asm operands %0 .. %31.
#define SINKLAB_WGMMA_D "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, " \
                        "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define SINKLAB_WGMMA_D_ROW(d, i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define SINKLAB_WGMMA_D_OUT(d)                                                                                     \
    SINKLAB_WGMMA_D_ROW(d, 0), SINKLAB_WGMMA_D_ROW(d, 1), SINKLAB_WGMMA_D_ROW(d, 2), SINKLAB_WGMMA_D_ROW(d, 3),   \
        SINKLAB_WGMMA_D_ROW(d, 4), SINKLAB_WGMMA_D_ROW(d, 5), SINKLAB_WGMMA_D_ROW(d, 6), SINKLAB_WGMMA_D_ROW(d, 7)

// d += A B, A and B from shared memory, both K-major (row m of A and column n of B along K).
__device__ __forceinline__ void wgmma_smem(float (&d)[8][4], uint64_t desc_a, uint64_t desc_b) {
    SINKLAB_SM90A_ONLY(asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                                    "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " SINKLAB_WGMMA_D
                                    ", %32, %33, p, 1, 1, 0, 0;\n}\n"
                                    : SINKLAB_WGMMA_D_OUT(d)
                                    : "l"(desc_a), "l"(desc_b), "r"(1)));
}
// d += A B, A from registers (this warp's 16 rows in the m16n8k16 A layout), B from shared memory N-major (row k of
// B along N: a [K][64] tile).
__device__ __forceinline__ void wgmma_regs(float (&d)[8][4], const uint32_t (&a)[4], uint64_t desc_b) {
    SINKLAB_SM90A_ONLY(asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                                    "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " SINKLAB_WGMMA_D
                                    ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                                    : SINKLAB_WGMMA_D_OUT(d)
                                    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1)));
}

}  // namespace sinklab::cuda

#include "kernels/cuda/wgmma_tile.cuh"
