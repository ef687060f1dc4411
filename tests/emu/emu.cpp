// The scheduler and the emulated instructions of emu.h.
//
// Fibers switch with _setjmp/_longjmp, which save no signal mask (swapcontext makes a system call at every switch,
// and a switch happens at every warp instruction); ucontext only starts each fiber on its own stack. Fortified
// longjmp refuses to jump between stacks, so this file opts out of it.
#undef _FORTIFY_SOURCE
#include "emu.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <csetjmp>
#include <cmath>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/check.h"
#include "core/dtype.h"

namespace sinklab::emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;
// The shared-window address of dynamic shared memory byte 0: 16-byte aligned, as CUDA promises, and no more.
constexpr uint32_t kSmemWindowBase = 0x410;

// A cp.async issued and not yet landed; group: the index its commit group gets (or has).
struct Copy {
    unsigned char* dst;
    const unsigned char* src;
    int bytes, src_bytes;
    uint32_t issue_epoch;
    int group;
};

struct Fiber {
    ucontext_t start;  // the first entry, onto the fiber's stack
    jmp_buf resume;    // every later one
    bool started = false;
    dim3 idx;
    int warp = 0, lane = 0;
    bool done = false, waiting = false;
    std::vector<Copy> copies;
    int committed = 0;  // commit groups closed so far
    std::vector<std::pair<size_t, size_t>> unfenced;  // shared byte ranges landed since this thread's proxy fence
    bool wg_fenced = false;  // a wgmma.fence since the last wgmma.wait_group
    int wg_committed = 0;
};

// The threads of a warp (32) or warpgroup (128) meeting at a collective.
struct Meeting {
    int lanes = 0, arrived = 0;
    Combine combine = nullptr;
    const void* ins[128];
    void* outs[128];
};

// A wgmma issued and not yet retired: the shared bytes of its operands (A first, when from shared memory), and
// each thread's accumulators and A registers.
struct Wgmma {
    int n;
    bool a_in_smem;
    int group;
    uint32_t issue_epoch;
    std::vector<size_t> a_at, b_at;  // a_at[m * 16 + k], b_at[k * n + j]: byte offsets of the bf16 elements
    float* d[128];
    const uint32_t* a[128];
};

// Who touched a byte of shared memory in which barrier epoch (epoch 0: never).
struct Shadow {
    uint32_t write_epoch = 0, read_epoch = 0;
    int write_warp = -1;
    uint32_t read_warps = 0;  // bit w: warp w read it in read_epoch
    bool async_hidden = false;  // landed by cp.async, and its thread has not run fence.proxy.async since
    int wgmma_reads = 0;        // wgmmas issued and not yet retired that read it
};

// Memory with an unmapped page right after `bytes` usable bytes (rounded up to `align`, a power of two at most a
// page), and one before. A write past `bytes` inside the rounding faults nowhere, so the rounding holds kTail and
// tail_rewritten() looks for other bytes there. Not NaNs: a NaN read there and stored back keeps its bits.
struct Guarded {
    unsigned char* region = nullptr;
    size_t region_bytes = 0;
    unsigned char* data = nullptr;
    size_t bytes = 0, rounded = 0;

    explicit Guarded(size_t bytes_, size_t align = 16) : bytes(bytes_), rounded((bytes_ + align - 1) / align * align) {
        const size_t page = size_t(sysconf(_SC_PAGESIZE));
        const size_t pages = (rounded + page - 1) / page;
        region_bytes = (pages + 2) * page;
        void* r = mmap(nullptr, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        SL_ASSERT(r != MAP_FAILED, "emu: mmap of {} bytes failed", region_bytes);
        region = static_cast<unsigned char*>(r);
        mprotect(region, page, PROT_NONE);
        mprotect(region + (pages + 1) * page, page, PROT_NONE);
        data = region + (pages + 1) * page - rounded;
        std::memset(data + bytes, kTail, rounded - bytes);
    }
    ~Guarded() { munmap(region, region_bytes); }
    // Whether a byte of the rounding was written since; it holds kTail again after, so that one fault is said once.
    bool tail_rewritten() {
        bool written = false;
        for (size_t i = bytes; i < rounded; i++) written |= data[i] != kTail;
        if (written) std::memset(data + bytes, kTail, rounded - bytes);
        return written;
    }
    // -1.7e38 as f32 and bf16, -5.5e303 as f64: sums of a few overflow.
    static constexpr unsigned char kTail = 0xfe;
    Guarded(const Guarded&) = delete;
    Guarded& operator=(const Guarded&) = delete;
};

struct State {
    dim3 grid, block, block_idx;
    const std::function<void()>* body = nullptr;
    std::vector<Fiber> fibers;
    std::vector<Meeting> warps, warpgroups;
    std::vector<std::vector<Wgmma>> wgmmas;  // per warpgroup, in issue order
    Fiber* current = nullptr;
    ucontext_t main_ctx;  // written by each fiber's first entry, never resumed
    jmp_buf main_resume;
    int alive = 0, at_barrier = 0;
    uint32_t epoch = 1;
    unsigned char* smem = nullptr;
    size_t smem_bytes = 0;
    std::vector<Shadow> shadow;
    std::exception_ptr error;
};

thread_local State* g = nullptr;

// Never destroyed: a backend held in a static is freed after every static made later, this one included.
std::map<void*, std::pair<Guarded*, size_t>>& device_memory() {
    static auto* m = new std::map<void*, std::pair<Guarded*, size_t>>;
    return *m;
}

[[noreturn]] void fault(const std::string& what) {
    const dim3 b = g->block_idx, t = g->current ? g->current->idx : dim3(0, 0, 0);
    throw Error(fmt::format("emu: block ({}, {}, {}) thread ({}, {}, {}): {}", b.x, b.y, b.z, t.x, t.y, t.z, what));
}

Fiber& self() {
    SL_ASSERT(g && g->current, "emu: a device function was called outside run_grid");
    return *g->current;
}

// The stacks of this OS thread's fibers, kept from launch to launch: each takes three system calls to map and guard.
std::vector<std::unique_ptr<Guarded>>& stacks(size_t n) {
    thread_local std::vector<std::unique_ptr<Guarded>> pool;
    while (pool.size() < n) pool.push_back(std::make_unique<Guarded>(kStackBytes));
    return pool;
}

void to_scheduler(Fiber& f) {
    if (!_setjmp(f.resume)) _longjmp(g->main_resume, 1);
}

void yield() {
    Fiber& f = self();
    f.waiting = true;
    to_scheduler(f);
}

size_t smem_offset(const void* p, size_t bytes, const char* what) {
    const auto* c = static_cast<const unsigned char*>(p);
    if (c < g->smem || c + bytes > g->smem + g->smem_bytes)
        fault(fmt::format("{} of {} bytes outside the launch's {} bytes of dynamic shared memory", what, bytes,
                          g->smem_bytes));
    return size_t(c - g->smem);
}

void note_read(const void* p, size_t bytes, int warp) {
    const size_t at = smem_offset(p, bytes, "ldmatrix row");
    for (size_t i = at; i < at + bytes; i++) {
        Shadow& s = g->shadow[i];
        if (s.write_epoch == g->epoch && s.write_warp != warp)
            fault(fmt::format("warp {} reads shared byte {} that warp {} wrote since the last __syncthreads", warp, i,
                              s.write_warp));
        if (s.read_epoch != g->epoch) s.read_epoch = g->epoch, s.read_warps = 0;
        s.read_warps |= 1u << warp;
    }
}

void land(const Copy& c, Fiber& f) {
    const int warp = f.warp;
    const size_t at = smem_offset(c.dst, size_t(c.bytes), "cp.async destination");
    for (size_t i = at; i < at + size_t(c.bytes); i++) {
        Shadow& s = g->shadow[i];
        if (s.read_epoch >= c.issue_epoch && (s.read_warps & ~(1u << warp)))
            fault(fmt::format("a cp.async of warp {} into shared byte {} races with a read by another warp (mask "
                              "{:#x}) after it was issued and before a __syncthreads",
                              warp, i, s.read_warps));
        if (s.write_epoch >= c.issue_epoch && s.write_warp != warp && s.write_warp >= 0)
            fault(fmt::format("cp.asyncs of warps {} and {} write shared byte {} in the same barrier epoch", warp,
                              s.write_warp, i));
        s.write_epoch = g->epoch, s.write_warp = warp;
        s.async_hidden = true;
    }
    f.unfenced.emplace_back(at, size_t(c.bytes));
    std::memcpy(c.dst, c.src, size_t(c.src_bytes));
    std::memset(c.dst + c.src_bytes, 0, size_t(c.bytes - c.src_bytes));
}

void land_through(Fiber& f, int last_group) {
    std::vector<Copy> later;
    for (const Copy& c : f.copies) {
        if (c.group <= last_group) land(c, f);
        else later.push_back(c);
    }
    f.copies = std::move(later);
}

void release_barrier_if_complete() {
    if (g->at_barrier == 0 || g->at_barrier < g->alive) return;
    g->at_barrier = 0;
    g->epoch++;
    for (Fiber& f : g->fibers)
        if (!f.done) f.waiting = false;
}

// A fiber runs its thread of one block after another; between blocks it waits in to_scheduler. It never returns:
// when the grid is done (or has failed) it is abandoned, and its stack goes to the next launch.
void fiber_main() {
    for (;;) {
        Fiber& f = *g->current;
        try {
            (*g->body)();
            land_through(f, INT32_MAX);  // copies never waited for still land
        } catch (...) {
            if (!g->error) g->error = std::current_exception();
        }
        f.done = true;
        to_scheduler(f);
    }
}

// Runs fiber f until it next waits or finishes its thread.
void resume(Fiber& f) {
    g->current = &f;
    if (_setjmp(g->main_resume)) return;
    if (f.started) _longjmp(f.resume, 1);
    f.started = true;
    swapcontext(&g->main_ctx, &f.start);
}

void start_fibers(size_t n) {
    g->fibers.assign(n, Fiber{});
    std::vector<std::unique_ptr<Guarded>>& pool = stacks(n);
    for (size_t i = 0; i < n; i++) {
        Fiber& f = g->fibers[i];
        getcontext(&f.start);
        f.start.uc_stack.ss_sp = pool[i]->data;
        f.start.uc_stack.ss_size = kStackBytes;
        f.start.uc_link = nullptr;
        makecontext(&f.start, fiber_main, 0);
    }
}

// Odd blocks run their threads in reverse order: code that needs a __syncwarp or __syncthreads it lacks reads
// data that is not there yet in one of the two orders.
void run_block(bool reverse) {
    const int n = int(g->fibers.size());
    g->warps.assign(size_t((n + 31) / 32), Meeting{});
    for (int w = 0; w < int(g->warps.size()); w++) g->warps[size_t(w)].lanes = std::min(32, n - 32 * w);
    g->warpgroups.assign(size_t((n + 127) / 128), Meeting{});
    for (int w = 0; w < int(g->warpgroups.size()); w++) g->warpgroups[size_t(w)].lanes = std::min(128, n - 128 * w);
    g->wgmmas.assign(g->warpgroups.size(), {});
    std::memset(g->smem, 0xff, g->smem_bytes);  // NaN in f32 and bf16: what was never written shows
    std::fill(g->shadow.begin(), g->shadow.end(), Shadow{});
    g->epoch = 1;
    g->alive = n, g->at_barrier = 0;
    for (int i = 0; i < n; i++) {
        Fiber& f = g->fibers[size_t(i)];
        f.idx = dim3(unsigned(i) % g->block.x, unsigned(i) / g->block.x % g->block.y,
                     unsigned(i) / (g->block.x * g->block.y));
        f.warp = i / 32, f.lane = i % 32;
        f.done = f.waiting = false;
        f.copies.clear();
        f.committed = 0;
        f.unfenced.clear();
        f.wg_fenced = false;
        f.wg_committed = 0;
    }
    while (g->alive > 0) {
        bool ran = false;
        for (int i = 0; i < n; i++) {
            Fiber& f = g->fibers[size_t(reverse ? n - 1 - i : i)];
            if (f.done || f.waiting) continue;
            ran = true;
            resume(f);
            if (g->error) std::rethrow_exception(g->error);
            if (f.done) {
                g->alive--;
                release_barrier_if_complete();
            }
        }
        if (!ran) {
            g->current = nullptr;
            fault(fmt::format("{} threads wait at a __syncthreads or warp collective that other threads never reach",
                              g->alive));
        }
    }
    for (const std::vector<Wgmma>& pending : g->wgmmas)
        if (!pending.empty()) fault("a block ends with a wgmma that no wgmma.wait_group retired");
    g->current = nullptr;
}

uint32_t bf16_pair(const unsigned char* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
uint16_t bf16_at(const unsigned char* row, int col) {
    uint16_t v;
    std::memcpy(&v, row + 2 * col, 2);
    return v;
}

template <bool kTrans> void ldmatrix_combine(const void* const* ins, void* const* outs) {
    const int warp = self().warp;
    const unsigned char* rows[32];
    for (int l = 0; l < 32; l++) {
        rows[l] = *static_cast<const unsigned char* const*>(ins[l]);
        if (reinterpret_cast<uintptr_t>(rows[l]) % 16 != 0)
            fault(fmt::format("ldmatrix: lane {} gives a row address that is not 16-byte aligned", l));
        note_read(rows[l], 16, warp);
    }
    for (int l = 0; l < 32; l++) {
        auto* r = static_cast<uint32_t*>(outs[l]);
        for (int i = 0; i < 4; i++) {
            const unsigned char* const* m = rows + 8 * i;  // the 8 rows of matrix i
            if (kTrans)
                r[i] = uint32_t(bf16_at(m[2 * (l % 4)], l / 4)) | uint32_t(bf16_at(m[2 * (l % 4) + 1], l / 4)) << 16;
            else
                r[i] = bf16_pair(m[l / 4] + 4 * (l % 4));
        }
    }
}

struct MmaIn {
    float d[4];
    uint32_t a[4], b0, b1;
};

void mma_combine(const void* const* ins, void* const* outs) {
    float A[16][16], Bm[16][8], C[16][8];
    for (int l = 0; l < 32; l++) {
        const auto& in = *static_cast<const MmaIn*>(ins[l]);
        const int r = l / 4, c = 2 * (l % 4);
        for (int h = 0; h < 2; h++) {  // low and high half of each register: columns (or k) c and c + 1
            const int s = 16 * h;
            A[r][c + h] = bf16_bits_to_float(uint16_t(in.a[0] >> s));
            A[r + 8][c + h] = bf16_bits_to_float(uint16_t(in.a[1] >> s));
            A[r][c + 8 + h] = bf16_bits_to_float(uint16_t(in.a[2] >> s));
            A[r + 8][c + 8 + h] = bf16_bits_to_float(uint16_t(in.a[3] >> s));
            Bm[c + h][r] = bf16_bits_to_float(uint16_t(in.b0 >> s));
            Bm[c + 8 + h][r] = bf16_bits_to_float(uint16_t(in.b1 >> s));
            C[r][c + h] = in.d[h];
            C[r + 8][c + h] = in.d[2 + h];
        }
    }
    for (int l = 0; l < 32; l++) {
        auto* d = static_cast<float*>(outs[l]);
        const int r = l / 4, c = 2 * (l % 4);
        for (int e = 0; e < 4; e++) {
            const int i = r + 8 * (e / 2), j = c + e % 2;
            float acc = C[i][j];
            for (int k = 0; k < 16; k++) acc = std::fma(A[i][k], Bm[k][j], acc);
            d[e] = acc;
        }
    }
}

// ---- wgmma -------------------------------------------------------------------------------------------------------
// The byte offset in dynamic shared memory of bf16 element (mn, k) of a wgmma operand (M or N by 16), from its
// matrix descriptor: the PTX ISA's canonical layout for the 128-byte swizzle (rows of 128 bytes in groups of 8 SBO
// apart; MN-major: 64-element blocks along MN LBO apart), then the swizzle, which XORs address bits 4-6 with bits
// 7-9 and so acts on the shared-window address itself. The other swizzle modes are not emulated.
size_t operand_at(uint64_t desc, int mn, int k, bool mn_major) {
    const uint32_t start = uint32_t(desc & 0x3fff) << 4, lbo = uint32_t(desc >> 16 & 0x3fff) << 4,
                   sbo = uint32_t(desc >> 32 & 0x3fff) << 4;
    if (desc >> 62 != 1)
        fault(fmt::format("wgmma: swizzle mode {} (only the 128-byte one, 1, is emulated)", desc >> 62));
    if ((desc >> 49 & 7) != 0) fault("wgmma: a matrix descriptor with a base offset (not emulated)");
    if ((start >> 7 & 7) != 0)
        fault(fmt::format("wgmma: descriptor start address {:#x} is not at a row of a 128-byte swizzle pattern that "
                          "begins on a 1024-byte boundary", start));
    const uint32_t m = uint32_t(mn), kk = uint32_t(k);
    const uint32_t off = mn_major ? m % 64 * 2 + m / 64 * lbo + kk % 8 * 128 + kk / 8 * sbo
                                  : m % 8 * 128 + m / 8 * sbo + kk * 2;
    uint32_t addr = start + off;
    addr ^= (addr >> 7 & 7) << 4;
    if (addr < kSmemWindowBase || addr - kSmemWindowBase + 2 > g->smem_bytes)
        fault(fmt::format("wgmma: operand element at shared address {:#x}, outside the launch's {} bytes of dynamic "
                          "shared memory", addr, g->smem_bytes));
    return addr - kSmemWindowBase;
}

// Adds `by` to the in-flight read count of every operand byte of a wgmma: 1 at its issue, -1 when a wait retires it.
void count_wgmma_reads(const Wgmma& op, int by) {
    for (const std::vector<size_t>* ats : {&op.a_at, &op.b_at})
        for (size_t at : *ats) g->shadow[at].wgmma_reads += by, g->shadow[at + 1].wgmma_reads += by;
}

// The asynchronous proxy's read of one operand element, noted for warps 4 wg .. 4 wg + 3 at issue.
void note_wgmma_read(size_t at, int wg) {
    for (size_t i = at; i < at + 2; i++) {
        Shadow& s = g->shadow[i];
        if (s.write_epoch == g->epoch)
            fault(fmt::format("wgmma reads shared byte {} that a cp.async of warp {} wrote since the last "
                              "__syncthreads", i, s.write_warp));
        if (s.async_hidden)
            fault(fmt::format("wgmma reads shared byte {}, which a cp.async of warp {} wrote and its thread did not "
                              "make visible with fence.proxy.async before the __syncthreads", i, s.write_warp));
        if (s.read_epoch != g->epoch) s.read_epoch = g->epoch, s.read_warps = 0;
        s.read_warps |= 0xfu << (4 * wg);
    }
}

struct WgmmaIn {
    float* d;
    int n;
    const uint32_t* a;
    uint64_t desc_a, desc_b;
    bool trans_b, fenced;
    int committed;
};

void wgmma_issue_combine(const void* const* ins, void* const*) {
    const int wg = self().warp / 4;
    const auto& in0 = *static_cast<const WgmmaIn*>(ins[0]);
    for (int t = 0; t < 128; t++) {
        const auto& in = *static_cast<const WgmmaIn*>(ins[t]);
        if (in.n != in0.n || in.desc_b != in0.desc_b || (in.a == nullptr) != (in0.a == nullptr) ||
            (!in.a && in.desc_a != in0.desc_a) || in.trans_b != in0.trans_b ||
            in.committed != in0.committed)
            fault(fmt::format("wgmma: thread {} of warpgroup {} issues another operation than thread 0", t, wg));
        if (!in.fenced) fault(fmt::format("wgmma without a wgmma.fence since the last wait (warpgroup {}, thread {})",
                                          wg, t));
    }
    if (in0.n < 8 || in0.n > 256 || in0.n % 8) fault(fmt::format("wgmma: N = {}", in0.n));
    Wgmma op{in0.n, in0.a == nullptr, in0.committed, g->epoch, {}, {}, {}, {}};
    if (op.a_in_smem)
        for (int m = 0; m < 64; m++)
            for (int k = 0; k < 16; k++) op.a_at.push_back(operand_at(in0.desc_a, m, k, false));
    for (int k = 0; k < 16; k++)
        for (int j = 0; j < op.n; j++) op.b_at.push_back(operand_at(in0.desc_b, j, k, in0.trans_b));
    for (size_t at : op.a_at) note_wgmma_read(at, wg);
    for (size_t at : op.b_at) note_wgmma_read(at, wg);
    count_wgmma_reads(op, 1);
    for (int t = 0; t < 128; t++) {
        const auto& in = *static_cast<const WgmmaIn*>(ins[t]);
        op.d[t] = in.d, op.a[t] = in.a;
    }
    g->wgmmas[size_t(wg)].push_back(std::move(op));
}

float smem_bf16(size_t at, uint32_t issue_epoch) {
    if (g->shadow[at].write_epoch > issue_epoch || g->shadow[at + 1].write_epoch > issue_epoch)
        fault(fmt::format("shared byte {} was written after the wgmma that reads it was issued, before its wait",
                          at));
    uint16_t v;
    std::memcpy(&v, g->smem + at, 2);
    return bf16_bits_to_float(v);
}

// Reads the operands now, and writes each thread's accumulators.
void wgmma_run(const Wgmma& op) {
    static thread_local float A[64][16], B[16][256];
    for (int t = 0; t < 128; t++) {
        const int r = 16 * (t / 32) + t % 32 / 4, c = 2 * (t % 4);  // the m16n8k16 A layout of warp t / 32
        for (int h = 0; h < 2 && !op.a_in_smem; h++) {
            const int sh = 16 * h;
            A[r][c + h] = bf16_bits_to_float(uint16_t(op.a[t][0] >> sh));
            A[r + 8][c + h] = bf16_bits_to_float(uint16_t(op.a[t][1] >> sh));
            A[r][c + 8 + h] = bf16_bits_to_float(uint16_t(op.a[t][2] >> sh));
            A[r + 8][c + 8 + h] = bf16_bits_to_float(uint16_t(op.a[t][3] >> sh));
        }
    }
    for (size_t i = 0; i < op.a_at.size(); i++) A[i / 16][i % 16] = smem_bf16(op.a_at[i], op.issue_epoch);
    for (size_t i = 0; i < op.b_at.size(); i++)
        B[i / size_t(op.n)][i % size_t(op.n)] = smem_bf16(op.b_at[i], op.issue_epoch);
    for (int t = 0; t < 128; t++) {
        const int r = 16 * (t / 32) + t % 32 / 4, c = 2 * (t % 4);
        for (int e = 0; e < op.n / 2; e++) {  // n-tile e / 4, element e % 4 of the m16n8 accumulator layout
            const int i = r + 8 * (e % 4 / 2), j = 8 * (e / 4) + c + e % 2;
            float acc = op.d[t][e];
            for (int k = 0; k < 16; k++) acc = std::fma(A[i][k], B[k][j], acc);
            op.d[t][e] = acc;
        }
    }
}

struct WaitIn {
    int n, committed;
};

void wgmma_wait_combine(const void* const* ins, void* const*) {
    const int wg = self().warp / 4;
    const auto& in0 = *static_cast<const WaitIn*>(ins[0]);
    for (int t = 0; t < 128; t++) {
        const auto& in = *static_cast<const WaitIn*>(ins[t]);
        if (in.n != in0.n || in.committed != in0.committed)
            fault(fmt::format("wgmma.wait_group: thread {} of warpgroup {} waits otherwise than thread 0", t, wg));
        g->fibers[size_t(128 * wg + t)].wg_fenced = false;
    }
    std::vector<Wgmma>& pending = g->wgmmas[size_t(wg)];
    std::vector<Wgmma> later;
    for (Wgmma& op : pending) {
        if (op.group <= in0.committed - 1 - in0.n) {
            wgmma_run(op);
            count_wgmma_reads(op, -1);
        } else {
            later.push_back(std::move(op));
        }
    }
    pending = std::move(later);
}

}  // namespace

void check_launch(dim3 grid, dim3 block, size_t smem_bytes) {
    const uint64_t threads = uint64_t(block.x) * block.y * block.z;
    if (threads == 0 || threads > kMaxBlockThreads || block.x > 1024 || block.y > 1024 || block.z > 64 ||
        grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535)
        throw Error(fmt::format("emu: invalid launch: grid ({}, {}, {}), block ({}, {}, {})", grid.x, grid.y, grid.z,
                                block.x, block.y, block.z));
    if (smem_bytes > kMaxDynamicSmem)
        throw Error(fmt::format("emu: launch asks for {} bytes of dynamic shared memory; the device has {}",
                                smem_bytes, kMaxDynamicSmem));
}

namespace {

std::mutex smem_allowed_mutex;
std::unordered_map<const void*, size_t> smem_allowed;  // kernel -> bytes

}  // namespace

bool set_dynamic_smem_allowed(const void* kernel, int bytes) {
    if (bytes < 0 || size_t(bytes) > kMaxDynamicSmem) return false;
    const std::lock_guard lock(smem_allowed_mutex);
    smem_allowed[kernel] = size_t(bytes);
    return true;
}

void check_dynamic_smem_allowed(const void* kernel, size_t smem_bytes) {
    if (smem_bytes == 0) return;
    const std::lock_guard lock(smem_allowed_mutex);
    const auto it = smem_allowed.find(kernel);
    const size_t allowed = it == smem_allowed.end() ? 0 : it->second;
    if (smem_bytes > allowed)
        throw Error(fmt::format("emu: launch asks for {} bytes of dynamic shared memory, but its kernel was allowed {} "
                                "(cudaFuncSetAttribute); CUDA's default, 48 KiB less the kernel's static shared "
                                "memory, may not hold it",
                                smem_bytes, allowed));
}

void run_grid(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()>& body) {
    SL_ASSERT(!g, "emu: run_grid does not nest");
    check_launch(grid, block, smem_bytes);
    const unsigned threads = block.x * block.y * block.z;
    State state;
    state.grid = grid, state.block = block, state.body = &body;
    Guarded smem(smem_bytes);
    state.smem = smem.data, state.smem_bytes = smem_bytes;
    state.shadow.resize(smem_bytes);
    g = &state;
    try {
        start_fibers(threads);
        for (unsigned z = 0; z < grid.z; z++)
            for (unsigned y = 0; y < grid.y; y++)
                for (unsigned x = 0; x < grid.x; x++) {
                    state.block_idx = dim3(x, y, z);
                    run_block((x + y + z) % 2 == 1);
                }
    } catch (...) {
        g = nullptr;
        throw;
    }
    g = nullptr;
    if (smem.tail_rewritten())
        throw Error(fmt::format("emu: a launch wrote past the end of its {} bytes of dynamic shared memory",
                                smem_bytes));
    for (const auto& [p, m] : device_memory())
        if (m.first->tail_rewritten())
            throw Error(fmt::format("emu: bytes past the end of a device allocation of {} bytes were written (by the "
                                    "launch just run, or a copy since the one before)",
                                    m.second));
}

void* device_alloc(size_t bytes) {
    if (bytes > kDeviceBytes - device_allocated()) return nullptr;
    auto* m = new Guarded(bytes, 256);
    std::memset(m->data, 0xff, bytes);
    device_memory()[m->data] = {m, bytes};
    return m->data;
}

bool device_free(void* p) {
    auto it = device_memory().find(p);
    if (it == device_memory().end()) return false;
    delete it->second.first;
    device_memory().erase(it);
    return true;
}

bool in_device_memory(const void* p) {
    auto it = device_memory().upper_bound(const_cast<void*>(p));
    if (it == device_memory().begin()) return false;
    --it;
    return static_cast<const char*>(p) <= static_cast<const char*>(it->first) + it->second.second;
}

namespace {
int host_pointers_allowed_count = 0;
}
HostPointersAllowed::HostPointersAllowed() { host_pointers_allowed_count++; }
HostPointersAllowed::~HostPointersAllowed() { host_pointers_allowed_count--; }
bool host_pointers_allowed() { return host_pointers_allowed_count > 0; }

size_t device_allocated() {
    size_t n = 0;
    for (const auto& [p, m] : device_memory()) n += m.second;
    return n;
}

namespace {
bool g_device_shared = false;
}
void set_device_shared(bool shared) { g_device_shared = shared; }
bool device_shared() { return g_device_shared; }

const dim3& thread_idx() { return self().idx; }
const dim3& block_idx() { return g->block_idx; }
const dim3& block_dim() { return g->block; }
const dim3& grid_dim() { return g->grid; }
unsigned char* dynamic_smem() { return g->smem; }

void sync_block() {
    self();
    g->at_barrier++;
    if (g->at_barrier == g->alive) {
        release_barrier_if_complete();
        return;
    }
    yield();
}

// Thread `index` of the `size` threads from fiber `first` (a warp or a warpgroup, `what` number `id`) arrives; the
// last to arrive runs combine over all of them.
void meet(Meeting& m, int first, int index, int size, const void* in, void* out, Combine combine, const char* what,
          int id) {
    if (m.arrived == 0) m.combine = combine;
    else if (m.combine != combine) fault(fmt::format("threads of {} {} meet at different collectives", what, id));
    m.ins[index] = in, m.outs[index] = out;
    if (++m.arrived < m.lanes) {
        yield();
        return;
    }
    if (m.lanes != size)
        fault(fmt::format("a {} collective in {} {}, which has only {} threads", what, what, id, m.lanes));
    m.arrived = 0;
    combine(m.ins, m.outs);
    for (int l = 0; l < size; l++) g->fibers[size_t(first + l)].waiting = false;
}

void warp_collective(const void* in, void* out, Combine combine) {
    Fiber& f = self();
    meet(g->warps[size_t(f.warp)], 32 * f.warp, f.lane, 32, in, out, combine, "warp", f.warp);
}

void sync_warp() {
    warp_collective(nullptr, nullptr, [](const void* const*, void* const*) {});
}

void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans) {
    warp_collective(&row, r, trans ? ldmatrix_combine<true> : ldmatrix_combine<false>);
}

void mma_bf16_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    MmaIn in{{d[0], d[1], d[2], d[3]}, {a[0], a[1], a[2], a[3]}, b0, b1};
    warp_collective(&in, d, mma_combine);
}

void async_copy(void* dst, const void* src, int bytes, int src_bytes) {
    Fiber& f = self();
    const size_t at = smem_offset(dst, size_t(bytes), "cp.async destination");
    if (reinterpret_cast<uintptr_t>(dst) % unsigned(bytes) || reinterpret_cast<uintptr_t>(src) % unsigned(bytes))
        fault(fmt::format("cp.async of {} bytes from a source or to a destination not aligned to {}", bytes, bytes));
    if (src_bytes != 0 && src_bytes != bytes) fault(fmt::format("cp.async with src-size {}", src_bytes));
    // The hardware may land the copy at any time from now on, and the wgmma read at any time until retired.
    for (size_t i = at; i < at + size_t(bytes); i++)
        if (g->shadow[i].wgmma_reads > 0)
            fault(fmt::format("a cp.async of warp {} into shared byte {}, which a wgmma issued earlier may still "
                              "read: no wgmma.wait_group has retired it",
                              f.warp, i));
    f.copies.push_back(Copy{static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), bytes,
                            src_bytes, g->epoch, f.committed});
}

void async_commit() { self().committed++; }

void async_wait(int n) {
    Fiber& f = self();
    land_through(f, f.committed - 1 - n);
}

uint32_t shared_address(const void* p) {
    return kSmemWindowBase + uint32_t(smem_offset(p, 1, "cvta.to.shared of an address"));
}

void wgmma_fence() { self().wg_fenced = true; }

void wgmma(float* d, int n, const uint32_t* a, uint64_t desc_a, uint64_t desc_b, bool trans_b) {
    Fiber& f = self();
    const WgmmaIn in{d, n, a, desc_a, desc_b, trans_b, f.wg_fenced, f.wg_committed};
    const int wg = f.warp / 4, t = f.warp % 4 * 32 + f.lane;
    meet(g->warpgroups[size_t(wg)], 128 * wg, t, 128, &in, nullptr, wgmma_issue_combine, "warpgroup", wg);
}

void wgmma_commit() { self().wg_committed++; }

void wgmma_wait(int n) {
    Fiber& f = self();
    const WaitIn in{n, f.wg_committed};
    const int wg = f.warp / 4, t = f.warp % 4 * 32 + f.lane;
    meet(g->warpgroups[size_t(wg)], 128 * wg, t, 128, &in, nullptr, wgmma_wait_combine, "warpgroup", wg);
}

void fence_proxy_async() {
    Fiber& f = self();
    for (const auto& [at, bytes] : f.unfenced)
        for (size_t i = at; i < at + bytes; i++) g->shadow[i].async_hidden = false;
    f.unfenced.clear();
}

}  // namespace sinklab::emu
