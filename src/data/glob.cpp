#include "data/glob.h"

#include <glob.h>

#include "core/check.h"

namespace sinklab {

std::vector<std::string> glob_files(const std::string& pattern) {
    glob_t g{};
    const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);  // unreadable or missing folders simply match nothing
    std::vector<std::string> out;
    if (rc == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    ::globfree(&g);
    SL_REQUIRE(rc == 0 || rc == GLOB_NOMATCH, "cannot list the files of '{}' (glob error {})", pattern, rc);
    return out;
}

}  // namespace sinklab
