#include "train/schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace sinklab {

double lr_at(const TrainConfig& t, int64_t step) {
    const double peak = t.lr, floor = t.min_lr;
    if (step < t.warmup_steps) return peak * double(step + 1) / double(t.warmup_steps);
    if (t.schedule == "constant") return peak;
    if (t.schedule == "wsd") {
        const int64_t decay_start = t.max_steps - int64_t(std::llround(t.wsd_decay_frac * double(t.max_steps)));
        if (step < decay_start) return peak;
        const double p = double(step - decay_start + 1) / double(std::max<int64_t>(1, t.max_steps - decay_start));
        return peak + (floor - peak) * std::min(1.0, p);
    }
    // Steps warmup_steps .. horizon-1 decay, the last of them at min_lr (as the last warmup step is at lr).
    const int64_t horizon = t.decay_steps > 0 ? t.decay_steps : t.max_steps;
    const double p = std::clamp(
        double(step + 1 - t.warmup_steps) / double(std::max<int64_t>(1, horizon - t.warmup_steps)), 0.0, 1.0);
    if (t.schedule == "linear") return peak + (floor - peak) * p;
    return floor + 0.5 * (1.0 + std::cos(M_PI * p)) * (peak - floor);  // cosine
}

std::string schedule_change_note(const TrainConfig& before, const TrainConfig& now, int64_t step) {
    const double was = lr_at(before, step), is = lr_at(now, step);
    if (std::fabs(is - was) <= 1e-6 * std::max(std::fabs(was), std::fabs(is))) return "";
    return fmt::format("the learning-rate schedule changed: step {} runs at lr {:.4g}, where the run's schedule had "
                       "{:.4g} (step {} ran at {:.4g})",
                       step + 1, is, was, step, lr_at(before, step - 1));
}

}  // namespace sinklab
