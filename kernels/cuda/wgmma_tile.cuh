// The shared-memory tiles of the wgmma kernels, for mma.cuh and its emulator stand-in alike (each defines
// smem_addr first): 64-column bf16 tiles of 128-byte rows with the 128-byte swizzle, 16-byte chunk c of row r at
// chunk c ^ r % 8, each starting on a 1024-byte boundary, where the swizzle pattern does.
#pragma once

namespace sinklab::cuda {

// Start address, leading byte offset 16 (unused by these layouts), stride byte offset 1024 (8 rows of 128 bytes),
// 128-byte swizzle. Moving along K adds 32 bytes (K-major) or 2048 (16 rows, N-major) to the start: desc + bytes / 16.
__device__ __forceinline__ uint64_t sw128_desc(const bf16* tile) {
    return uint64_t(smem_addr(tile) >> 4 & 0x3fff) | uint64_t(1) << 16 | uint64_t(1024 >> 4) << 32 | uint64_t(1) << 62;
}
// The first 1024-byte boundary at or after p, in shared memory.
__device__ __forceinline__ bf16* align1024(bf16* p) { return p + (1024 - smem_addr(p) % 1024) % 1024 / sizeof(bf16); }

// The element offset of 16-byte chunk c (elements 8c .. 8c + 7) of row r in a tile.
__device__ __forceinline__ int sw128_chunk(int r, int c) { return r * 64 + (c ^ (r & 7)) * 8; }

}  // namespace sinklab::cuda
