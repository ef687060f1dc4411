#include "train/slurm.h"

#include <filesystem>

#include "core/check.h"
#include "core/file_writer.h"
#include "train/run_folder.h"

namespace sinklab {
namespace fs = std::filesystem;

namespace {

// A path for a double-quoted #SBATCH value: sbatch splits its lines at blanks outside quotes, takes # there as a
// comment, and expands % in file names (%% is a % itself); a double quote it cannot hold.
std::string sbatch_path(const std::string& path) {
    SL_REQUIRE(path.find('"') == std::string::npos && path.find('\n') == std::string::npos,
               "sweep --slurm: {} holds a double quote or a line break, which an #SBATCH line cannot; choose another "
               "run.out_dir",
               path);
    std::string out;
    for (char c : path) out += c == '%' ? std::string("%%") : std::string(1, c);
    return out;
}

}  // namespace

std::string slurm_script(const Sweep& sweep, const std::string& binary, const std::string& workdir) {
    const Suite& s = sweep.suite;
    const size_t n = sweep.runs.size();
    const fs::path out_abs = (fs::path(workdir) / sweep.out_dir).lexically_normal();
    const std::string script = (out_abs / (s.name + ".sbatch")).string();
    std::string t;
    t += "#!/bin/bash\n";
    t += fmt::format("# Slurm array job of the sinklab suite {} ({}): {} runs, one per array task.\n", s.name, s.path,
                     n);
    t += fmt::format("# Written by `sinklab sweep {} --slurm`.\n", s.path);
    t += fmt::format("# Submit it:       sbatch {}\n", script);
    t += fmt::format("# Some runs only:  sbatch --array=0,3 {}\n", script);
    t += "# A requeued or resubmitted task continues its run from the newest checkpoint; a finished one has nothing "
         "to do.\n";
    t += "# Five minutes before a task's time limit its ranks checkpoint and exit, and the task requeues itself.\n";
    t += fmt::format("#SBATCH --job-name={}\n", s.name);
    t += fmt::format("#SBATCH --array=0-{}\n", n - 1);
    t += fmt::format("#SBATCH --output=\"{}/%A_%a.out\"\n", sbatch_path((out_abs / "slurm").string()));
    t += "#SBATCH --open-mode=append\n";
    t += "#SBATCH --requeue\n";
    t += "#SBATCH --signal=B:USR1@300\n";
    for (const std::string& opt : s.slurm.sbatch) t += fmt::format("#SBATCH {}\n", opt);
    t += "set -euo pipefail\n";
    t += fmt::format("cd {}  # config and data paths are relative to where sinklab sweep ran\n", shell_quote(workdir));
    t += "case \"${SLURM_ARRAY_TASK_ID:?submit this script with sbatch}\" in\n";
    for (size_t i = 0; i < n; i++) {
        const SweepRun& run = sweep.runs[i];
        std::vector<std::string> args{s.base};
        for (const std::string& o : run.overrides) args.insert(args.end(), {"--set", o});
        t += fmt::format("  {})  # {}\n    dir={}\n    args=({}) ;;\n", i, run.name, shell_quote(run.dir),
                         shell_join(args));
    }
    t += fmt::format("  *) echo \"sinklab: this job has array tasks 0-{}, not $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\n",
                     n - 1);
    t += "esac\n";
    t += "task=${SLURM_ARRAY_JOB_ID:?submit this script with sbatch}_${SLURM_ARRAY_TASK_ID}  # for scancel and "
         "scontrol; the array's job id names every task\n";
    t += "flags=()\n";
    // Each entry where train will find it: in the old run a killed restart set aside, which it puts back first.
    t += fmt::format("ckpts=$dir/checkpoints; [[ -e $dir/{0}/checkpoints ]] && ckpts=$dir/{0}/checkpoints\n",
                     kReplacedRun);
    t += fmt::format("h5=$dir/metrics.h5; [[ -e $dir/{0}/metrics.h5 ]] && h5=$dir/{0}/metrics.h5\n", kReplacedRun);
    t += "if [[ -n $(ls -A \"$ckpts\" 2>/dev/null) ]]; then\n";
    t += "  flags=(--resume)     # requeued or resubmitted: continue from the newest checkpoint\n";
    t += "elif [[ -e $h5 ]]; then\n";
    t += "  flags=(--overwrite)  # cut short before its first checkpoint: start it again\n";
    t += "fi\n";
    for (const std::string& line : s.slurm.setup) t += line + "\n";
    // ${flags[@]+...}: bash before 4.4 (RHEL 7) takes an empty array for an unset variable under set -u.
    t += "echo \"sinklab: array task $SLURM_ARRAY_TASK_ID: $dir ${flags[*]-}\"\n";
    // As scripts/slurm/train.sbatch: Slurm's USR1 (--signal above) reaches this script, which passes it to the ranks
    // (srun's are a job step, which scancel signals; another launcher, mpirun, forwards it itself); they checkpoint
    // and exit 0, and the task requeues. The ranks run in the background so that the trap runs while they do; the
    // traps come first, so that an early USR1 does not end the script. Under set -e a failed scancel (a busy
    // slurmctld) in the handler would end the script and, with it, the ranks: it is said and passed over.
    const std::string launcher_program = s.slurm.launcher.substr(0, s.slurm.launcher.find_first_of(" \t"));
    t += "ranks=\nstop=0\ntermed=0\n";
    t += fmt::format("on_time_limit() {{\n  stop=1\n  {} || echo \"sinklab: could not pass SIGUSR1 to the ranks\" "
                     ">&2\n}}\n",
                     launcher_program == "srun" ? "scancel --signal=USR1 \"$task\""
                                                : "kill -USR1 \"$ranks\" 2>/dev/null");
    t += "trap on_time_limit USR1\n";
    if (launcher_program != "srun") {
        // As scripts/slurm/train.sbatch: Open MPI's mpirun would SIGKILL the ranks 2 s after scancel's SIGTERM, before
        // they checkpoint; it waits Slurm's KillWait instead (a value set already stays; other launchers ignore it).
        t += "kill_wait=$(scontrol show config 2>/dev/null | "
             R"(sed -n 's/^KillWait *= *\([0-9]\+\) sec.*/\1/p') || true)" "\n";
        t += "export OMPI_MCA_odls_base_sigkill_timeout=${OMPI_MCA_odls_base_sigkill_timeout:-${kill_wait:-30}}  # "
             "mpirun waits as long as Slurm before its SIGKILL\n";
    }
    // Requeueing after a TERM would undo a scancel, also one that comes after the time limit's USR1.
    t += "trap 'termed=1' TERM  # preempted or cancelled: the ranks got SIGTERM too and checkpoint; Slurm requeues "
         "a preempted task itself\n";
    t += fmt::format("{} {} train \"${{args[@]}}\" ${{flags[@]+\"${{flags[@]}}\"}} &\n", s.slurm.launcher,
                     shell_quote(binary));
    t += "ranks=$!\n";
    // The loop's wait may have returned for a trapped signal while the ranks were ending; the last wait gives their
    // own exit status.
    t += "# wait returns early when a trapped signal arrives: wait again until the ranks have exited.\n";
    t += "while kill -0 \"$ranks\" 2>/dev/null; do wait \"$ranks\" || true; done\n";
    t += "rc=0\nwait \"$ranks\" || rc=$?\n";
    t += "if [[ $stop == 1 && $termed == 0 && $rc == 0 ]]; then\n";
    t += "  echo \"sinklab: array task $SLURM_ARRAY_TASK_ID stopped at a checkpoint before the time limit: "
         "requeueing\"\n";
    t += "  scontrol requeue \"$task\"\nfi\n";
    t += "exit \"$rc\"\n";
    return t;
}

std::string write_slurm_script(const Sweep& sweep, const std::string& binary, const std::string& workdir) {
    const fs::path out = fs::path(workdir) / sweep.out_dir;
    const std::string text = slurm_script(sweep, binary, workdir);  // first: it may refuse the folder
    std::error_code ec;
    fs::create_directories(out / "slurm", ec);  // sbatch does not make the folder of --output
    SL_REQUIRE(!ec, "cannot create {}: {}; check run.out_dir and permissions", (out / "slurm").string(), ec.message());
    const fs::path file = (out / (sweep.suite.name + ".sbatch")).lexically_normal();
    replace_file_durably(file.string(), text);
    fs::permissions(file, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add, ec);
    return file.string();
}

}  // namespace sinklab
