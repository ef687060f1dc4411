#include "data/cache.h"

#include <cstdlib>

namespace sinklab {

std::string cache_dir() {
    const char* env = std::getenv("SINKLAB_CACHE");
    return env && *env ? std::string(env) : std::string(".cache");
}

}  // namespace sinklab
