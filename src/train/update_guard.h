// Decides, after the gradient all-reduce, whether an optimizer step may be applied: a non-finite loss or
// gradient norm follows fault.nan_policy (abort, or skip the update), and a loss spike (a z-score over the
// last fault.spike_window losses above fault.spike_zscore) skips the update. Every rank sees the same reduced
// loss and norm, so every rank decides the same.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "config/config.h"

namespace sinklab {

enum class Verdict : uint8_t { Apply, SkipNonFinite, SkipSpike, AbortNonFinite };
// The value of /train/skipped for a verdict: 0 applied, 1 non-finite, 2 loss spike.
int skipped_code(Verdict v);

// What a checkpoint keeps of the guard, so that a resumed run decides exactly as the straight one would.
struct GuardState {
    std::vector<double> losses;  // the window, oldest first
    int64_t skipped_nonfinite = 0, skipped_spike = 0;
};

class UpdateGuard {
public:
    explicit UpdateGuard(const FaultConfig& cfg);
    // The verdict for this step's loss and gradient norm; finite losses enter the window.
    Verdict check(double loss, double grad_norm);
    // The loss z-score the last check() computed (0 while the window is filling).
    double last_zscore() const { return z_; }
    GuardState state() const;
    void restore(const GuardState& s);

private:
    FaultConfig cfg_;
    std::deque<double> window_;
    int64_t skipped_nonfinite_ = 0, skipped_spike_ = 0;
    double z_ = 0;
};

}  // namespace sinklab
