// An ablation suite (experiments/*/suite.yaml, format in experiments/README.md): a base config, variants that
// override some of its keys, and seeds; every variant runs once per seed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"

namespace sinklab {

struct SuiteVariant {
    std::string name;
    std::vector<Override> overrides;  // "key.path=value", as --set takes them, and the suite file's line
};

// How `sinklab sweep --slurm` writes the array job.
struct SuiteSlurm {
    std::vector<std::string> sbatch;  // "#SBATCH" options, e.g. "--gpus-per-node=8"
    // The command each task runs `sinklab train` under: srun as scripts/slurm/train.sbatch starts it by default.
    std::string launcher = "srun --mpi=pmix --kill-on-bad-exit=1";
    std::vector<std::string> setup;   // shell lines run before it (module loads, environment)
};

struct Suite {
    std::string path;  // the suite file, as given
    std::string name;  // runs go to <out_dir>/<name>/<variant>-s<seed>
    std::string base;  // the base config: `base:` resolved against the suite file's folder
    std::vector<uint64_t> seeds;
    std::vector<Override> overrides;  // suite-wide `set:`, applied before each variant's own
    std::vector<SuiteVariant> variants;
    SuiteSlurm slurm;
};

// Reads and checks a suite file; errors name the file, line and key. Keys under set: must be config keys
// (checked against the schema); their values are checked when the runs' configs are loaded.
Suite load_suite(const std::string& path);

// The run folder name of a variant and seed, and back: "headnorm-s2" <-> ("headnorm", 2).
std::string run_name(const std::string& variant, uint64_t seed);
// False when `name` does not end in -s<digits>.
bool split_run_name(const std::string& name, std::string& variant, uint64_t& seed);

}  // namespace sinklab
