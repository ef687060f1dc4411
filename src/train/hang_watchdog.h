// Ends a run whose steps stopped finishing. A rank that stops without dying (SIGSTOP, a stalled file system, a lost
// GPU or node) holds every other rank in its next collective, where MPI and NCCL wait forever; the others' watchdogs
// end the job instead, so that a cluster allocation is not spent waiting and --resume can go on.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace sinklab {

class HangWatchdog {
public:
    // Fires when step `last + 1` has not finished within max(timeout_s, kSlowestStepFactor x the slowest step so
    // far), counted from the end of the last (from here, the training loop's start, for the first, which is judged
    // by timeout_s alone). Firing calls on_hang(message) on the watchdog's thread, which must end the process; the
    // message says which step and how long, not why, calling a step `unit` ("step", eval's "batch").
    // timeout_s <= 0: off.
    HangWatchdog(double timeout_s, int64_t start_step, std::function<void(const std::string&)> on_hang,
                 std::string unit = "step");
    ~HangWatchdog();
    HangWatchdog(const HangWatchdog&) = delete;
    HangWatchdog& operator=(const HangWatchdog&) = delete;

    // Step `step` finished: what ran since the last (the step, and a validation or checkpoint after it) sets the
    // slowest step.
    void finished(int64_t step);

    // A step may take this many times the slowest before it (a checkpoint, a validation, a /heavy row) before it
    // counts as hung, however short fault.hang_timeout is.
    static constexpr double kSlowestStepFactor = 10;

private:
    using Clock = std::chrono::steady_clock;
    void watch();
    void skip_time_stood_still(Clock::time_point now);  // under mutex_

    const double timeout_s_;
    const std::function<void(const std::string&)> on_hang_;
    const std::string unit_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    int64_t last_step_;
    Clock::time_point last_ = Clock::now();    // the last step's end
    Clock::time_point polled_ = Clock::now();  // the watchdog's last look at the clock
    double slowest_s_ = 0;
    std::thread thread_;
};

// Why a command's steps stopped finishing, for the message of its on_hang: `command` is "the run", "the eval".
std::string hang_cause(int world, const std::string& command);

}  // namespace sinklab
