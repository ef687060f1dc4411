// Learning-rate schedules: linear warmup, then cosine / linear / WSD (warmup-stable-decay) / constant.
#pragma once
#include <cstdint>
#include <string>

#include "config/config.h"

namespace sinklab {

// Learning rate of optimizer step `step` (0-based). Warmup: steps 0 .. W-1 rise linearly to lr, step k at
// lr (k+1)/W. Then cosine and linear fall from lr to min_lr over steps W .. horizon-1 (horizon = decay_steps, or
// max_steps when 0), reaching min_lr at step horizon-1 and staying there; wsd holds lr until its last
// wsd_decay_frac of max_steps, which falls linearly to min_lr at the last step; constant holds lr.
double lr_at(const TrainConfig& t, int64_t step);

// For a resume at `step` (0-based: the steps before it ran under `before`) with the schedule keys changed: a note
// that step `step` + 1 runs at another rate than `before` would give it (a cosine run raised from max_steps 60 to 70
// jumps from min_lr back up), with both rates and the last step's; "" when the rate is the same.
std::string schedule_change_note(const TrainConfig& before, const TrainConfig& now, int64_t step);

}  // namespace sinklab
