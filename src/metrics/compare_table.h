// The tables `sinklab compare` prints (aligned text) and writes (--markdown).
#pragma once
#include <string>

#include "metrics/compare.h"

namespace sinklab {

std::string comparison_text(const Comparison& c);
std::string comparison_markdown(const Comparison& c);

}  // namespace sinklab
