// The conventions of metrics.h5 that the writer and the reader share.
#pragma once
#include <cstdint>
#include <string>

#include "metrics/h5util.h"

namespace sinklab::runlog {

// Every group has this int64 column, one value per row, strictly increasing.
inline constexpr const char* kStepColumn = "step";

// Fill value of the step column, i.e. what a row reads as before its step is written. The writer writes
// `step` only after every other column of the rows is on disk, so a row counts as data exactly when its
// step is >= 0, whatever moment a killed writer stopped at.
inline constexpr int64_t kNoStep = -1;

// Root attribute: a random id (hex) given at a run's first start and kept by its resumes, which tells the run from
// one that replaced it in the same folder (--overwrite), where `created`, in whole seconds, may not.
inline constexpr const char* kRunIdAttr = "run_id";
std::string new_run_id();

// Opens a dataset; `refresh` drops what this process cached of it, so a SWMR reader sees the rows the writer
// has flushed since.
h5::Id open_dataset(hid_t group, const std::string& name, const std::string& file, bool refresh);

// The number of leading rows of `group` that are complete and have step <= through_step: bounded by its
// shortest column, and ending at the first row whose step is unwritten or beyond through_step. A group
// without a step column (not written by sinklab) counts its shortest column.
int64_t complete_rows(hid_t group, const std::string& group_name, const std::string& file, bool refresh,
                      int64_t through_step);

}  // namespace sinklab::runlog
