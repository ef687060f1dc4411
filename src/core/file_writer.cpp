#include "core/file_writer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/check.h"

namespace sinklab {

namespace {

std::string why(int err) {
    if (err == ENOSPC || err == EDQUOT) return fmt::format("{} (free space on that file system)", std::strerror(err));
    if (err == EFBIG) return fmt::format("{} (a file-size limit: see ulimit -f)", std::strerror(err));
    return std::strerror(err);
}

// Whether stdout is a pipe or socket whose reader has closed it (Linux polls its write end as an error then): an
// earlier write's EPIPE, which stdio keeps only as its error flag.
bool reader_gone() {
    struct stat st;
    if (::fstat(STDOUT_FILENO, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) return false;
    pollfd p{STDOUT_FILENO, POLLOUT, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}

void check_standard_output(bool ok, int err) {
    SL_REQUIRE(ok || err == EPIPE || reader_gone(), "cannot write the standard output: {}; its output is incomplete",
               err != 0 ? why(err) : std::string("an earlier write failed"));
}

// The name of replace_file_durably's temporary file for `target`, less the pid.
std::string replacement_prefix(const std::filesystem::path& target) {
    return fmt::format(".{}.tmp", target.filename().string());
}

}  // namespace

FileWriter::FileWriter(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);  // less the umask, as any tool
    SL_REQUIRE(fd_ >= 0, "cannot create {}: {}", path_, why(errno));
}

FileWriter::~FileWriter() {
    if (fd_ >= 0) ::close(fd_);
}

void FileWriter::write(const void* data, size_t n) {
    SL_ASSERT(fd_ >= 0, "write to {} after finish()", path_);
    auto* p = static_cast<const char*>(data);
    checksum_.update(p, n);
    bytes_ += n;
    while (n > 0) {
        const ssize_t w = ::write(fd_, p, n);
        if (w < 0 && errno == EINTR) continue;
        SL_REQUIRE(w > 0, "cannot write {}: {}", path_, why(w < 0 ? errno : ENOSPC));
        p += w, n -= size_t(w);
    }
}

void FileWriter::finish() {
    SL_ASSERT(fd_ >= 0, "finish() of {} twice", path_);
    const int fd = fd_;
    fd_ = -1;
    const bool synced = ::fsync(fd) == 0;
    const int sync_err = errno;
    const bool closed = ::close(fd) == 0;
    SL_REQUIRE(synced && closed, "cannot write {}: {}", path_, why(synced ? errno : sync_err));
}

void write_file_durably(const std::string& path, const std::string& text) {
    FileWriter f(path);
    f.write(text.data(), text.size());
    f.finish();
}

void replace_file_durably(const std::string& path, const std::string& text) {
    namespace fs = std::filesystem;
    const fs::path target(path), dir = target.parent_path();
    const fs::path tmp = dir / fmt::format("{}{}", replacement_prefix(target), ::getpid());
    try {
        write_file_durably(tmp.string(), text);
        std::error_code ec;
        fs::rename(tmp, target, ec);
        SL_REQUIRE(!ec, "cannot rename {} to {}: {}", tmp.string(), path, ec.message());
    } catch (...) {
        std::error_code ec;
        fs::remove(tmp, ec);
        throw;
    }
    sync_dir(dir.empty() ? "." : dir.string());
}

void write_standard_output(std::string_view bytes) {
    errno = 0;
    const bool written = std::fwrite(bytes.data(), 1, bytes.size(), stdout) == bytes.size();
    check_standard_output(written, errno);
}

void flush_standard_output() {
    errno = 0;
    const bool flushed = std::fflush(stdout) == 0;
    check_standard_output(flushed && !std::ferror(stdout), errno);
}

void remove_stale_replacements(const std::string& path) {
    namespace fs = std::filesystem;
    const fs::path target(path), dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    const std::string prefix = replacement_prefix(target);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.path().filename().string().starts_with(prefix)) fs::remove(entry.path(), ec);
}

void sync_dir(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    SL_REQUIRE(fd >= 0, "cannot open the folder {}: {}", dir, std::strerror(errno));
    const bool ok = ::fsync(fd) == 0;
    const int err = errno;
    ::close(fd);
    SL_REQUIRE(ok, "cannot sync the folder {}: {}", dir, why(err));
}

}  // namespace sinklab
