// `sinklab sweep --slurm`: the suite as one Slurm array job, one run per array task.
#pragma once
#include <string>

#include "train/sweep.h"

namespace sinklab {

// The sbatch script. Task i runs sweep.runs[i] under the suite's launcher (srun by default) from `workdir`
// (config and data paths are relative to it), with --resume when the run folder has a checkpoint (a requeued
// or resubmitted task continues) and --overwrite when it was cut short before one. Logs go to
// <out_dir>/slurm/<job>_<task>.out.
std::string slurm_script(const Sweep& sweep, const std::string& binary, const std::string& workdir);

// Writes slurm_script() to <out_dir>/<suite name>.sbatch and returns that path.
std::string write_slurm_script(const Sweep& sweep, const std::string& binary, const std::string& workdir);

}  // namespace sinklab
