#include "train/update_guard.h"

#include <cmath>

namespace sinklab {

int skipped_code(Verdict v) {
    switch (v) {
        case Verdict::Apply: return 0;
        case Verdict::SkipNonFinite:
        case Verdict::AbortNonFinite: return 1;
        case Verdict::SkipSpike: return 2;
    }
    return 0;
}

UpdateGuard::UpdateGuard(const FaultConfig& cfg) : cfg_(cfg) {}

Verdict UpdateGuard::check(double loss, double grad_norm) {
    z_ = 0;
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
        if (cfg_.nan_policy == "abort") return Verdict::AbortNonFinite;
        skipped_nonfinite_++;
        return Verdict::SkipNonFinite;
    }
    const bool judged = cfg_.spike_zscore > 0 && int(window_.size()) == cfg_.spike_window;
    if (judged) {
        double mean = 0, var = 0;
        for (double l : window_) mean += l;
        mean /= double(window_.size());
        for (double l : window_) var += (l - mean) * (l - mean);
        const double sd = std::sqrt(var / double(window_.size() - 1));
        z_ = sd > 0 ? (loss - mean) / sd : 0.0;
    }
    // A spike enters the window too: the next steps then judge against a wider spread, so a loss that moved
    // to a new level for good is followed instead of being skipped for ever.
    window_.push_back(loss);
    if (int(window_.size()) > cfg_.spike_window) window_.pop_front();
    if (judged && z_ > cfg_.spike_zscore) {
        skipped_spike_++;
        return Verdict::SkipSpike;
    }
    return Verdict::Apply;
}

GuardState UpdateGuard::state() const {
    return {std::vector<double>(window_.begin(), window_.end()), skipped_nonfinite_, skipped_spike_};
}

void UpdateGuard::restore(const GuardState& s) {
    window_.assign(s.losses.begin(), s.losses.end());
    while (int(window_.size()) > cfg_.spike_window) window_.pop_front();
    skipped_nonfinite_ = s.skipped_nonfinite;
    skipped_spike_ = s.skipped_spike;
}

}  // namespace sinklab
