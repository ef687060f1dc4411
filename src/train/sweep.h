// `sinklab sweep`: a suite expanded into runs (seeds x variants), what to do with each run folder (start,
// resume, restart, skip), the `sinklab train` command of each, and running them one after another.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/process.h"
#include "train/suite.h"

namespace sinklab {

struct SweepRun {
    std::string name;  // <variant>-s<seed>
    std::string variant;
    uint64_t seed = 0;
    std::vector<std::string> overrides;  // every --set of its train command: suite, variant, command line, sweep's own
    Config config;                       // what those give (validated)
    std::string dir;                     // its run folder, run_dir(config)
};

struct Sweep {
    Suite suite;
    std::string out_dir;         // <run.out_dir>/<suite name>: every run folder, the manifest, the Slurm script
    std::vector<SweepRun> runs;  // seed by seed, variants in suite order: early runs already pair up
};

// Expands a suite; `cli_overrides` (sweep --set) apply to every run, after the suite's. Every run's config is
// loaded and validated here: all failures are reported together (one line each) before anything runs.
Sweep expand_sweep(const Suite& suite, const std::vector<std::string>& cli_overrides);

enum class RunAction {
    start,    // no metrics.h5 yet: a new run
    resume,   // cut short with a checkpoint: train --resume
    restart,  // cut short before its first checkpoint: nothing to continue from, train --overwrite
    skip,     // finished: /train/step reached train.max_steps
};
const char* action_name(RunAction a);

struct RunState {
    RunAction action = RunAction::start;
    int64_t step = 0;             // last logged /train/step (0 when none)
    int64_t checkpoint_step = -1;  // step of the newest complete checkpoint (-1 when none)
    std::string trained_by;        // the process training it now (its folder's lock), "" when none
};

// Looks at a run folder. A folder that holds a run of another config (config.yaml differs from run.config in
// any key) is an error naming the keys, never skipped or resumed as if it were this run.
RunState inspect_run(const SweepRun& run);
// Refuses a suite folder that is a run's folder, or whose sweep.yaml is another suite's (another file, or other
// variants): a second suite of the same name would mix its runs into the first one's.
void check_suite_folder(const Sweep& sweep);
// check_suite_folder, then inspect_run for every run; all run failures are reported together.
std::vector<RunState> inspect_sweep(const Sweep& sweep);

// [launcher..., binary, "train", base, "--set", k=v, ..., "--resume" | "--overwrite"].
std::vector<std::string> train_command(const std::vector<std::string>& launcher, const std::string& binary,
                                       const Sweep& sweep, const SweepRun& run, RunAction action);

// --dry-run: for each run, a comment with what its folder holds and the exact command (none for skipped runs).
void print_dry_run(std::FILE* out, const Sweep& sweep, const std::vector<RunState>& states,
                   const std::vector<std::string>& launcher, const std::string& binary);

// <out_dir>/sweep.yaml: the suite's name, variants in order and seeds, so that `sinklab compare` on the suite
// folder orders its table like the suite (and takes the first variant as the baseline).
void write_manifest(const Sweep& sweep);

struct SweepOptions {
    std::vector<std::string> launcher;  // e.g. {"mpirun", "-np", "8"}; empty: the binary itself
    std::string binary;                 // the sinklab to run (normally this one)
    bool keep_going = false;            // after a failed run, go on with the next (an interrupt always stops)
    // Runs one command and waits; run_process unless a test stands in for it.
    std::function<ProcessResult(const std::vector<std::string>&)> launch = run_process;
};

struct RunOutcome {
    std::string name;
    RunAction action = RunAction::start;
    bool ran = false;       // a command was started
    bool finished = false;  // the folder holds a finished run afterwards
    std::string result;     // "finished", "exit code 1", "stopped at step 30/600", "not run", ...
    double seconds = 0;
};

// Runs what `states` says, one run after another, saying on `out` what it does; stops at the first failure
// unless keep_going, and at an interrupt (SIGINT/SIGTERM) always. Returns one outcome per run.
std::vector<RunOutcome> run_sweep(std::FILE* out, const Sweep& sweep, const std::vector<RunState>& states,
                                  const SweepOptions& opt);

// The table of outcomes; returns the number of runs that are not finished.
int print_summary(std::FILE* out, const Sweep& sweep, const std::vector<RunOutcome>& outcomes);

}  // namespace sinklab
