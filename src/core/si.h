// Counts and rates in logs and tables: "1.23M tokens", "11.6k tok/s".
#pragma once
#include <fmt/format.h>

#include <cmath>
#include <string>

namespace sinklab {

// v with the prefix k, M or G and three significant digits.
inline std::string si(double v) {
    const double a = std::fabs(v);
    const double scale = a >= 1e9 ? 1e9 : a >= 1e6 ? 1e6 : a >= 1e3 ? 1e3 : 1;
    const char* prefix = a >= 1e9 ? "G" : a >= 1e6 ? "M" : a >= 1e3 ? "k" : "";
    return fmt::format("{:.3g}{}", v / scale, prefix);
}

}  // namespace sinklab
