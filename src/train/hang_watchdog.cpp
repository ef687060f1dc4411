#include "train/hang_watchdog.h"

#include <fmt/format.h>

#include <algorithm>

namespace sinklab {

namespace {

constexpr auto kPoll = std::chrono::milliseconds(250);

}  // namespace

HangWatchdog::HangWatchdog(double timeout_s, int64_t start_step, std::function<void(const std::string&)> on_hang,
                           std::string unit)
    : timeout_s_(timeout_s), on_hang_(std::move(on_hang)), unit_(std::move(unit)), last_step_(start_step) {
    if (timeout_s_ > 0) thread_ = std::thread([this] { watch(); });
}

HangWatchdog::~HangWatchdog() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

// The watchdog looks at the clock every kPoll; a look far later than that means this process itself stood still
// (Ctrl-Z, SIGSTOP, a suspended machine, starvation), and that time is no step's. Whichever thread runs first after
// such a pause accounts for it, or a step finished first would count the pause as its own time.
void HangWatchdog::skip_time_stood_still(Clock::time_point now) {
    if (now - polled_ > 2 * kPoll) last_ += now - polled_ - kPoll;
    polled_ = now;
}

void HangWatchdog::finished(int64_t step) {
    if (timeout_s_ <= 0) return;
    const auto now = Clock::now();
    std::lock_guard lock(mutex_);
    skip_time_stood_still(now);
    slowest_s_ = std::max(slowest_s_, std::chrono::duration<double>(now - last_).count());
    last_ = now;
    last_step_ = step;
}

void HangWatchdog::watch() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        wake_.wait_for(lock, kPoll);
        const auto now = Clock::now();
        skip_time_stood_still(now);
        const double limit_s = std::max(timeout_s_, kSlowestStepFactor * slowest_s_);
        const double waited_s = std::chrono::duration<double>(now - last_).count();
        if (waited_s >= limit_s) {
            const std::string message = fmt::format(
                "{} {} has not finished {:.0f} s after {} (fault.hang_timeout = {} s{})", unit_, last_step_ + 1,
                waited_s, slowest_s_ > 0 ? fmt::format("{} {}", unit_, last_step_) : "the start", timeout_s_,
                slowest_s_ > 0 ? fmt::format("; the slowest {} so far took {:.1f} s", unit_, slowest_s_) : "");
            lock.unlock();
            on_hang_(message);
            return;
        }
    }
}

std::string hang_cause(int world, const std::string& command) {
    return world > 1 ? "a rank is stopped or hung (SIGSTOP, a stalled file system, a lost GPU or node) and holds the "
                       "others"
                     : command + " is stuck (a stalled file system or standard output, a lost GPU)";
}

}  // namespace sinklab
