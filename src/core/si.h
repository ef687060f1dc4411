// Counts and rates in logs and tables: "1.23M tokens", "3.0k tok/s".
#pragma once
#include <fmt/format.h>

#include <cmath>
#include <string>
#include <string_view>

namespace sinklab {

// v with the prefix k, M or G, its mantissa printed with the fmt spec given (".3g": three significant digits).
inline std::string si(double v, std::string_view spec = ".3g") {
    const double a = std::fabs(v);
    const double scale = a >= 1e9 ? 1e9 : a >= 1e6 ? 1e6 : a >= 1e3 ? 1e3 : 1;
    const char* prefix = a >= 1e9 ? "G" : a >= 1e6 ? "M" : a >= 1e3 ? "k" : "";
    return fmt::format(fmt::runtime(fmt::format("{{:{}}}{{}}", spec)), v / scale, prefix);
}

}  // namespace sinklab
