// Learning-rate schedules against values worked out by hand from schedule.h's definitions: lr 1e-3, min_lr 1e-4,
// 4 warmup steps, 20 steps (0-based step k).
#include "train/schedule.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>

namespace sinklab {
namespace {

TrainConfig config(const char* schedule) {
    TrainConfig t;
    t.lr = 1e-3f;
    t.min_lr = 1e-4f;
    t.warmup_steps = 4;
    t.max_steps = 20;
    t.schedule = schedule;
    t.decay_steps = 0;
    t.wsd_decay_frac = 0.25f;
    return t;
}

constexpr double kTol = 1e-9;  // lr and min_lr are floats: compare with their float values
const double kLr = double(1e-3f), kMin = double(1e-4f);

TEST(Schedule, WarmupRisesToLrOnItsLastStep) {
    for (const char* s : {"cosine", "linear", "wsd", "constant"})
        for (int k = 0; k < 4; k++) EXPECT_NEAR(lr_at(config(s), k), kLr * (k + 1) / 4, kTol) << s << " step " << k;
}

TEST(Schedule, CosineAndLinearReachMinLrOnTheLastStep) {
    // Decay over steps 4..19: step k is (k + 1 - 4) / 16 of the way.
    EXPECT_NEAR(lr_at(config("linear"), 4), kLr - (kLr - kMin) / 16, kTol);  // 9.4375e-4: the peak is used once
    EXPECT_NEAR(lr_at(config("linear"), 11), (kLr + kMin) / 2, kTol);       // halfway
    EXPECT_NEAR(lr_at(config("linear"), 19), kMin, kTol);
    EXPECT_NEAR(lr_at(config("cosine"), 4), kMin + 0.5 * (1 + std::cos(M_PI / 16)) * (kLr - kMin), kTol);
    EXPECT_NEAR(lr_at(config("cosine"), 11), (kLr + kMin) / 2, kTol);
    EXPECT_NEAR(lr_at(config("cosine"), 19), kMin, kTol);
    // decay_steps 12: min_lr at step 11, and after it.
    TrainConfig short_decay = config("cosine");
    short_decay.decay_steps = 12;
    EXPECT_NEAR(lr_at(short_decay, 7), (kLr + kMin) / 2, kTol);  // (7 + 1 - 4) / 8 = 0.5
    EXPECT_NEAR(lr_at(short_decay, 11), kMin, kTol);
    EXPECT_NEAR(lr_at(short_decay, 15), kMin, kTol);
}

TEST(Schedule, WsdHoldsThenDecaysOverItsShareAndConstantHolds) {
    // 0.25 of 20 steps: steps 15..19 decay, step k by (k - 15 + 1) / 5.
    EXPECT_NEAR(lr_at(config("wsd"), 14), kLr, kTol);
    EXPECT_NEAR(lr_at(config("wsd"), 15), kLr - 0.2 * (kLr - kMin), kTol);
    EXPECT_NEAR(lr_at(config("wsd"), 19), kMin, kTol);
    EXPECT_NEAR(lr_at(config("constant"), 19), kLr, kTol);
}

// A cosine run of 20 steps resumed at 20 with max_steps 36: step 21 (k = 20) is (20 + 1 - 4) / 32 of the way down a
// longer decay, where the old schedule stayed at min_lr: noted with both rates. A change that leaves step 21's rate
// (the warmup, long over) or no change is not noted.
TEST(Schedule, AResumeNotesWhereTheScheduleChangesTheRate) {
    TrainConfig longer = config("cosine");
    longer.max_steps = 36;
    const double is = kMin + 0.5 * (1 + std::cos(M_PI * 17 / 32)) * (kLr - kMin);
    EXPECT_EQ(schedule_change_note(config("cosine"), longer, 20),
              fmt::format("the learning-rate schedule changed: step 21 runs at lr {:.4g}, where the run's schedule "
                          "had {:.4g} (step 20 ran at {:.4g})",
                          is, kMin, kMin));
    TrainConfig warmup = config("cosine");
    warmup.warmup_steps = 3;
    warmup.max_steps = 19;  // min_lr from step 18 on, as the original from step 19
    EXPECT_EQ(schedule_change_note(config("cosine"), warmup, 20), "");
    EXPECT_EQ(schedule_change_note(config("cosine"), config("cosine"), 20), "");
}

}  // namespace
}  // namespace sinklab
