#include "core/build_info.h"

#include "sinklab_git_rev.h"  // generated in the build folder at every build

namespace sinklab {

const char* git_rev() { return SINKLAB_GIT_REV; }

}  // namespace sinklab
