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

// A step 0.4 s long: the next may take ten times that, however short the timeout.
TEST(HangWatchdog, GivesEachStepTenTimesTheSlowestBeforeIt) {
    Fired fired;
    HangWatchdog w(0.05, 0, fired.callback());
    sleep_s(0.4);
    w.finished(1);
    const auto finished = Clock::now();
    ASSERT_TRUE(fired.within(60));
    EXPECT_GE(duration<double>(fired.at - finished).count(), 10 * 0.4);
}

// The first step builds plans and caches, and is not judged; nor is any step where the watchdog is off.
TEST(HangWatchdog, NeverJudgesTheFirstStepNorRunsWhenOff) {
    Fired first, off;
    {
        HangWatchdog a(0.05, 0, first.callback());
        HangWatchdog b(0, 0, off.callback());
        sleep_s(0.01);
        b.finished(1);
        sleep_s(1.5);
    }
    EXPECT_FALSE(first.yes) << first.message;
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
