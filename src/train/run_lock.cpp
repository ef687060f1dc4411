#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/check.h"

namespace sinklab {

namespace fs = std::filesystem;

namespace {

std::string host_name() {
    char buf[256] = {};
    return gethostname(buf, sizeof buf - 1) == 0 ? buf : "?";
}

}  // namespace

RunLock::RunLock(const std::string& run_dir) {
    const fs::path dir(run_dir);
    const fs::path parent = dir.parent_path().empty() ? fs::path(".") : dir.parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    SL_REQUIRE(!ec, "cannot create {} for the run folder {}: {}; check run.out_dir", parent.string(), run_dir,
               ec.message());
    path_ = (parent / fmt::format(".{}.lock", dir.filename().string())).string();
    // The lock file goes when its holder ends, so a start can lock a file that a finishing holder has just removed
    // (or replaced): it holds the lock only if the path still names the file it locked.
    for (;;) {
        fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        SL_REQUIRE(fd_ >= 0, "cannot open the lock file {} of run folder {}: {}; check permissions", path_, run_dir,
                   std::strerror(errno));
        if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
            const int err = errno;
            if (err == EWOULDBLOCK) {
                std::ifstream in(path_);
                std::stringstream holder;
                holder << in.rdbuf();
                ::close(fd_);
                fd_ = -1;
                fail("run folder {} is in use by another `sinklab train` ({}); wait for it to end, or pick another "
                     "name with --set run.name=NAME",
                     run_dir, holder.str().empty() ? "starting" : holder.str());
            }
            note_ = fmt::format("run folder {} is not locked against a second start: {} cannot be locked here ({})",
                                run_dir, path_, std::strerror(err));
            return;
        }
        struct stat held {}, named {};
        if (::fstat(fd_, &held) == 0 && ::stat(path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
            held.st_dev == named.st_dev)
            break;
        ::close(fd_);
    }
    // Only for another start's message: nothing else depends on it.
    const std::string who = fmt::format("pid {} on {}", ::getpid(), host_name());
    if (::ftruncate(fd_, 0) == 0) (void)!::write(fd_, who.data(), who.size());
}

RunLock::~RunLock() {
    if (fd_ < 0) return;
    ::unlink(path_.c_str());
    ::close(fd_);
}

}  // namespace sinklab
