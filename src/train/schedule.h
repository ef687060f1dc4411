// Learning-rate schedules: linear warmup, then cosine / linear / WSD (warmup-stable-decay) / constant.
#pragma once
#include <cstdint>

#include "config/config.h"

namespace sinklab {

// Learning rate of optimizer step `step` (0-based).
double lr_at(const TrainConfig& t, int64_t step);

}  // namespace sinklab
