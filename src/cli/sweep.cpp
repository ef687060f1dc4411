// sinklab sweep SUITE.yaml [--dry-run | --slurm] [--set k=v]... [--launcher CMD] [--keep-going]
#include "train/sweep.h"

#include <csignal>
#include <filesystem>
#include <optional>

#include "cli/commands.h"
#include "core/check.h"
#include "core/folder_lock.h"
#include "core/process.h"
#include "dist/comm.h"
#include "train/slurm.h"

namespace sinklab::cli {

namespace {

struct SweepArgs {
    std::string suite;
    std::vector<std::string> overrides;
    std::string launcher;
    bool dry_run = false;
    bool slurm = false;
    bool keep_going = false;
};

void print_slurm(const Sweep& sweep, const std::vector<RunState>& states) {
    const std::string script = write_slurm_script(sweep, self_exe(), std::filesystem::current_path().string());
    int finished = 0;
    for (const RunState& s : states) finished += s.action == RunAction::skip;
    fmt::print("wrote {}: a Slurm array job of {} tasks, one per run of {} ({} already finished)\n", script,
               sweep.runs.size(), sweep.suite.name, finished);
    fmt::print("submit it:        sbatch {}\n", script);
    fmt::print("follow it:        squeue --me; tail -f {}/slurm/*.out\n", sweep.out_dir);
    fmt::print("compare the runs: sinklab compare {}  (works while they run)\n", sweep.out_dir);
}

void run(const SweepArgs& a) {
    const Sweep sweep = expand_sweep(load_suite(a.suite), a.overrides);
    // One sweep of a suite at a time: a second one decided on the same runs from what it saw at its start.
    std::optional<FolderLock> lock;
    if (!a.dry_run) {
        lock.emplace(sweep.out_dir, "suite folder", "sweep", "run this one with --dry-run to see where it stands");
        if (!lock->note().empty()) fmt::print(stderr, "sinklab sweep: note: {}\n", lock->note());
    }
    const std::vector<RunState> states = inspect_sweep(sweep);
    const std::vector<std::string> launcher = shell_split(a.launcher, "--launcher");
    if (a.dry_run) return print_dry_run(stdout, sweep, states, launcher, self_exe());
    // The script's refusals (an out_dir that sbatch's --output cannot hold) come before the suite folder is written.
    if (a.slurm) slurm_script(sweep, self_exe(), std::filesystem::current_path().string());
    write_manifest(sweep);
    if (a.slurm) return print_slurm(sweep, states);

    // A reader of the sweep's output that goes away (`| head`) must not end it between two runs: each run logs to
    // its train.log, and the sweep's own lines have no reader left.
    drop_signal(SIGPIPE);
    SweepOptions opt;
    opt.launcher = launcher;
    opt.binary = self_exe();
    opt.keep_going = a.keep_going;
    const std::vector<RunOutcome> outcomes = run_sweep(stdout, sweep, states, opt);
    const int unfinished = print_summary(stdout, sweep, outcomes);
    SL_REQUIRE(unfinished == 0,
               "{} of {} runs of {} are not finished (see above); run the same command again: finished "
               "runs are skipped and cut-short ones resumed",
               unfinished, outcomes.size(), sweep.suite.name);
    fmt::print("compare them: sinklab compare {}\n", sweep.out_dir);
}

}  // namespace

void add_sweep(CLI::App& app) {
    auto* cmd = app.add_subcommand("sweep", "run every variant x seed of an ablation suite (experiments/*/suite.yaml)");
    auto a = std::make_shared<SweepArgs>();
    cmd->add_option("suite", a->suite, "suite file (format: experiments/README.md)")->required();
    // One value per --set, so that the suite file may also come after them.
    cmd->add_option("--set", a->overrides, "override a config key in every run: --set train.max_steps=100 (repeatable)")
        ->allow_extra_args(false);
    auto* dry = cmd->add_flag("--dry-run", a->dry_run, "print each run's state and exact command; run nothing");
    auto* slurm = cmd->add_flag("--slurm", a->slurm,
                                "write a Slurm array job script (one run per task) and say how "
                                "to submit it; run nothing");
    dry->excludes(slurm);
    cmd->add_option("--launcher", a->launcher, "command to start each run under, e.g. \"mpirun -np 8\"")
        ->excludes(slurm);
    cmd->add_flag("--keep-going", a->keep_going, "after a run fails, go on with the others");
    cmd->callback([a] {
        require_single_process("sweep");
        run(*a);
    });
}

}  // namespace sinklab::cli
