#include "core/folder_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/check.h"

namespace sinklab {

namespace fs = std::filesystem;

namespace {

std::string host_name() {
    char buf[256] = {};
    return gethostname(buf, sizeof buf - 1) == 0 ? buf : "?";
}

// "out/", "out/." and "." name their folder too.
fs::path folder_path(const std::string& folder) {
    fs::path dir = fs::absolute(folder).lexically_normal();
    return dir.has_filename() ? dir : dir.parent_path();
}

fs::path lock_file_of(const fs::path& dir) {
    return dir.parent_path() / fmt::format(".{}.lock", dir.filename().string());
}

// Who holds the lock file `path`, as its holder wrote it: "`sinklab COMMAND` (pid P on HOST)"; the holder may not
// have written it yet.
std::string holder_of(const std::string& path) {
    std::ifstream in(path);
    std::string command, where;
    std::getline(in, command);
    std::getline(in, where);
    if (command.starts_with("pid ")) std::swap(command, where);  // an older sinklab's
    return fmt::format("{} ({})", command.empty() ? "sinklab process" : fmt::format("`sinklab {}`", command),
                       where.empty() ? "starting" : where);
}

}  // namespace

std::string folder_lock_holder(const std::string& folder) {
    const std::string path = lock_file_of(folder_path(folder)).string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    ::close(fd);
    return held ? holder_of(path) : "";
}

FolderLock::FolderLock(const std::string& folder, const std::string& kind, const std::string& command,
                       const std::string& advice, const std::function<void(const std::string&)>& on_wait) {
    const fs::path dir = folder_path(folder), parent = dir.parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    SL_REQUIRE(!ec, "cannot create {} for the {} {}: {}; check the path and its permissions", parent.string(), kind,
               folder, ec.message());
    path_ = lock_file_of(dir).string();
    const auto unlocked = [&](const char* why, int err) {
        return fmt::format("{} {} is not locked against a second `sinklab {}`: {} cannot be {} ({})", kind, folder,
                           command, path_, why, std::strerror(err));
    };
    // The lock file goes when its holder ends, so a start can lock a file that a finishing holder has just removed
    // (or replaced): it holds the lock only if the path still names the file it locked.
    for (;;) {
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd_ < 0) {  // a folder above that is not ours to write (a shared dataset folder) stops no one
            note_ = unlocked("created", errno);
            return;
        }
        int locked = ::flock(fd_, LOCK_EX | LOCK_NB);
        if (locked != 0 && errno == EWOULDBLOCK && on_wait) {
            on_wait(holder_of(path_));
            while ((locked = ::flock(fd_, LOCK_EX)) != 0 && errno == EINTR) {
            }
        }
        if (locked != 0) {
            const int err = errno;
            if (err == EWOULDBLOCK) {
                ::close(fd_);
                fd_ = -1;
                fail("{} {} is in use by another {}; wait for it to end, or {}", kind, folder, holder_of(path_),
                     advice);
            }
            note_ = unlocked("locked here", err);
            return;
        }
        struct stat held {}, named {};
        if (::fstat(fd_, &held) == 0 && ::stat(path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
            held.st_dev == named.st_dev)
            break;
        ::close(fd_);
    }
    // Only for another start's message: nothing else depends on it.
    const std::string who = fmt::format("{}\npid {} on {}", command, ::getpid(), host_name());
    if (::ftruncate(fd_, 0) == 0) (void)!::write(fd_, who.data(), who.size());
}

FolderLock::~FolderLock() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());
    ::close(fd_);
}

}  // namespace sinklab
