// Checks of output paths that subcommands make before their work, so that a long run never ends on a path it
// cannot write.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cli/commands.h"
#include "core/check.h"
#include "train/checkpoint.h"

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

void refuse_output_in_other_runs(const std::string& option, const std::string& out, const std::string& folder,
                                 const std::string& own_run) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path own = fs::weakly_canonical(fs::absolute(own_run), ec);
    for (fs::path p = fs::weakly_canonical(fs::absolute(folder), ec); p.has_relative_path(); p = p.parent_path()) {
        const bool checkpoint = p.parent_path().filename() == "checkpoints" && folder_step(p.filename().string()) &&
                                fs::exists(p / "state.json", ec);
        SL_REQUIRE(!checkpoint,
                   "{} {}: it lies in the checkpoint folder {}, which is deleted when the run moves past it; give "
                   "another {}",
                   option, out, p.string(), option);
        const bool run = fs::exists(p / "metrics.h5", ec) &&
                         (fs::exists(p / "config.yaml", ec) || fs::is_directory(p / "checkpoints", ec));
        SL_REQUIRE(!run || p == own,
                   "{} {}: it lies in the folder of another run, {}, whose output it would pass for; give another {}",
                   option, out, p.string(), option);
    }
}

}  // namespace sinklab::cli
