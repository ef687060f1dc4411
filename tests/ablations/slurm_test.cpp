// The Slurm array job of `sinklab sweep --slurm`: bash accepts it, it asks for one task per run, each task runs the
// right `sinklab train` command (checked by running the script with a stand-in srun on PATH), and a task signalled
// before its time limit checkpoints and requeues itself.
#include "train/slurm.h"

#include "ablation_fixture.h"
#include "core/process.h"

namespace sinklab::test {
namespace {

using Strings = std::vector<std::string>;

class SlurmTest : public ::testing::Test {
protected:
    Sweep make_sweep(const std::string& slurm_section) {
        write_file(root() / "base.yaml",
                   fmt::format("inherit: {}/configs/tiny.yaml\nrun:\n  out_dir: runs\n", SINKLAB_SOURCE_DIR));
        const std::string path = (root() / "t.yaml").string();
        write_file(path,
                   "base: base.yaml\nname: t\nseeds: [1, 2]\nset: {train.max_steps: 60, train.warmup_steps: 5}\n"
                   "variants:\n  - name: baseline\n    set: {attention.variant: standard}\n"
                   "  - name: headnorm\n    set: {attention.variant: headnorm}\n" +
                       slurm_section);
        return expand_sweep(load_suite(path), {"train.lr=0.002"});
    }
    fs::path root() const { return fs::path(dir_.path()); }
    TempDir dir_;
};

TEST_F(SlurmTest, ScriptIsValidBashWithOneTaskPerRun) {
    const Sweep sw = make_sweep(R"(slurm:
  sbatch: ["--gpus-per-node=8", "--time=24:00:00"]
  launcher: "srun --cpu-bind=cores"
  setup: ["module load cuda/12"]
)");
    const std::string file = write_slurm_script(sw, "/opt/sl/sinklab", root().string());
    EXPECT_EQ(file, (root() / "runs/t/t.sbatch").string());
    EXPECT_TRUE(fs::is_directory(root() / "runs/t/slurm")) << "sbatch needs the folder of --output to exist";
    EXPECT_NE(fs::status(file).permissions() & fs::perms::owner_exec, fs::perms::none);
    const ProcessResult syntax = run_process({"bash", "-n", file});
    EXPECT_TRUE(syntax.ok()) << syntax.describe();

    const std::string text = read_file(file);
    expect_has(text,
               {"#!/bin/bash\n", "#SBATCH --job-name=t\n", "#SBATCH --array=0-3\n",
                fmt::format("#SBATCH --output=\"{}/runs/t/slurm/%A_%a.out\"\n", root().string()),
                "#SBATCH --requeue\n", "#SBATCH --gpus-per-node=8\n", "#SBATCH --time=24:00:00\n",
                "module load cuda/12\n",
                "srun --cpu-bind=cores /opt/sl/sinklab train \"${args[@]}\" ${flags[@]+\"${flags[@]}\"} &\n",
                "--resume", "--overwrite", "sbatch " + file, "run.name=headnorm-s2", "#SBATCH --signal=B:USR1@300\n",
                "  scancel --signal=USR1 \"$task\" || echo"});
    EXPECT_LT(text.find("trap on_time_limit USR1"), text.find("/opt/sl/sinklab train")) << "traps before the ranks";
    // #SBATCH lines only count before the first command.
    EXPECT_LT(text.rfind("#SBATCH"), text.find("set -euo pipefail"));
}

// sbatch splits #SBATCH lines at blanks outside quotes and expands % in file names: the task logs' path is quoted and
// its % doubled. A double quote, which such a line cannot hold, is refused.
TEST_F(SlurmTest, TheLogFolderSurvivesSbatchParsing) {
    make_sweep("");
    const auto with_out_dir = [&](const std::string& out_dir) {
        return expand_sweep(load_suite((root() / "t.yaml").string()), {"run.out_dir=" + out_dir});
    };
    const std::string file = write_slurm_script(with_out_dir("my runs/50%"), "/opt/sl/sinklab", root().string());
    expect_has(read_file(file), {fmt::format("#SBATCH --output=\"{}/my runs/50%%/t/slurm/%A_%a.out\"\n",
                                             root().string())});
    EXPECT_TRUE(fs::is_directory(root() / "my runs/50%/t/slurm"));
    expect_has(error_of([&] { write_slurm_script(with_out_dir("say \"hi\""), "/opt/sl/sinklab", root().string()); }),
               {"holds a double quote", "choose another run.out_dir"});
    EXPECT_FALSE(fs::exists(root() / "say \"hi\""));
}

// Runs task `task` of the script with `srun` replaced by a script that writes its arguments, one per line.
Strings run_task(const fs::path& root, const std::string& script, int task, int* exit_code = nullptr) {
    const fs::path bin = root / "fakebin", out = root / "srun_args";
    write_executable(bin / "srun", "#!/bin/bash\nprintf '%s\\n' \"$@\" > \"$FAKE_OUT\"\n");
    fs::remove(out);
    const ProcessResult r =
        run_process({"env", "PATH=" + bin.string() + ":" + std::getenv("PATH"),
                     "SLURM_ARRAY_JOB_ID=41", fmt::format("SLURM_ARRAY_TASK_ID={}", task), "FAKE_OUT=" + out.string(),
                     "bash", script});
    if (exit_code) *exit_code = r.exit_code;
    Strings args;
    std::istringstream in(read_file(out));
    for (std::string line; std::getline(in, line);) args.push_back(line);
    return args;
}

TEST_F(SlurmTest, EachTaskRunsItsRunAndContinuesACutShortOne) {
    const Sweep sw = make_sweep("");
    const std::string script = write_slurm_script(sw, "/opt/sl/sinklab", root().string());
    auto expected = [&](const std::string& variant, const std::string& attention, int seed, const std::string& flag) {
        Strings a{"--mpi=pmix",  // the default launcher's, as scripts/slurm/train.sbatch
                  "--kill-on-bad-exit=1",
                  "/opt/sl/sinklab",
                  "train",
                  (root() / "base.yaml").string(),
                  "--set",
                  "train.max_steps=60",
                  "--set",
                  "train.warmup_steps=5",
                  "--set",
                  "attention.variant=" + attention,
                  "--set",
                  "train.lr=0.002",
                  "--set",
                  "run.out_dir=runs/t",
                  "--set",
                  fmt::format("run.name={}-s{}", variant, seed),
                  "--set",
                  fmt::format("run.seed={}", seed)};
        if (!flag.empty()) a.push_back(flag);
        return a;
    };
    // Task order is the sweep's: baseline-s1, headnorm-s1, baseline-s2, headnorm-s2; folders relative to workdir.
    write_file(root() / "runs/t/headnorm-s1/metrics.h5", "cut short before a checkpoint");
    write_file(root() / "runs/t/baseline-s2/metrics.h5", "cut short after one");
    write_file(root() / "runs/t/baseline-s2/checkpoints/step_000030.bin", "x");
    EXPECT_EQ(run_task(root(), script, 0), expected("baseline", "standard", 1, ""));
    EXPECT_EQ(run_task(root(), script, 1), expected("headnorm", "headnorm", 1, "--overwrite"));
    EXPECT_EQ(run_task(root(), script, 2), expected("baseline", "standard", 2, "--resume"));
    EXPECT_EQ(run_task(root(), script, 3), expected("headnorm", "headnorm", 2, ""));
    int code = 0;
    EXPECT_TRUE(run_task(root(), script, 4, &code).empty());
    EXPECT_EQ(code, 2);

    // A restart killed while it replaced headnorm-s2's run left the old one in .replaced, which train puts back: it is
    // that run's state that counts (without flags, train put it back and refused to start over it).
    write_file(root() / "runs/t/headnorm-s2/.replaced/metrics.h5", "cut short before a checkpoint");
    write_file(root() / "runs/t/headnorm-s2/metrics.h5.partial", "the killed restart's");
    EXPECT_EQ(run_task(root(), script, 3), expected("headnorm", "headnorm", 2, "--overwrite"));
    // Killed while it set the old run aside, one entry at a time: its checkpoints moved, its metrics.h5 not yet.
    fs::rename(root() / "runs/t/headnorm-s2/.replaced/metrics.h5", root() / "runs/t/headnorm-s2/metrics.h5");
    write_file(root() / "runs/t/headnorm-s2/.replaced/checkpoints/step_000030.bin", "x");
    EXPECT_EQ(run_task(root(), script, 3), expected("headnorm", "headnorm", 2, "--resume"));
}

// A suite of one 150-step run whose task runs under `launcher`, its script written, and stand-ins for Slurm's
// commands in root/bin: scontrol records its calls in root/calls but answers `show config` with a KillWait of 45 s;
// srun drops its options and runs the command; scancel, as `scancel_script` says.
class SlurmTaskTest : public SlurmTest {
protected:
    std::string write_task(const std::string& launcher, const std::string& scancel_script) {
        write_file(root() / "base.yaml", fmt::format("inherit: {}/configs/tiny.yaml\nrun:\n  out_dir: runs\n",
                                                     SINKLAB_SOURCE_DIR));
        write_file(root() / "t.yaml", fmt::format(R"(base: base.yaml
name: t
seeds: [1]
set:
  run.threads: 1
  model: {{d_model: 32, n_layer: 2, n_head: 2, d_ff: 64, seq_len: 32}}
  train: {{micro_batch: 4, max_steps: 150, warmup_steps: 5}}
  metrics: {{val_every: 0, flush_every: 5, wo_std_positions: 16}}
  data: {{train: "{}/data/train_*.bin", val: "", missing: synthetic}}
variants:
  - name: baseline
    set: {{attention.variant: standard}}
slurm:
  launcher: "{}"
)",
                                                  root().string(), launcher));
        write_executable(root() / "bin/scontrol",
                         fmt::format("#!/bin/sh\nif [ \"$1\" = show ]; then echo 'KillWait                = 45 sec'; "
                                     "exit 0; fi\necho \"scontrol $*\" >> {}\n",
                                     (root() / "calls").string()));
        write_executable(root() / "bin/srun", "#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\nexec \"$@\"\n");
        write_executable(root() / "bin/scancel", "#!/bin/sh\n" + scancel_script);
        return write_slurm_script(expand_sweep(load_suite((root() / "t.yaml").string()), {}), SINKLAB_BINARY,
                                  root().string());
    }
    std::string env() const {
        // Task 0 of array 41, whose own job id is 42.
        return fmt::format("env PATH={}:$PATH SLURM_ARRAY_JOB_ID=41 SLURM_ARRAY_TASK_ID=0 SLURM_JOB_ID=42",
                           (root() / "bin").string());
    }
    bool logged(int step) const {
        const fs::path log = root() / "runs/t/baseline-s1/train.log";
        return fs::exists(log) && read_file(log).find(fmt::format("step {:>6}/", step)) != std::string::npos;
    }
    // Runs the task until its run logs step 10, sends the script SIGUSR1, and returns its exit code.
    int signalled_task(const std::string& script, const std::string& log) {
        Background task(fmt::format("{} SINKLAB_FAULT_INJECT=slow=0.02 bash {}", env(), script), log);
        EXPECT_TRUE(wait_until([&] { return logged(10); }, 60)) << read_file(log);
        task.signal(SIGUSR1);
        return task.wait(60);
    }
};

// Slurm's USR1 before the time limit (--signal=B:USR1@300) stands here as SIGUSR1 to the task's script, run outside
// Slurm with a launcher that is no srun (`env`: the script passes the signal to the ranks itself). The run
// checkpoints, the task requeues itself, and its next start (the requeued task) resumes the run to its end without
// requeueing again.
TEST_F(SlurmTaskTest, ATaskSignalledBeforeItsTimeLimitCheckpointsAndRequeues) {
    const std::string script = write_task("env", "exit 1\n");
    ASSERT_EQ(signalled_task(script, root() / "task1.log"), 0) << read_file(root() / "task1.log");
    EXPECT_EQ(read_file(root() / "calls"), "scontrol requeue 41_0\n") << read_file(root() / "task1.log");
    expect_has(read_file(root() / "task1.log"), {"stopped at a checkpoint before the time limit: requeueing"});
    EXPECT_FALSE(logged(150));
    const CommandResult requeued = run_command(fmt::format("{} bash {}", env(), script));
    ASSERT_EQ(requeued.rc, 0) << requeued.out;
    expect_has(requeued.out, {"--resume", "resumed from"});
    EXPECT_TRUE(logged(150));
    EXPECT_EQ(read_file(root() / "calls"), "scontrol requeue 41_0\n") << "a finished run is not requeued";
}

// Under srun the script passes the signal through scancel, here a stand-in that fails (a busy slurmctld): the script
// says so and goes on waiting for the ranks (under set -e the failure ended it, and with it the job's ranks), which
// run to the end; its exit code is theirs.
TEST_F(SlurmTaskTest, AFailedScancelDoesNotEndTheTask) {
    const std::string script = write_task("srun --mpi=pmix --kill-on-bad-exit=1", "exit 1\n");
    const std::string log = root() / "task.log";
    ASSERT_EQ(signalled_task(script, log), 0) << read_file(log);
    expect_has(read_file(log), {"sinklab: could not pass SIGUSR1 to the ranks"});
    EXPECT_TRUE(logged(150)) << read_file(log);
}

// scancel's SIGTERM reaches a launcher that is no srun too, and Open MPI's mpirun then SIGKILLs its ranks 2 s later,
// before they checkpoint: the task makes it wait Slurm's KillWait (odls_base_sigkill_timeout), or what the job set.
TEST_F(SlurmTaskTest, MpirunWaitsSlurmsKillWaitBeforeItsSigkill) {
    write_executable(root() / "bin/mpirun",
                     fmt::format("#!/bin/sh\necho \"$OMPI_MCA_odls_base_sigkill_timeout\" >> {}\nexec \"$@\"\n",
                                 (root() / "timeouts").string()));
    const std::string script = write_task("mpirun", "exit 1\n");
    const CommandResult first = run_command(fmt::format("{} bash {}", env(), script));
    ASSERT_EQ(first.rc, 0) << first.out;
    const CommandResult set =
        run_command(fmt::format("{} OMPI_MCA_odls_base_sigkill_timeout=7 bash {}", env(), script));
    ASSERT_EQ(set.rc, 0) << set.out;
    EXPECT_EQ(read_file(root() / "timeouts"), "45\n7\n");
}

}  // namespace
}  // namespace sinklab::test
