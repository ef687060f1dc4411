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
#include <vector>

#include "core/check.h"
#include "core/dtype.h"

namespace sinklab::emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;

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
};

struct Warp {
    int lanes = 32, arrived = 0;
    Combine combine = nullptr;
    const void* ins[32];
    void* outs[32];
};

// Who touched a byte of shared memory in which barrier epoch (epoch 0: never).
struct Shadow {
    uint32_t write_epoch = 0, read_epoch = 0;
    int write_warp = -1;
    uint32_t read_warps = 0;  // bit w: warp w read it in read_epoch
};

// Memory with an unmapped page right after `bytes` usable bytes (rounded up to `align`, a power of two at most a
// page), and one before.
struct Guarded {
    unsigned char* region = nullptr;
    size_t region_bytes = 0;
    unsigned char* data = nullptr;

    explicit Guarded(size_t bytes, size_t align = 16) {
        const size_t page = size_t(sysconf(_SC_PAGESIZE)), rounded = (bytes + align - 1) / align * align;
        const size_t pages = (rounded + page - 1) / page;
        region_bytes = (pages + 2) * page;
        void* r = mmap(nullptr, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        SL_ASSERT(r != MAP_FAILED, "emu: mmap of {} bytes failed", region_bytes);
        region = static_cast<unsigned char*>(r);
        mprotect(region, page, PROT_NONE);
        mprotect(region + (pages + 1) * page, page, PROT_NONE);
        data = region + (pages + 1) * page - rounded;
    }
    ~Guarded() { munmap(region, region_bytes); }
    Guarded(const Guarded&) = delete;
    Guarded& operator=(const Guarded&) = delete;
};

struct State {
    dim3 grid, block, block_idx;
    const std::function<void()>* body = nullptr;
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
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

void land(const Copy& c, int warp) {
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
    }
    std::memcpy(c.dst, c.src, size_t(c.src_bytes));
    std::memset(c.dst + c.src_bytes, 0, size_t(c.bytes - c.src_bytes));
}

void land_through(Fiber& f, int last_group) {
    std::vector<Copy> later;
    for (const Copy& c : f.copies) {
        if (c.group <= last_group) land(c, f.warp);
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
    g->warps.assign(size_t((n + 31) / 32), Warp{});
    for (int w = 0; w < int(g->warps.size()); w++) g->warps[size_t(w)].lanes = std::min(32, n - 32 * w);
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

}  // namespace

void run_grid(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()>& body) {
    SL_ASSERT(!g, "emu: run_grid does not nest");
    const unsigned threads = block.x * block.y * block.z;
    if (threads == 0 || threads > kMaxBlockThreads || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
        grid.y > 65535 || grid.z > 65535)
        throw Error(fmt::format("emu: invalid launch: grid ({}, {}, {}), block ({}, {}, {})", grid.x, grid.y, grid.z,
                                block.x, block.y, block.z));
    if (smem_bytes > kMaxDynamicSmem)
        throw Error(fmt::format("emu: launch asks for {} bytes of dynamic shared memory; the device has {}",
                                smem_bytes, kMaxDynamicSmem));
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

size_t device_allocated() {
    size_t n = 0;
    for (const auto& [p, m] : device_memory()) n += m.second;
    return n;
}

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

void warp_collective(const void* in, void* out, Combine combine) {
    Fiber& f = self();
    Warp& w = g->warps[size_t(f.warp)];
    if (w.arrived == 0) w.combine = combine;
    else if (w.combine != combine) fault(fmt::format("lanes of warp {} meet at different warp collectives", f.warp));
    w.ins[f.lane] = in, w.outs[f.lane] = out;
    if (++w.arrived < w.lanes) {
        yield();
        return;
    }
    if (w.lanes != 32) fault(fmt::format("a warp collective in warp {}, which has only {} lanes", f.warp, w.lanes));
    w.arrived = 0;
    combine(w.ins, w.outs);
    for (int l = 0; l < 32; l++) g->fibers[size_t(32 * f.warp + l)].waiting = false;
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
    smem_offset(dst, size_t(bytes), "cp.async destination");
    if (reinterpret_cast<uintptr_t>(dst) % unsigned(bytes) || reinterpret_cast<uintptr_t>(src) % unsigned(bytes))
        fault(fmt::format("cp.async of {} bytes from a source or to a destination not aligned to {}", bytes, bytes));
    if (src_bytes != 0 && src_bytes != bytes) fault(fmt::format("cp.async with src-size {}", src_bytes));
    f.copies.push_back(Copy{static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), bytes,
                            src_bytes, g->epoch, f.committed});
}

void async_commit() { self().committed++; }

void async_wait(int n) {
    Fiber& f = self();
    land_through(f, f.committed - 1 - n);
}

}  // namespace sinklab::emu
