#include "train/hang_watchdog.h"

#include <fmt/format.h>

#include <algorithm>

namespace sinklab {

HangWatchdog::HangWatchdog(double timeout_s, int64_t start_step, std::function<void(const std::string&)> on_hang)
    : timeout_s_(timeout_s), on_hang_(std::move(on_hang)), last_step_(start_step) {
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

void HangWatchdog::finished(int64_t step) {
    if (timeout_s_ <= 0) return;
    const auto now = Clock::now();
    std::lock_guard lock(mutex_);
    slowest_s_ = std::max(slowest_s_, std::chrono::duration<double>(now - last_).count());
    last_ = now;
    last_step_ = step;
}

void HangWatchdog::watch() {
    constexpr auto kPoll = std::chrono::milliseconds(250);
    std::unique_lock lock(mutex_);
    auto polled = Clock::now();
    while (!stopping_) {
        wake_.wait_for(lock, kPoll);
        const auto now = Clock::now();
        // A poll later than asked for: this process itself was stopped (Ctrl-Z, SIGSTOP, a suspended machine) or
        // starved, and the time it stood still is not its step's.
        if (now - polled > 2 * kPoll) last_ += now - polled - kPoll;
        polled = now;
        // Until the first step finishes (slowest_s_ 0) nothing is judged.
        const double limit_s = std::max(timeout_s_, kSlowestStepFactor * slowest_s_);
        const double waited_s = std::chrono::duration<double>(now - last_).count();
        if (slowest_s_ > 0 && waited_s >= limit_s) {
            const std::string message = fmt::format(
                "step {} has not finished {:.0f} s after step {} (fault.hang_timeout = {} s; the slowest step so "
                "far took {:.1f} s): a rank is stopped or hung (SIGSTOP, a stalled file system, a lost GPU or node) "
                "and holds the run; it ends here, and --resume goes on from its last checkpoint (where a step with its "
                "checkpoint or validation takes this long, raise fault.hang_timeout)",
                last_step_ + 1, waited_s, last_step_, timeout_s_, slowest_s_);
            lock.unlock();
            on_hang_(message);
            return;
        }
    }
}

}  // namespace sinklab
