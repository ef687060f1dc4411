// What the attention kernels build on the instructions of mma.cuh, for mma.cuh and its emulator stand-in alike
// (each defines smem_addr and the mma and wgmma functions first): accumulators as the A operand of the next product,
// and the shared-memory tiles of the wgmma kernels and the products on them: 64-column bf16 tiles of 128-byte rows
// with the 128-byte swizzle, 16-byte chunk c of row r at chunk c ^ r % 8, each starting on a 1024-byte boundary,
// where the swizzle pattern does.
#pragma once

namespace sinklab::cuda {

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&v);
}

// Two accumulator tiles (16x8 each, side by side) as the A operand (16x16) of the next mma or register wgmma.
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
    a[0] = pack_bf16(lo[0], lo[1]);
    a[1] = pack_bf16(lo[2], lo[3]);
    a[2] = pack_bf16(hi[0], hi[1]);
    a[3] = pack_bf16(hi[2], hi[3]);
}
// The 16 x 16 A operands of a wgmma chain over the 64 columns of accumulators s: P or dS, in bf16.
template <int NK> __device__ __forceinline__ void acc_to_a_all(uint32_t (&a)[NK][4], const float (&s)[2 * NK][4]) {
#pragma unroll
    for (int kk = 0; kk < NK; kk++) acc_to_a(a[kk], s[2 * kk], s[2 * kk + 1]);
}

// Start address, leading byte offset 16 (unused by these layouts), stride byte offset 1024 (8 rows of 128 bytes),
// 128-byte swizzle. Moving along K adds 32 bytes (K-major) or 2048 (16 rows, N-major) to the start: desc + bytes / 16.
__device__ __forceinline__ uint64_t sw128_desc(const bf16* tile) {
    return uint64_t(smem_addr(tile) >> 4 & 0x3fff) | uint64_t(1) << 16 | uint64_t(1024 >> 4) << 32 | uint64_t(1) << 62;
}
// The first 1024-byte boundary at or after p, in shared memory.
__device__ __forceinline__ bf16* align1024(bf16* p) { return p + (1024 - smem_addr(p) % 1024) % 1024 / sizeof(bf16); }

// The element offset of 16-byte chunk c (elements 8c .. 8c + 7) of row r in a tile.
__device__ __forceinline__ int sw128_chunk(int r, int c) { return r * 64 + (c ^ (r & 7)) * 8; }

// s += A B^T for 64 x 64 tiles A and B, both read K-major (along their rows): 4 wgmmas, issued only.
__device__ __forceinline__ void wgmma_abt(float (&s)[8][4], const bf16* A, const bf16* B) {
    const uint64_t da = sw128_desc(A), db = sw128_desc(B);
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wgmma_smem(s, da + 2 * kk, db + 2 * kk);  // 16 columns: 32 bytes on
}
// d += A V for A in registers (4 fragments of 16 columns) and a 64 x 64 tile V read N-major: 4 wgmmas, issued only.
__device__ __forceinline__ void wgmma_av(float (&d)[8][4], const uint32_t (&a)[4][4], const bf16* V) {
    const uint64_t dv = sw128_desc(V);
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wgmma_regs(d, a[kk], dv + 128 * kk);  // 16 rows: 2048 bytes on
}

// One commit group: issue() after wgmma.fence, the registers in `held` (its accumulators and A fragments) kept from
// moving across it. A write after the fence would make ptxas serialize. Groups retire in the order they were issued.
template <typename Issue, typename... Held> __device__ __forceinline__ void wgmma_issue(Issue&& issue, Held&... held) {
    (wg_hold(held), ...);
    wg_fence();
    issue();
    wg_commit();
}
// Waits until at most N commit groups are in flight; the registers in `held` (those of the groups now retired) are
// kept from moving above the wait. A wait retires the calling warp's wgmmas only: a tile that the warpgroup's
// wgmmas read may be overwritten after a __syncthreads() that follows every warp's wait, never on a warp's own wait
// (the emulator retires a warpgroup's wgmmas at once, and would not see that race).
template <int N, typename... Held> __device__ __forceinline__ void wgmma_retire(Held&... held) {
    wg_wait<N>();
    (wg_hold(held), ...);
}
// One commit group, issued and retired.
template <typename Issue, typename... Held> __device__ __forceinline__ void wgmma_round(Issue&& issue, Held&... held) {
    wgmma_issue(issue, held...);
    wgmma_retire<0>(held...);
}

}  // namespace sinklab::cuda
