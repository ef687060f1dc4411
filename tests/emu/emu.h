// A CPU emulator for the CUDA backend, so that its tests run on machines without a GPU (CI): the headers of
// tests/emu/include stand in for the CUDA runtime (host memory, capped at kDeviceBytes and filled with NaNs when
// allocated; streams below), cuBLASLt (a host GEMM with its documented semantics) and CUB's radix sort,
// and for kernels/cuda's mma.cuh and launch.cuh, so that src/backend/cuda_backend.cu and every kernels/cuda file
// but cuDNN's compile as C++ and run their kernels here. sinklab_emu_tests runs the tests of tests/cuda on it.
//
// A grid runs block after block. The threads of a block are fibers of one OS thread that switch only where CUDA
// threads meet: at __syncthreads and at warp collectives (shuffles, ldmatrix, mma). So a run is deterministic, and
// whatever a thread computes between two meeting points is plain C++. What the hardware leaves open is made as
// unfavourable as the emulator can make it:
// - the threads of odd blocks (x + y + z) run in reverse order, so that a missing __syncwarp or __syncthreads shows
//   in one of the two orders;
// - cp.async copies land at the latest moment allowed, when the issuing thread's cp.async.wait_group retires
//   them; a kernel that reads a tile before waiting for it reads stale data;
// - shared memory is checked for races between warps at the granularity of barrier epochs: a warp reading bytes
//   (ldmatrix) that another warp wrote (cp.async) since the last __syncthreads, or an asynchronous copy into bytes
//   another warp read after the copy was issued, is an error;
// - the launch's dynamic shared memory and every device allocation start full of NaNs and end at an unmapped page,
//   so reading what was never written shows in the results, and an access past the end stops the test (SIGSEGV)
//   instead of corrupting memory; before that page lies the rounding of the size (to 256 bytes, as cudaMalloc's,
//   or 16), whose bytes are -1.7e38 as floats, and a write there is an error after the launch;
// - a warpgroup MMA (wgmma) reads shared memory and its register operands, and writes its accumulators, only when
//   wgmma.wait_group retires it, so a kernel that touches either before the wait computes with stale values; it
//   must follow wgmma.fence, it may read only shared bytes that a __syncthreads and the writer's
//   fence.proxy.async separate from their cp.async, and no cp.async may be issued into bytes it reads until a wait
//   has retired it (the copy may land, and the wgmma read, any time in between);
// - the dynamic shared memory starts at a shared-window address that is 16-byte but not 1024-byte aligned, so a
//   kernel that needs a swizzle pattern's alignment must make it;
// - lanes of a warp meeting at different collectives, a barrier some threads never reach, a misaligned ldmatrix
//   row or cp.async address, a launch beyond the hardware's limits or its kernel's dynamic shared memory
//   allowance, and host memory as a kernel's pointer argument or a copy's device side are errors (sinklab::Error,
//   or the call's error code);
// - the work queued on a stream (launches, asynchronous copies and memsets, GEMMs, sorts, NCCL collectives, event
//   records) runs as late as CUDA allows: when the host waits for that stream (cudaStreamSynchronize, or
//   cudaStreamDestroy), or for the whole device (cudaFree and cudaFreeHost synchronize it), and not when it waits
//   for another stream. So host code that reads a result, or refills a buffer a queued copy reads, before waiting
//   sees what it would see behind a busy GPU, and a stream that does not wait for another's results reads stale
//   data (or the NaNs of a fresh allocation).
//   Copies to or from pageable host memory (not cudaMallocHost's) wait for their stream and return done, as CUDA's
//   do. set_streams_eager(true) (or SINKLAB_EMU_STREAMS=eager) runs all work at once instead, the other legal
//   extreme, in which a buffer filled after the copy that reads it was queued shows its old contents. Work on the
//   null stream always runs at once: the emulator's own tests launch there and look at once.
// Not emulated: plain loads and stores are not race-checked, there is no memory model beyond the above, and
// nothing here says anything about speed. __launch_bounds__ is dropped (a block larger than a kernel's bound would
// run here and fail to launch on a GPU), and a kernel's static __shared__ variables are function statics: not
// counted against the shared memory limit, not NaN-filled, holding what the previous block left (zeros at first).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

struct CUstream_st;

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace sinklab::emu {

// Limits of an sm_90 device (H100/H200) that a launch must respect.
constexpr size_t kMaxDynamicSmem = 227 * 1024;
constexpr unsigned kMaxBlockThreads = 1024;

// Device memory for the runtime stand-in, at most kDeviceBytes in all (device_alloc returns nullptr beyond it):
// NaN-filled, 256-byte aligned as cudaMalloc's, and ending at an unmapped page after rounding up to 256 bytes, so
// that a kernel reading or writing past that end stops the test (SIGSEGV). device_free is false for a pointer
// device_alloc did not return.
constexpr size_t kDeviceBytes = size_t(4) << 30;
void* device_alloc(size_t bytes);
bool device_free(void* p);
size_t device_allocated();
// Whether a GPU could dereference p: inside (or one past) a device allocation, or in cudaMallocHost's memory (pinned
// and mapped). A launch refuses any other pointer argument, as a GPU would fault on it, unless a HostPointersAllowed
// lives: the emulator's own tests hand kernels host memory for brevity.
bool device_accessible(const void* p);
bool in_device_memory(const void* p);
struct HostPointersAllowed {
    HostPointersAllowed();
    ~HostPointersAllowed();
    HostPointersAllowed(const HostPointersAllowed&) = delete;
    HostPointersAllowed& operator=(const HostPointersAllowed&) = delete;
};
bool host_pointers_allowed();
// Each process has a GPU of its own (its UUID names the process), unless set_device_shared(true) makes every process
// see the same one, as ranks that share a GPU do.
void set_device_shared(bool shared);
bool device_shared();

// Throws sinklab::Error for a launch beyond the hardware's limits; a launch's queuing calls it, as CUDA's launch
// reports such errors at once.
void check_launch(dim3 grid, dim3 block, size_t smem_bytes);
// A kernel's dynamic shared memory allowance, cudaFuncSetAttribute's MaxDynamicSharedMemorySize: false beyond the
// device's. A launch through CUDA_LAUNCH is refused (check_dynamic_smem_allowed) for any dynamic shared memory past
// it, as not knowing the kernel's static shared memory the emulator cannot tell whether CUDA's default would do.
bool set_dynamic_smem_allowed(const void* kernel, int bytes);
void check_dynamic_smem_allowed(const void* kernel, size_t smem_bytes);
// Runs body() once per thread of the grid; returns when every block has finished. Throws sinklab::Error on any
// fault listed above, naming the block and thread.
void run_grid(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()>& body);

// Queues work on a stream (made by cudaStreamCreateWithFlags), to run when the host waits for it; null, or eager
// streams: runs it now. An error thrown by queued work reaches the call that waits, and drops the stream's rest.
void enqueue(CUstream_st* stream, std::function<void()> work);
// Whether work runs when queued (the start value: SINKLAB_EMU_STREAMS, "eager" or "deferred", default deferred).
void set_streams_eager(bool eager);
bool streams_eager();

// The running thread's coordinates and its block's dynamic shared memory.
const dim3& thread_idx();
const dim3& block_idx();
const dim3& block_dim();
const dim3& grid_dim();
unsigned char* dynamic_smem();

// __syncthreads(): every thread of the block that has not exited must arrive.
void sync_block();

// A warp collective. Every lane of the warp calls it with the same combine; the last lane to arrive runs
// combine(ins, outs) over all 32 lanes' inputs and outputs, then the lanes go on.
using Combine = void (*)(const void* const* ins, void* const* outs);
void warp_collective(const void* in, void* out, Combine combine);

// __shfl_xor_sync, __shfl_sync and __shfl_up_sync (full mask, width 32): lane l gets v of lane l ^ arg, of lane
// arg, or of lane l - arg (its own below arg).
enum class Shfl { Xor, Idx, Up };
template <Shfl kMode, typename T> T shfl(T v, int arg) {
    struct In {
        T v;
        int arg;
    } in{v, arg};
    T out;
    warp_collective(&in, &out, [](const void* const* ins, void* const* outs) {
        for (int l = 0; l < 32; l++) {
            const int a = static_cast<const In*>(ins[l])->arg;
            const int src = kMode == Shfl::Xor ? l ^ a : kMode == Shfl::Idx ? a : l >= a ? l - a : l;
            *static_cast<T*>(outs[l]) = static_cast<const In*>(ins[src & 31])->v;
        }
    });
    return out;
}
void sync_warp();

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: lane l names row l % 8 of matrix l / 8.
void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans);
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, d += a b, with the PTX fragment layouts.
void mma_bf16_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);

// cp.async of `bytes` (4, 8 or 16) from global src to shared dst, of which src_bytes are read and the rest
// zero-filled; commit_group; wait_group n (all but the newest n groups of this thread land now).
void async_copy(void* dst, const void* src, int bytes, int src_bytes);
void async_commit();
void async_wait(int n);

// The shared-window address of a byte of the launch's dynamic shared memory (cvta.to.shared).
uint32_t shared_address(const void* p);

// Hopper's warpgroup MMA, wgmma.mma_async.sync.aligned.m64nNk16.f32.bf16.bf16, issued by the 128 threads of warps
// 4i .. 4i + 3 together: d [64 x N] += A [64 x 16] B [16 x N]. B, and A when a is null, come from
// shared memory through a matrix descriptor (PTX ISA, "Matrix Descriptor Format" and "Shared Memory Matrix
// Layout": start address, leading and stride byte offsets; of the swizzle modes only the 128-byte one), K-major,
// or MN-major for B when trans_b. d holds this thread's N / 2 accumulators in the m16n8 layout of its warp's 16
// rows, a (when given) its 4 registers of A in the m16n8k16 layout.
void wgmma_fence();
void wgmma(float* d, int n, const uint32_t* a, uint64_t desc_a, uint64_t desc_b, bool trans_b);
void wgmma_commit();
void wgmma_wait(int n);
// fence.proxy.async.shared::cta: this thread's landed cp.async bytes become visible to wgmma.
void fence_proxy_async();

}  // namespace sinklab::emu
