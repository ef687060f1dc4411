// Shell-style file patterns (POSIX glob: *, ?, [...]) for the shard lists of data.train / data.val.
#pragma once
#include <string>
#include <vector>

namespace sinklab {

// The files matching `pattern`, sorted; empty when none match. A pattern without wildcards matches itself if the
// file exists.
std::vector<std::string> glob_files(const std::string& pattern);

}  // namespace sinklab
