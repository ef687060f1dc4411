// UpdateGuard: the NaN policy, and the loss spike z-score against a sample mean and standard deviation
// computed here.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "train/update_guard.h"

namespace sinklab {
namespace {

FaultConfig faults(const std::string& policy, float z, int window) {
    FaultConfig f;
    f.nan_policy = policy;
    f.spike_zscore = z;
    f.spike_window = window;
    return f;
}

TEST(UpdateGuard, NonFiniteFollowsThePolicy) {
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    UpdateGuard abort(faults("abort", 0, 10));
    EXPECT_EQ(abort.check(nan, 1.0), Verdict::AbortNonFinite);
    EXPECT_EQ(abort.check(1.0, inf), Verdict::AbortNonFinite);
    EXPECT_EQ(abort.check(1.0, 1.0), Verdict::Apply);
    UpdateGuard skip(faults("skip", 0, 10));
    EXPECT_EQ(skip.check(1.0, nan), Verdict::SkipNonFinite);
    EXPECT_EQ(skip.check(2.0, 1.0), Verdict::Apply);
    EXPECT_EQ(skip.state().skipped_nonfinite, 1);
    EXPECT_EQ(skip.state().losses, std::vector<double>{2.0});  // non-finite losses stay out of the window
}

TEST(UpdateGuard, SpikeIsJudgedOnAFullWindow) {
    UpdateGuard g(faults("abort", 3.f, 4));
    const std::vector<double> calm = {2.0, 2.2, 1.9, 2.1};
    EXPECT_EQ(g.check(50.0, 1.0), Verdict::Apply);  // nothing to judge against yet
    for (double l : calm) EXPECT_EQ(g.check(l, 1.0), Verdict::Apply);
    // The window is now `calm`: mean 2.05, sample std sqrt(0.05 / 3).
    const double mean = 2.05, sd = std::sqrt(((0.05 * 0.05) + (0.15 * 0.15) + (0.15 * 0.15) + (0.05 * 0.05)) / 3);
    const double at_threshold = mean + 3.0 * sd;
    UpdateGuard copy(faults("abort", 3.f, 4));
    copy.restore(g.state());
    EXPECT_EQ(copy.check(at_threshold - 0.01, 1.0), Verdict::Apply);
    EXPECT_EQ(g.check(at_threshold + 0.01, 1.0), Verdict::SkipSpike);
    EXPECT_NEAR(g.last_zscore(), (at_threshold + 0.01 - mean) / sd, 1e-9);
    EXPECT_EQ(g.state().skipped_spike, 1);
    EXPECT_EQ(g.check(0.5, 1.0), Verdict::Apply);  // a drop is never a spike
}

TEST(UpdateGuard, OffWhenZscoreIsZero) {
    UpdateGuard g(faults("abort", 0.f, 2));
    for (double l : {1.0, 1.0, 1e6}) EXPECT_EQ(g.check(l, 1.0), Verdict::Apply);
}

}  // namespace
}  // namespace sinklab
