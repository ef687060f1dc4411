// The hang watchdog (src/train/hang_watchdog.h) on its own, with short timeouts: each check bounds when it may fire
// from below (it cannot fire early), and waits generously for it from above.
#include "train/hang_watchdog.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

namespace sinklab {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration;

struct Fired {
    std::mutex mutex;
    std::atomic<bool> yes = false;
    std::string message;
    Clock::time_point at;

    auto callback() {
        return [this](const std::string& m) {
            std::lock_guard lock(mutex);
            message = m;
            at = Clock::now();
            yes = true;
        };
    }
    bool within(double seconds) const {
        const auto end = Clock::now() + duration<double>(seconds);
        while (!yes && Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        return yes;
    }
};

void sleep_s(double s) { std::this_thread::sleep_for(duration<double>(s)); }

TEST(HangWatchdog, EndsAStepThatOutlastsTheTimeout) {
    Fired fired;
    HangWatchdog w(0.5, 7, fired.callback());
    sleep_s(0.01);
    w.finished(8);
    const auto finished = Clock::now();
    ASSERT_TRUE(fired.within(30));
    EXPECT_GE(duration<double>(fired.at - finished).count(), 0.5);
    EXPECT_NE(fired.message.find("step 9 has not finished"), std::string::npos) << fired.message;
    EXPECT_NE(fired.message.find("after step 8 (fault.hang_timeout = 0.5 s"), std::string::npos) << fired.message;
}

// eval's watchdog counts batches: its message names them so.
TEST(HangWatchdog, NamesItsUnit) {
    Fired fired;
    HangWatchdog w(0.5, 0, fired.callback(), "batch");
    sleep_s(0.01);
    w.finished(1);
    ASSERT_TRUE(fired.within(30));
    EXPECT_NE(fired.message.find("batch 2 has not finished"), std::string::npos) << fired.message;
    EXPECT_NE(fired.message.find("after batch 1 (fault.hang_timeout = 0.5 s; the slowest batch so far took "),
              std::string::npos)
        << fired.message;
}

// A step 0.25 s long: the next may take ten times that, longer than the timeout.
TEST(HangWatchdog, GivesEachStepTenTimesTheSlowestBeforeIt) {
    Fired fired;
    HangWatchdog w(1, 0, fired.callback());
    sleep_s(0.25);
    w.finished(1);
    const auto finished = Clock::now();
    ASSERT_TRUE(fired.within(60));
    EXPECT_GE(duration<double>(fired.at - finished).count(), 10 * 0.25);
}

// The first step of a start (here a resume at step 40) has no slower step before it: the timeout alone judges it.
TEST(HangWatchdog, JudgesTheFirstStepByTheTimeoutAlone) {
    Fired fired;
    const auto start = Clock::now();
    HangWatchdog w(0.5, 40, fired.callback());
    ASSERT_TRUE(fired.within(30));
    EXPECT_GE(duration<double>(fired.at - start).count(), 0.5);
    EXPECT_NE(fired.message.find("step 41 has not finished"), std::string::npos) << fired.message;
    EXPECT_NE(fired.message.find("after the start (fault.hang_timeout = 0.5 s)"), std::string::npos) << fired.message;
}

TEST(HangWatchdog, IsOffAtZero) {
    Fired off;
    {
        HangWatchdog w(0, 0, off.callback());
        sleep_s(0.01);
        w.finished(1);
        sleep_s(1);
    }
    EXPECT_FALSE(off.yes) << off.message;
}

TEST(HangWatchdog, StaysQuietWhileStepsFinish) {
    Fired fired;
    {
        HangWatchdog w(3, 0, fired.callback());
        for (int step = 1; step <= 100; step++) {
            sleep_s(0.02);
            w.finished(step);
        }
    }
    EXPECT_FALSE(fired.yes) << fired.message;
}

}  // namespace
}  // namespace sinklab
