// The attention kernels' two wgmma forms on one warpgroup, as a kernel of their own: S = A B^T (A, B [64][64]
// row-major: both read K-major), then O = bf16(S) V with bf16(S) as the A operand in registers and V [64][64] read
// N-major. The tiles reach shared memory by cp.async in the 128-byte swizzle (wgmma_tile.cuh), as in attention.cu.
// Runs on a GPU with sm_90a code and on the emulator; `step` leaves out or misplaces one thing the hardware needs,
// which only the emulator can report (tests/emu/emu_test.cpp).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/check.h"
#include "cuda/device_array.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mma.cuh"

namespace sinklab::test {

enum class WgmmaStep { All, NoFence, NoProxyFence, NoWait, EarlyRead, Misaligned, Swizzle64, CopyInFlight };
// The faulty steps are compiled for the emulator only: on a GPU they are undefined behaviour, and ptxas would
// serialize the kernel's wgmmas around them.
#ifdef SINKLAB_EMU
constexpr bool kWgmmaFaults = true;
#else
constexpr bool kWgmmaFaults = false;
#endif

// Accumulator element e of n-tile j of thread t, in a [64][64] row-major matrix (the m16n8 layout of warp t / 32's
// 16 rows).
__host__ __device__ inline int wgmma_acc_index(int t, int j, int e) {
    return (16 * (t / 32) + t % 32 / 4 + 8 * (e / 2)) * 64 + 8 * j + 2 * (t % 4) + e % 2;
}

// Internal linkage: two test files of one binary include this header.
static __global__ void wgmma_products_kernel(float* S, float* O, const cuda::bf16* A, const cuda::bf16* B,
                                      const cuda::bf16* V, WgmmaStep step) {
    using cuda::bf16;
    if (!kWgmmaFaults) step = WgmmaStep::All;
    bf16* sA = cuda::align1024(cuda::dynamic_smem<bf16>()) + (step == WgmmaStep::Misaligned ? 64 : 0);  // [64][64]
    bf16* sB = sA + 64 * 64;                                                                            // [64][64]
    bf16* sV = sB + 64 * 64;                                                                            // [64][64]
    const int t = threadIdx.x;
    for (int i = t; i < 64 * 8; i += 128) {  // 16-byte chunk i % 8 of row i / 8
        const int r = i / 8, c = i % 8;
        cuda::cp_async16(sA + cuda::sw128_chunk(r, c), A + r * 64 + 8 * c, true);
        cuda::cp_async16(sB + cuda::sw128_chunk(r, c), B + r * 64 + 8 * c, true);
        cuda::cp_async16(sV + cuda::sw128_chunk(r, c), V + r * 64 + 8 * c, true);
    }
    cuda::cp_async_commit();
    cuda::cp_async_wait<0>();
    if (step != WgmmaStep::NoProxyFence) cuda::fence_async_smem();
    __syncthreads();
    float s[8][4], o[8][4] = {};
    for (auto& x : s) x[0] = x[1] = x[2] = x[3] = step == WgmmaStep::EarlyRead ? 7.f : 0.f;
    cuda::wg_hold(s);  // as wgmma_round: no accumulator write may move past the fence (ptxas would serialize)
    if (step != WgmmaStep::NoFence) cuda::wg_fence();
    const uint64_t mode = step == WgmmaStep::Swizzle64 ? uint64_t(3) << 62 : 0;  // 1 (128 bytes) ^ 3 = 2 (64 bytes)
    for (int kk = 0; kk < 4; kk++)  // 16 columns (32 bytes) of A and B per step
        cuda::wgmma_smem(s, (cuda::sw128_desc(sA) ^ mode) + 2 * kk, cuda::sw128_desc(sB) + 2 * kk);
    cuda::wg_commit();
    if (step == WgmmaStep::NoWait) return;
    if (step == WgmmaStep::CopyInFlight) {  // the next B into B's tile while the product may still read it
        __syncthreads();
        cuda::cp_async16(sB + cuda::sw128_chunk(t / 8, t % 8), B + t * 8, true);
        cuda::cp_async_commit();
    }
    if (step == WgmmaStep::EarlyRead)
        for (int j = 0; j < 8; j++)
            for (int e = 0; e < 4; e++) S[wgmma_acc_index(t, j, e)] = s[j][e];
    cuda::wg_wait<0>();
    cuda::wg_hold(s);
    if (step == WgmmaStep::EarlyRead) return;
    uint32_t p[4][4];  // bf16(S) as the A operand, as the attention kernels make it
    cuda::acc_to_a_all(p, s);
    cuda::wgmma_round([&] {
        for (int kk = 0; kk < 4; kk++)  // 16 rows (2048 bytes) of V per step
            cuda::wgmma_regs(o, p[kk], cuda::sw128_desc(sV) + 128 * kk);
    }, o, p);
    for (int j = 0; j < 8; j++)
        for (int e = 0; e < 4; e++) S[wgmma_acc_index(t, j, e)] = s[j][e], O[wgmma_acc_index(t, j, e)] = o[j][e];
}

struct WgmmaProducts {
    std::vector<float> S, O;  // [64][64] each; NaN where the kernel wrote nothing
};

// One warpgroup computes S and O from A, B, V ([64][64] row-major each).
inline WgmmaProducts run_wgmma_products(const std::vector<cuda::bf16>& A, const std::vector<cuda::bf16>& B,
                                        const std::vector<cuda::bf16>& V, WgmmaStep step = WgmmaStep::All) {
    SL_REQUIRE(kWgmmaFaults || step == WgmmaStep::All, "a faulty wgmma step runs on the emulator only");
    constexpr size_t n = 64 * 64;
    DeviceArray<cuda::bf16> a(n), b(n), v(n);
    DeviceArray<float> s(n, 0xff), o(n, 0xff);  // NaN: an element never written fails
    CUDA_CHECK(cudaMemcpyAsync(a.p, A.data(), n * sizeof(cuda::bf16), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpyAsync(b.p, B.data(), n * sizeof(cuda::bf16), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpyAsync(v.p, V.data(), n * sizeof(cuda::bf16), cudaMemcpyHostToDevice));
    const size_t smem = 3 * n * sizeof(cuda::bf16) + 2048;  // room to reach a 1024-byte boundary and go past it
    CUDA_LAUNCH(wgmma_products_kernel, 1, 128, smem, nullptr, s.p, o.p, a.p, b.p, v.p, step);
    WgmmaProducts r{std::vector<float>(n), std::vector<float>(n)};
    CUDA_CHECK(cudaMemcpyAsync(r.S.data(), s.p, n * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpyAsync(r.O.data(), o.p, n * sizeof(float), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaStreamSynchronize(nullptr));
    return r;
}

}  // namespace sinklab::test
