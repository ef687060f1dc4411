// The diagnostic a run leaves in its folder when a non-finite loss or gradient ends it (fault.nan_policy:
// abort): the step's numbers, where its data came from, the last good checkpoint, and which parameters'
// gradients hold NaN or Inf (with the norm of their finite part), as JSON for people and scripts.
#pragma once
#include <cstdint>
#include <string>

#include "data/dataloader.h"
#include "model/model.h"

namespace sinklab {

struct NonFiniteStep {
    int64_t step = 0;
    double loss = 0, grad_norm = 0, lr = 0;
    LoaderPosition data;          // the position the step's batches started at
    std::string last_checkpoint;  // "" when there is none
};

// Writes <run_dir>/nonfinite_step_<step>.json and returns its path.
std::string write_nonfinite_report(const std::string& run_dir, const NonFiniteStep& s, Model& model);

}  // namespace sinklab
