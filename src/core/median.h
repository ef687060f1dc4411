// One median for the sink metrics and the bench summary.
#pragma once
#include <algorithm>
#include <cstddef>
#include <vector>

#include "core/check.h"

namespace sinklab {

// The median of v, the mean of the two middle values when there are evenly many; v is taken by value and reordered.
inline double median(std::vector<double> v) {
    SL_ASSERT(!v.empty(), "the median of no values");
    const size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + ptrdiff_t(mid), v.end());
    if (v.size() % 2 == 1) return v[mid];
    return 0.5 * (v[mid] + *std::max_element(v.begin(), v.begin() + ptrdiff_t(mid)));
}

}  // namespace sinklab
