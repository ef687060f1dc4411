// Counts and rates in logs and tables: "1.23M tokens", "11.6k tok/s".
#pragma once
#include <fmt/format.h>

#include <cmath>
#include <string>

namespace sinklab {

// v with the prefix k, M or G and three significant digits.
inline std::string si(double v) {
    if (!std::isfinite(v)) return fmt::format("{}", v);
    // Rounded first, so that the prefix is the rounded value's: 999,700 reads 1M, not 1e+03k.
    const double r = std::stod(fmt::format("{:.3g}", v));
    const double a = std::fabs(r);
    const double scale = a >= 1e9 ? 1e9 : a >= 1e6 ? 1e6 : a >= 1e3 ? 1e3 : 1;
    const char* prefix = a >= 1e9 ? "G" : a >= 1e6 ? "M" : a >= 1e3 ? "k" : "";
    return fmt::format("{:.3g}{}", r / scale, prefix);
}

}  // namespace sinklab
