// When a file was made, as the records sinklab writes (run logs, data manifests) keep it.
#pragma once
#include <ctime>
#include <string>

namespace sinklab {

// Now, in UTC, as ISO 8601: "2026-11-30T04:12:00Z".
inline std::string utc_now_iso8601() {
    const std::time_t t = std::time(nullptr);
    std::tm parts{};
    gmtime_r(&t, &parts);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &parts);
    return buf;
}

}  // namespace sinklab
