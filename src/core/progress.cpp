#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace sinklab {

Progress::Progress(int64_t total, std::string label)
    : total_(total), label_(std::move(label)), tty_(isatty(STDERR_FILENO)) {}

Progress::~Progress() { finish(); }

void Progress::update(int64_t done, const std::string& detail) {
    if (!tty_) return;
    constexpr int kWidth = 30;
    const double frac = total_ > 0 ? double(done) / double(total_) : 1.0;
    const int filled = int(std::lround(frac * kWidth));
    std::string bar(size_t(filled), '=');
    if (filled < kWidth) bar += '>' + std::string(size_t(kWidth - filled - 1), ' ');
    std::fprintf(stderr, "\r\033[K%s[%s] %3d%% %s", label_.empty() ? "" : (label_ + " ").c_str(), bar.c_str(),
                 int(frac * 100), detail.c_str());
    std::fflush(stderr);
    drawn_ = true;
}

void Progress::clear() {
    if (tty_ && drawn_) {
        std::fprintf(stderr, "\r\033[K");
        std::fflush(stderr);
        drawn_ = false;
    }
}

void Progress::finish() {
    if (tty_ && drawn_) {
        std::fprintf(stderr, "\n");
        drawn_ = false;
    }
}

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    int64_t s = int64_t(seconds + 0.5);
    if (s >= 3600) return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
    return fmt::format("{}:{:02d}", s / 60, s % 60);
}

}  // namespace sinklab
