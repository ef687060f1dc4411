// The cache folder for downloaded and generated data: $SINKLAB_CACHE, else ./.cache (relative to the working
// directory). The scripts under data/ use ${SINKLAB_CACHE:-<repo>/.cache}; run sinklab from the repository root
// or set SINKLAB_CACHE so that both agree.
#pragma once
#include <string>

namespace sinklab {

std::string cache_dir();

}  // namespace sinklab
