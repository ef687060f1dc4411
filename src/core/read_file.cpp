#include "core/read_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/check.h"

namespace sinklab {

std::string read_whole_file(const std::string& path, const std::string& advice) {
    std::error_code ec;
    SL_REQUIRE(!std::filesystem::is_directory(path, ec), "{} is a folder; {}", path, advice);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    SL_REQUIRE(fd >= 0, "cannot read {}: {}; {}", path, std::strerror(errno), advice);
    std::string text;
    char buffer[1 << 16];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n > 0) {
            text.append(buffer, size_t(n));
        } else if (n == 0 || errno != EINTR) {
            const int error = n < 0 ? errno : 0;
            ::close(fd);
            SL_REQUIRE(error == 0, "cannot read {}: {}; {}", path, std::strerror(error), advice);
            return text;
        }
    }
}

}  // namespace sinklab
