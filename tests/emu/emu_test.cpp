// The emulator's own checks (emu.h): that ldmatrix + mma.sync compute a matrix product, that cp.async copies and
// wgmma results land only at their wait, and that each fault it promises to report is reported.
// Kernels here are written as CUDA device code against the emulator's headers, as kernels/cuda is.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/check.h"
#include "cuda/wgmma_products.cuh"
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
    const emu::HostPointersAllowed host_memory;  // for brevity: a GPU would need device memory
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
    const emu::HostPointersAllowed host_memory;  // for brevity: a GPU would need device memory
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
    const emu::HostPointersAllowed host_memory;  // for brevity: a GPU would need device memory
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
    const emu::HostPointersAllowed host_memory;  // for brevity: a GPU would need device memory
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
    EXPECT_NE(run(0, 300 * 1024).find("cudaFuncSetAttribute failed"), std::string::npos) << "past the device's";
}

void smem_kernel() {}
void other_smem_kernel() {}

// CUDA allows a kernel 48 KiB of dynamic shared memory less its static shared memory unless it is allowed more;
// the emulator, not knowing the static part, refuses any amount beyond the kernel's allowance.
TEST(Emulator, DynamicSharedMemoryNeedsItsKernelsAllowance) {
    const void* k = reinterpret_cast<const void*>(&smem_kernel);
    EXPECT_NE(fault_of([&] { emu::check_dynamic_smem_allowed(k, 16); }).find("allowed 0"), std::string::npos);
    EXPECT_EQ(fault_of([&] { emu::check_dynamic_smem_allowed(k, 0); }), "");
    ASSERT_EQ(cudaFuncSetAttribute(&smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 4096), cudaSuccess);
    EXPECT_EQ(fault_of([&] { emu::check_dynamic_smem_allowed(k, 4096); }), "");
    EXPECT_NE(fault_of([&] { emu::check_dynamic_smem_allowed(k, 4097); }).find("allowed 4096"), std::string::npos);
    EXPECT_EQ(cudaFuncSetAttribute(&smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024),
              cudaErrorInvalidValue);
    // CUDA_LAUNCH raises the allowance a launch needs, and only the launching kernel's.
    EXPECT_EQ(fault_of([&] { CUDA_LAUNCH(smem_kernel, 1, 32, 40 * 1024, nullptr); }), "");
    EXPECT_EQ(fault_of([&] { emu::check_dynamic_smem_allowed(k, 40 * 1024); }), "");
    const void* other = reinterpret_cast<const void*>(&other_smem_kernel);
    EXPECT_NE(fault_of([&] { emu::check_dynamic_smem_allowed(other, 16); }).find("allowed 0"), std::string::npos);
}

// ---- wgmma ----------------------------------------------------------------------------------------------------
// That the products come out right is CudaWgmma's (tests/cuda/wgmma_test.cu), on the emulator and the GPU alike;
// here, the asynchrony and the faults only the emulator reports.
std::vector<bf16> random_tile(test::Rng& rng) {
    std::vector<bf16> m(64 * 64);
    for (bf16& x : m) x = __float2bfloat16_rn(float(rng.uniform()));
    return m;
}

// The fault the run reports, or "".
std::string wgmma_fault(test::WgmmaStep step, test::WgmmaProducts* out = nullptr) {
    test::Rng rng(5);
    const std::vector<bf16> A = random_tile(rng), B = random_tile(rng), V = random_tile(rng);
    return fault_of([&] {
        test::WgmmaProducts r = test::run_wgmma_products(A, B, V, step);
        if (out) *out = std::move(r);
    });
}

TEST(Emulator, WgmmaWritesItsAccumulatorsAtTheWait) {
    test::WgmmaProducts r;
    ASSERT_EQ(wgmma_fault(test::WgmmaStep::EarlyRead, &r), "");
    for (float x : r.S) ASSERT_EQ(x, 7.f);
}

TEST(Emulator, ReportsWgmmaMisuse) {
    using Step = test::WgmmaStep;
    auto has = [](Step step, const std::string& what) {
        const std::string f = wgmma_fault(step);
        EXPECT_NE(f.find(what), std::string::npos) << f;
    };
    has(Step::NoFence, "wgmma without a wgmma.fence");
    has(Step::NoProxyFence, "did not make visible with fence.proxy.async");
    has(Step::NoWait, "a block ends with a wgmma that no wgmma.wait_group retired");
    has(Step::Misaligned, "is not at a row of a 128-byte swizzle pattern");
    has(Step::Swizzle64, "swizzle mode 2 (only the 128-byte one, 1, is emulated)");
    has(Step::CopyInFlight, "which a wgmma issued earlier may still read: no wgmma.wait_group has retired it");
}

void read_kernel(float* out, const float* in, int i) { *out = in[i]; }

TEST(EmulatorDeathTest, DeviceMemoryEndsAtAnUnmappedPage) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");  // the process may hold OpenMP threads
    float* buf = nullptr;
    ASSERT_EQ(cudaMalloc(&buf, 64 * sizeof(float)), cudaSuccess);
    float out = 0.f;
    const emu::HostPointersAllowed host_memory;
    CUDA_LAUNCH(read_kernel, 1, 1, 0, nullptr, &out, buf, 63);
    EXPECT_TRUE(std::isnan(out)) << out;  // allocations start as NaN
    EXPECT_DEATH(CUDA_LAUNCH(read_kernel, 1, 1, 0, nullptr, &out, buf, 64), "");
    EXPECT_EQ(cudaFree(buf), cudaSuccess);
    EXPECT_EQ(cudaFree(buf), cudaErrorInvalidValue);
}

void fill_kernel(float* out, float v, int n) {
    for (int i = int(threadIdx.x); i < n; i += int(blockDim.x)) out[i] = v;
}

// Kernels and copies get host memory where a GPU needs its own (or cudaMallocHost's, which it can map): refused, as
// a GPU would fault on it or CUDA refuse it.
TEST(Emulator, ReportsHostMemoryWhereTheDeviceIsMeant) {
    float *dev = nullptr, *pinned = nullptr;
    ASSERT_EQ(cudaMalloc(&dev, 8 * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMallocHost(&pinned, 8 * sizeof(float)), cudaSuccess);
    std::vector<float> host(8);
    const std::string f = fault_of([&] { CUDA_LAUNCH(fill_kernel, 1, 32, 0, nullptr, host.data(), 1.f, 8); });
    EXPECT_NE(f.find("argument 0 of the kernel launched at"), std::string::npos) << f;
    EXPECT_NE(f.find("points to host memory"), std::string::npos) << f;
    EXPECT_EQ(fault_of([&] { CUDA_LAUNCH(fill_kernel, 1, 32, 0, nullptr, pinned, 2.f, 8); }), "");
    EXPECT_EQ(pinned[7], 2.f);
    EXPECT_EQ(fault_of([&] { CUDA_LAUNCH(fill_kernel, 1, 32, 0, nullptr, dev + 8, 2.f, 0); }), "") << "one past";
    const size_t bytes = 8 * sizeof(float);
    EXPECT_EQ(cudaMemcpyAsync(host.data(), pinned, bytes, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    EXPECT_EQ(cudaMemcpyAsync(host.data(), pinned, bytes, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
    EXPECT_EQ(cudaMemcpyAsync(dev, host.data(), bytes, cudaMemcpyDeviceToDevice), cudaErrorInvalidValue);
    EXPECT_EQ(cudaMemsetAsync(host.data(), 0, bytes), cudaErrorInvalidValue);
    EXPECT_EQ(cudaMemcpyAsync(dev, host.data(), bytes, cudaMemcpyHostToDevice), cudaSuccess);
    EXPECT_EQ(cudaMemcpyAsync(host.data(), dev, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(cudaFreeHost(pinned), cudaSuccess);
    EXPECT_EQ(cudaFree(dev), cudaSuccess);
}

// A stream's work waits for the host to wait for it, in queue order, and another stream's wait does not run it;
// copies to pageable memory are done on return. Eager streams run each piece at once.
TEST(Emulator, StreamWorkRunsWhenTheHostWaits) {
    ASSERT_FALSE(emu::streams_eager()) << "run without SINKLAB_EMU_STREAMS=eager";
    cudaStream_t a = nullptr, b = nullptr;
    ASSERT_EQ(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking), cudaSuccess);
    float *dev = nullptr, *pinned = nullptr;
    ASSERT_EQ(cudaMalloc(&dev, 8 * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMallocHost(&pinned, 8 * sizeof(float)), cudaSuccess);
    std::fill(pinned, pinned + 8, -1.f);
    CUDA_LAUNCH(fill_kernel, 1, 32, 0, a, dev, 3.f, 8);
    ASSERT_EQ(cudaMemcpyAsync(pinned, dev, 8 * sizeof(float), cudaMemcpyDeviceToHost, a), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(b), cudaSuccess);
    EXPECT_EQ(pinned[0], -1.f) << "waiting for stream b ran stream a's copy";
    ASSERT_EQ(cudaStreamSynchronize(a), cudaSuccess);
    EXPECT_EQ(pinned[7], 3.f);

    CUDA_LAUNCH(fill_kernel, 1, 32, 0, a, dev, 5.f, 8);
    std::vector<float> pageable(8, -1.f);
    ASSERT_EQ(cudaMemcpyAsync(pageable.data(), dev, 8 * sizeof(float), cudaMemcpyDeviceToHost, a), cudaSuccess);
    EXPECT_EQ(pageable[7], 5.f) << "a copy to pageable memory returned before it was done";

    emu::set_streams_eager(true);  // no ASSERT until it is set back: later tests expect deferred streams
    CUDA_LAUNCH(fill_kernel, 1, 32, 0, a, dev, 7.f, 8);
    EXPECT_EQ(cudaMemcpyAsync(pinned, dev, 8 * sizeof(float), cudaMemcpyDeviceToHost, a), cudaSuccess);
    EXPECT_EQ(pinned[7], 7.f);
    emu::set_streams_eager(false);
    EXPECT_EQ(cudaFreeHost(pinned), cudaSuccess);
    EXPECT_EQ(cudaFree(dev), cudaSuccess);
    EXPECT_EQ(cudaStreamDestroy(a), cudaSuccess);
    EXPECT_EQ(cudaStreamDestroy(b), cudaSuccess);
}

// A launch beyond the device's limits fails at the launch, as CUDA's; a fault inside a queued kernel reaches the
// wait (naming the launch), and drops the rest of that stream's work. An event's time is there only after its
// record has run.
TEST(Emulator, StreamErrorsAndEvents) {
    cudaStream_t st = nullptr;
    ASSERT_EQ(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), cudaSuccess);
    float* dev = nullptr;
    ASSERT_EQ(cudaMalloc(&dev, 8 * sizeof(float)), cudaSuccess);
    EXPECT_NE(fault_of([&] { CUDA_LAUNCH(fill_kernel, 1, 2048, 0, st, dev, 1.f, 8); }).find("invalid launch"),
              std::string::npos);

    cudaEvent_t start = nullptr, end = nullptr;
    ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
    ASSERT_EQ(cudaEventCreate(&end), cudaSuccess);
    ASSERT_EQ(cudaEventRecord(start, st), cudaSuccess);
    CUDA_LAUNCH(fill_kernel, 1, 32, 0, st, dev, 1.f, 8);
    ASSERT_EQ(cudaEventRecord(end, st), cudaSuccess);
    float ms = -1.f;
    EXPECT_EQ(cudaEventElapsedTime(&ms, start, end), cudaErrorNotReady);
    ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
    EXPECT_EQ(cudaEventElapsedTime(&ms, start, end), cudaSuccess);
    EXPECT_GE(ms, 0.f);

    CUDA_LAUNCH(fill_kernel, 1, 32, 0, st, dev, 1.f, 9);  // one past the end: the tail check after the launch
    ASSERT_EQ(cudaMemsetAsync(dev, 0, 8 * sizeof(float), st), cudaSuccess);
    const std::string f = fault_of([&] { cudaStreamSynchronize(st); });
    EXPECT_NE(f.find("bytes past the end of a device allocation"), std::string::npos) << f;
    EXPECT_NE(f.find("launched at"), std::string::npos) << f;
    float back = 0.f;
    ASSERT_EQ(cudaMemcpyAsync(&back, dev, sizeof back, cudaMemcpyDeviceToHost, st), cudaSuccess);
    EXPECT_EQ(back, 1.f) << "the memset queued after the faulting launch ran";
    EXPECT_EQ(cudaEventDestroy(start), cudaSuccess);
    EXPECT_EQ(cudaEventDestroy(end), cudaSuccess);
    EXPECT_EQ(cudaFree(dev), cudaSuccess);
    EXPECT_EQ(cudaStreamDestroy(st), cudaSuccess);
}

}  // namespace
}  // namespace sinklab
