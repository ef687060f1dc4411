#include "data/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "core/check.h"
#include "core/checksum.h"

namespace sinklab {
namespace {

// The live mappings, in a fixed table that the handler reads without locks or allocation. A slot is taken by setting
// its start; the handler reads the size and path only of slots whose start it has seen set. Mappings beyond the
// table (more shards than it holds) go unnamed.
struct Mapping {
    std::atomic<const char*> begin{nullptr};
    size_t size = 0;
    char path[512] = {};
};
constexpr int kMappings = 4096;
Mapping g_mappings[kMappings];
struct sigaction g_default_bus;
std::atomic<bool> g_reporting{false};
std::atomic<int> g_report_fd{-1};  // MappedReadFailureLog's file; -1: none
static_assert(std::atomic<int>::is_always_lock_free, "the SIGBUS handler reads g_report_fd");

void write_all(int fd, const char* s, size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(fd, s, n);
        if (w <= 0) return;
        s += w, n -= size_t(w);
    }
}

// A read of a mapped page that the file no longer has (it shrank), or that its storage failed to deliver (an I/O
// error of a disk or network file system): the file is named and the process exits 1. Only functions that are safe
// in a signal handler are called.
void on_bus_error(int sig, siginfo_t* info, void*) {
    const char* at = static_cast<const char*>(info->si_addr);
    for (const Mapping& m : g_mappings) {
        const char* begin = m.begin.load(std::memory_order_acquire);
        if (!begin || at < begin || at >= begin + m.size) continue;
        if (g_reporting.exchange(true))  // another thread faulted first and is reporting: it ends the process
            for (;;) ::pause();
        struct stat st;
        const bool shorter = ::stat(m.path, &st) == 0 && st.st_size <= at - begin;
        constexpr char kProgram[] = "sinklab: ", kBefore[] = "error: ";
        constexpr char kShorter[] =
            " became shorter while sinklab read it (truncated, or rewritten in place as cp onto it does); put the "
            "complete file back, replacing files by renaming whole ones into place as sinklab prepare does, and run "
            "again\n";
        constexpr char kUnreadable[] =
            " could not be read while sinklab read it (an I/O error of its disk or file system); check the storage "
            "and run again\n";
        const char* why = shorter ? kShorter : kUnreadable;
        const size_t why_size = shorter ? sizeof kShorter - 1 : sizeof kUnreadable - 1;
        write_all(STDERR_FILENO, kProgram, sizeof kProgram - 1);
        for (const int fd : {STDERR_FILENO, g_report_fd.load()}) {
            if (fd < 0) continue;
            write_all(fd, kBefore, sizeof kBefore - 1);
            write_all(fd, m.path, ::strnlen(m.path, sizeof m.path));
            write_all(fd, why, why_size);
        }
        ::_exit(1);
    }
    ::sigaction(sig, &g_default_bus, nullptr);  // not a mapping of ours: die of it as before
    ::raise(sig);
}

int add_mapping(const char* data, size_t size, const std::string& path) {
    static std::once_flag installed;
    std::call_once(installed, [] {
        struct sigaction sa {};
        sa.sa_sigaction = on_bus_error;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGBUS, &sa, &g_default_bus);
    });
    static std::mutex taking;
    const std::lock_guard<std::mutex> lock(taking);
    for (int i = 0; i < kMappings; i++) {
        Mapping& m = g_mappings[i];
        if (m.begin.load(std::memory_order_relaxed)) continue;
        m.size = size;
        std::snprintf(m.path, sizeof m.path, "%s", path.c_str());
        m.begin.store(data, std::memory_order_release);
        return i;
    }
    return -1;
}

void remove_mapping(int slot) {
    if (slot >= 0) g_mappings[slot].begin.store(nullptr, std::memory_order_release);
}

}  // namespace

MappedReadFailureLog::MappedReadFailureLog(const std::string& path)
    : fd_(::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC)) {
    if (fd_ < 0) return;
    int free_slot = -1;
    if (!g_report_fd.compare_exchange_strong(free_slot, fd_)) {
        ::close(fd_);
        fail_internal(__FILE__, __LINE__, "two MappedReadFailureLogs at once");
    }
}

MappedReadFailureLog::~MappedReadFailureLog() {
    if (fd_ < 0) return;
    int mine = fd_;
    g_report_fd.compare_exchange_strong(mine, -1);
    ::close(fd_);
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
    // Non-blocking, so that a FIFO in place of a shard is refused below instead of waiting in open() for a writer.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    SL_REQUIRE(fd >= 0, "cannot open {}: {}", path, std::strerror(errno));
    struct stat st;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail("{} is not a regular file", path);
    }
    size_ = static_cast<size_t>(st.st_size);
    const uint64_t identity[5] = {uint64_t(st.st_dev), uint64_t(st.st_ino), uint64_t(st.st_size),
                                  uint64_t(st.st_mtim.tv_sec), uint64_t(st.st_mtim.tv_nsec)};
    identity_ = checksum64(identity, sizeof identity);
    if (size_ > 0) {
        void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        const int err = errno;
        ::close(fd);
        SL_REQUIRE(p != MAP_FAILED, "cannot map {} into memory: {}", path, std::strerror(err));
        data_ = static_cast<const char*>(p);
        slot_ = add_mapping(data_, size_, path_);
    } else {
        ::close(fd);
    }
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      identity_(other.identity_),
      data_(other.data_),
      size_(other.size_),
      slot_(other.slot_) {
    other.data_ = nullptr;
    other.size_ = 0;
    other.slot_ = -1;
}

MappedFile::~MappedFile() {
    remove_mapping(slot_);
    if (data_) ::munmap(const_cast<char*>(data_), size_);
}

}  // namespace sinklab
