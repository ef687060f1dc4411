#include "core/check.h"

namespace sinklab {

void fail_internal(const char* file, int line, const std::string& what) {
    throw Error(fmt::format("internal error at {}:{}: {}", file, line, what));
}

}  // namespace sinklab
