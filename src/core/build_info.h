// What built this binary: the version and the source tree's commit, refreshed at every build (cmake/git_rev.cmake),
// for --version and the git_rev attribute of every run log.
#pragma once

namespace sinklab {

const char* git_rev();  // 12 hex digits, "-dirty" when tracked files had changes, or "unknown" outside a checkout

}  // namespace sinklab
