// tests/emu's stand-in for kernels/cuda/mma.cuh: the same device functions, run by the emulator.
#pragma once
#include <cmath>

#include "kernels/cuda/common.cuh"

namespace sinklab::cuda {

inline void ldsm_x4(uint32_t (&r)[4], const bf16* p) { emu::ldmatrix_x4(r, p, false); }
inline void ldsm_x4_trans(uint32_t (&r)[4], const bf16* p) { emu::ldmatrix_x4(r, p, true); }
inline void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    emu::mma_bf16_m16n8k16(d, a, b0, b1);
}
inline void cp_async16(void* dst, const void* src, bool valid) { emu::async_copy(dst, src, 16, valid ? 16 : 0); }
inline void cp_async4(float* dst, const float* src, bool valid) { emu::async_copy(dst, src, 4, valid ? 4 : 0); }
inline float flush_subnormal(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.f, x) : x; }
inline float ex2_ftz(float x) { return flush_subnormal(std::exp2(flush_subnormal(x))); }
inline float rcp_ftz(float x) { return flush_subnormal(1.f / flush_subnormal(x)); }
inline void cp_async_commit() { emu::async_commit(); }
template <int N> void cp_async_wait() { emu::async_wait(N); }

inline uint32_t smem_addr(const void* p) { return emu::shared_address(p); }
inline void wg_fence() { emu::wgmma_fence(); }
inline void wg_commit() { emu::wgmma_commit(); }
template <int N> void wg_wait() { emu::wgmma_wait(N); }
inline void fence_async_smem() { emu::fence_proxy_async(); }
template <int N, typename T> void wg_hold(T (&)[N][4]) {}
inline void wgmma_smem(float (&d)[8][4], uint64_t desc_a, uint64_t desc_b) {
    emu::wgmma(&d[0][0], 64, nullptr, desc_a, desc_b, false);
}
inline void wgmma_regs(float (&d)[8][4], const uint32_t (&a)[4], uint64_t desc_b) {
    emu::wgmma(&d[0][0], 64, a, 0, desc_b, true);
}

}  // namespace sinklab::cuda

#include "kernels/cuda/wgmma_tile.cuh"
