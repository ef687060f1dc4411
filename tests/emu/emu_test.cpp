// The emulator's own checks (emu.h): that ldmatrix + mma.sync and wgmma compute matrix products, that cp.async
// copies and wgmma results land only at their wait, and that each fault it promises to report is reported.
// Kernels here are written as CUDA device code against the emulator's headers, as kernels/cuda is.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/check.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/mma.cuh"
#include "test_util.h"

namespace sinklab {
namespace {

using cuda::bf16;

std::string fault_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// C[16][8] = A[16][16] B[16][8], the operands row-major in global memory: one warp stages A and B^T in shared
// memory and loads them with ldmatrix as attention.cu does (A by rows; B by its columns, the rows of B^T) for one
// mma.
void mma_kernel(float* C, const bf16* A, const bf16* Bt) {
    constexpr int S = 24;  // padded row, 48 bytes: 16-byte aligned rows
    bf16* sA = cuda::dynamic_smem<bf16>();  // [16][S]
    bf16* sB = sA + 16 * S;                 // [16][S]: B^T, rows 8..15 zero
    const int lane = threadIdx.x;
    for (int i = lane; i < 16 * 16; i += 32) {
        sA[i / 16 * S + i % 16] = A[i];
        sB[i / 16 * S + i % 16] = i / 16 < 8 ? Bt[i] : __float2bfloat16_rn(0.f);
    }
    __syncwarp();
    uint32_t a[4], b[4];
    cuda::ldsm_x4(a, sA + ((lane & 7) + ((lane >> 3) & 1) * 8) * S + (lane >> 4) * 8);
    cuda::ldsm_x4(b, sB + ((lane & 7) + (lane >> 4) * 8) * S + ((lane >> 3) & 1) * 8);
    float d[4] = {};
    cuda::mma(d, a, b[0], b[1]);
    const int g = lane / 4, t = lane % 4;
    C[g * 8 + 2 * t] = d[0], C[g * 8 + 2 * t + 1] = d[1];
    C[(g + 8) * 8 + 2 * t] = d[2], C[(g + 8) * 8 + 2 * t + 1] = d[3];
}

TEST(Emulator, LdmatrixAndMmaComputeAMatrixProduct) {
    test::Rng rng(3);
    std::vector<bf16> A(16 * 16), Bt(8 * 16);
    for (bf16& x : A) x = __float2bfloat16_rn(float(rng.uniform()));
    for (bf16& x : Bt) x = __float2bfloat16_rn(float(rng.uniform()));
    std::vector<float> C(16 * 8, NAN);
    CUDA_LAUNCH(mma_kernel, 1, 32, 2 * 16 * 24 * sizeof(bf16), nullptr, C.data(), A.data(), Bt.data());
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double want = 0;
            for (int k = 0; k < 16; k++)
                want += double(__bfloat162float(A[i * 16 + k])) * __bfloat162float(Bt[j * 16 + k]);
            EXPECT_NEAR(C[i * 8 + j], want, 1e-5) << "C[" << i << "][" << j << "]";
        }
}

// Thread 0 copies src into shared memory asynchronously and reports what it reads before and after the wait.
void async_kernel(float* before, float* after, const float* src) {
    float* s = cuda::dynamic_smem<float>();
    if (threadIdx.x != 0) return;
    cuda::cp_async4(s, src, true);
    cuda::cp_async_commit();
    *before = s[0];
    cuda::cp_async_wait<0>();
    *after = s[0];
}

TEST(Emulator, CpAsyncLandsAtItsWait) {
    const float src = 7.f;
    float before = 0.f, after = 0.f;
    CUDA_LAUNCH(async_kernel, 1, 32, 16, nullptr, &before, &after, &src);
    EXPECT_TRUE(std::isnan(before)) << before;  // shared memory starts as NaN
    EXPECT_EQ(after, 7.f);
}

// Warp 0 copies 16 bytes into shared memory; warp 1 reads them with ldmatrix, after a barrier or not.
void race_kernel(const bf16* src, bool barrier) {
    bf16* s = cuda::dynamic_smem<bf16>();
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (warp == 0 && lane == 0) {
        cuda::cp_async16(s, src, true);
        cuda::cp_async_commit();
        cuda::cp_async_wait<0>();
    }
    if (barrier) __syncthreads();
    if (warp == 1) {
        uint32_t r[4];
        cuda::ldsm_x4(r, s + (lane % 8) * 8);
    }
}

TEST(Emulator, ReportsAReadOfAnotherWarpsCopyBeforeABarrier) {
    std::vector<bf16> src(8, __float2bfloat16_rn(1.f));
    EXPECT_EQ(fault_of([&] { CUDA_LAUNCH(race_kernel, 1, 64, 8 * 8 * sizeof(bf16), nullptr, src.data(), true); }),
              "");
    const std::string f =
        fault_of([&] { CUDA_LAUNCH(race_kernel, 1, 64, 8 * 8 * sizeof(bf16), nullptr, src.data(), false); });
    EXPECT_NE(f.find("warp 1 reads shared byte 0 that warp 0 wrote since the last __syncthreads"), std::string::npos)
        << f;
    EXPECT_NE(f.find("emu_test.cpp"), std::string::npos) << f;  // the launch's file:line
}

// Half of each warp shuffles, the other half has left: the shuffle can never complete.
void divergent_shuffle_kernel(float* out) {
    if (threadIdx.x % 32 < 16) out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.f, 1);
}

TEST(Emulator, ReportsAWarpCollectiveThatSomeLanesNeverReach) {
    std::vector<float> out(32);
    const std::string f = fault_of([&] { CUDA_LAUNCH(divergent_shuffle_kernel, 1, 32, 0, nullptr, out.data()); });
    EXPECT_NE(f.find("wait at a __syncthreads or warp collective that other threads never reach"), std::string::npos)
        << f;
}

// ldmatrix of the 8 rows of 8 elements that start at element `first` of shared memory.
void ldmatrix_kernel(int first) {
    uint32_t r[4];
    cuda::ldsm_x4(r, cuda::dynamic_smem<bf16>() + first + (threadIdx.x % 8) * 8);
}

TEST(Emulator, ReportsMisalignedAndOutOfRangeAccessesAndLaunches) {
    auto run = [](int first, size_t smem) {
        return fault_of([&] { CUDA_LAUNCH(ldmatrix_kernel, 1, 32, smem, nullptr, first); });
    };
    EXPECT_EQ(run(0, 128), "");
    EXPECT_NE(run(1, 256).find("not 16-byte aligned"), std::string::npos);
    EXPECT_NE(run(0, 64).find("ldmatrix row of 16 bytes outside the launch's 64 bytes"), std::string::npos);
    EXPECT_NE(run(0, 300 * 1024).find("dynamic shared memory; the device has"), std::string::npos);
}

// ---- wgmma ----------------------------------------------------------------------------------------------------
// The attention kernels' two wgmma forms on one warpgroup: S = A B^T (A, B [64][64] row-major: both K-major), then
// O = bf16(S) V with V [64][64] read N-major. The tiles reach shared memory by cp.async in the 128-byte swizzle
// (wgmma_tile.cuh). `step` leaves out or misplaces one thing the hardware needs.
enum class Step { All, NoFence, NoProxyFence, NoWait, EarlyRead, Misaligned, Swizzle64 };

uint32_t pack(float lo, float hi) {
    return uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
           uint32_t(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16;
}

// Accumulator element e of n-tile j of thread t, in a [64][64] row-major matrix.
int acc_index(int t, int j, int e) {
    return (16 * (t / 32) + t % 32 / 4 + 8 * (e / 2)) * 64 + 8 * j + 2 * (t % 4) + e % 2;
}

void wgmma_kernel(float* S, float* O, const bf16* A, const bf16* B, const bf16* V, Step step) {
    bf16* sA = cuda::align1024(cuda::dynamic_smem<bf16>()) + (step == Step::Misaligned ? 64 : 0);  // [64][64] each
    bf16* sB = sA + 64 * 64;
    bf16* sV = sB + 64 * 64;
    const int t = threadIdx.x;
    for (int i = t; i < 64 * 8; i += 128) {  // 16-byte chunk i % 8 of row i / 8
        const int r = i / 8, c = i % 8;
        cuda::cp_async16(sA + cuda::sw128_chunk(r, c), A + r * 64 + 8 * c, true);
        cuda::cp_async16(sB + cuda::sw128_chunk(r, c), B + r * 64 + 8 * c, true);
        cuda::cp_async16(sV + cuda::sw128_chunk(r, c), V + r * 64 + 8 * c, true);
    }
    cuda::cp_async_commit();
    cuda::cp_async_wait<0>();
    if (step != Step::NoProxyFence) cuda::fence_async_smem();
    __syncthreads();
    float s[8][4], o[8][4] = {};
    for (auto& x : s) x[0] = x[1] = x[2] = x[3] = step == Step::EarlyRead ? 7.f : 0.f;
    if (step != Step::NoFence) cuda::wg_fence();
    const uint64_t mode = step == Step::Swizzle64 ? uint64_t(3) << 62 : 0;  // 1 (128 bytes) ^ 3 = 2 (64 bytes)
    for (int kk = 0; kk < 4; kk++)  // 16 columns (32 bytes) of A and B per step
        cuda::wgmma_smem(s, (cuda::sw128_desc(sA) ^ mode) + 2 * kk, cuda::sw128_desc(sB) + 2 * kk);
    cuda::wg_commit();
    if (step == Step::NoWait) return;
    if (step == Step::EarlyRead)
        for (int j = 0; j < 8; j++)
            for (int e = 0; e < 4; e++) S[acc_index(t, j, e)] = s[j][e];
    cuda::wg_wait<0>();
    if (step == Step::EarlyRead) return;
    uint32_t p[4][4];  // bf16(S) as the A operand: columns 16 kk .. 16 kk + 15
    for (int kk = 0; kk < 4; kk++) {
        p[kk][0] = pack(s[2 * kk][0], s[2 * kk][1]), p[kk][1] = pack(s[2 * kk][2], s[2 * kk][3]);
        p[kk][2] = pack(s[2 * kk + 1][0], s[2 * kk + 1][1]), p[kk][3] = pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
    cuda::wg_fence();
    for (int kk = 0; kk < 4; kk++)  // 16 rows (2048 bytes) of V per step
        cuda::wgmma_regs(o, p[kk], cuda::sw128_desc(sV) + 128 * kk);
    cuda::wg_commit();
    cuda::wg_wait<0>();
    for (int j = 0; j < 8; j++)
        for (int e = 0; e < 4; e++) S[acc_index(t, j, e)] = s[j][e], O[acc_index(t, j, e)] = o[j][e];
}

struct WgmmaRun {
    std::vector<bf16> A, B, V;
    std::vector<float> S, O;
    std::string fault;
};

WgmmaRun run_wgmma(Step step) {
    test::Rng rng(5);
    WgmmaRun r{std::vector<bf16>(64 * 64), std::vector<bf16>(64 * 64), std::vector<bf16>(64 * 64),
               std::vector<float>(64 * 64, NAN), std::vector<float>(64 * 64, NAN), ""};
    for (auto* m : {&r.A, &r.B, &r.V})
        for (bf16& x : *m) x = __float2bfloat16_rn(float(rng.uniform()));
    const size_t smem = 3 * 64 * 64 * sizeof(bf16) + 2048;  // room to reach a 1024-byte boundary and go past it
    r.fault = fault_of([&] {
        CUDA_LAUNCH(wgmma_kernel, 1, 128, smem, nullptr, r.S.data(), r.O.data(), r.A.data(), r.B.data(), r.V.data(),
                    step);
    });
    return r;
}

TEST(Emulator, WgmmaComputesBothOperandForms) {
    const WgmmaRun r = run_wgmma(Step::All);
    ASSERT_EQ(r.fault, "");
    auto f = [](bf16 x) { return double(__bfloat162float(x)); };
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++) {
            double s = 0, o = 0;
            for (int k = 0; k < 64; k++) {
                s += f(r.A[i * 64 + k]) * f(r.B[j * 64 + k]);
                o += f(__float2bfloat16_rn(r.S[i * 64 + k])) * f(r.V[k * 64 + j]);
            }
            ASSERT_NEAR(r.S[i * 64 + j], s, 1e-4) << "S[" << i << "][" << j << "]";
            ASSERT_NEAR(r.O[i * 64 + j], o, 1e-3) << "O[" << i << "][" << j << "]";
        }
}

TEST(Emulator, WgmmaWritesItsAccumulatorsAtTheWait) {
    const WgmmaRun r = run_wgmma(Step::EarlyRead);
    ASSERT_EQ(r.fault, "");
    for (float x : r.S) ASSERT_EQ(x, 7.f);
}

TEST(Emulator, ReportsWgmmaMisuse) {
    auto has = [](Step step, const std::string& what) {
        const std::string f = run_wgmma(step).fault;
        EXPECT_NE(f.find(what), std::string::npos) << f;
    };
    has(Step::NoFence, "wgmma without a wgmma.fence");
    has(Step::NoProxyFence, "did not make visible with fence.proxy.async");
    has(Step::NoWait, "a block ends with a wgmma that no wgmma.wait_group retired");
    has(Step::Misaligned, "is not at a row of a 128-byte swizzle pattern");
    has(Step::Swizzle64, "swizzle mode 2 (only the 128-byte one, 1, is emulated)");
}

void read_kernel(float* out, const float* in, int i) { *out = in[i]; }

TEST(EmulatorDeathTest, DeviceMemoryEndsAtAnUnmappedPage) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");  // the process may hold OpenMP threads
    float* buf = nullptr;
    ASSERT_EQ(cudaMalloc(&buf, 64 * sizeof(float)), cudaSuccess);
    float out = 0.f;
    CUDA_LAUNCH(read_kernel, 1, 1, 0, nullptr, &out, buf, 63);
    EXPECT_TRUE(std::isnan(out)) << out;  // allocations start as NaN
    EXPECT_DEATH(CUDA_LAUNCH(read_kernel, 1, 1, 0, nullptr, &out, buf, 64), "");
    EXPECT_EQ(cudaFree(buf), cudaSuccess);
    EXPECT_EQ(cudaFree(buf), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace sinklab
