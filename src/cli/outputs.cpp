// Checks of output paths that subcommands make before their work, so that a long run never ends on a path it
// cannot write.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cli/commands.h"
#include "core/check.h"

namespace sinklab::cli {

// Opening for append (creating the file, then removing it again) is what tells whether it can be written, also for
// root, for whom access(2) says yes to any folder, even where writes fail (/proc).
void check_writable(const std::string& option, const std::string& path) {
    const bool existed = std::filesystem::exists(path);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    const int err = errno;
    if (fd >= 0) ::close(fd);
    if (fd >= 0 && !existed) std::filesystem::remove(path);
    SL_REQUIRE(fd >= 0, "{} {}: cannot write it ({}); check the folder and permissions", option, path,
               std::strerror(err));
}

bool lies_in(const std::string& path, const std::string& folder) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path p = fs::weakly_canonical(fs::absolute(path), ec), f = fs::weakly_canonical(fs::absolute(folder), ec);
    auto it = p.begin();
    for (const fs::path& part : f) {
        if (part.empty()) continue;  // a trailing separator
        if (it == p.end() || *it != part) return false;
        ++it;
    }
    return true;
}

}  // namespace sinklab::cli
