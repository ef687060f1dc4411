#!/usr/bin/env bash
# scripts/slurm/train.sbatch and the array job of `sinklab sweep --slurm` under a real Slurm: a one-node cluster of
# the test's own (munged, slurmctld and slurmd with ports and folders of their own, stopped at the end) runs them,
# two ranks a job through `srun --mpi=pmix`, as on a cluster. It checks that
#   - a job signalled as at its time limit checkpoints, requeues itself and resumes to the end, metrics.h5 holding
#     every step once;
#   - a job cancelled with scancel stays cancelled, its ranks checkpointing on the way out, also ranks that mpirun
#     started (LAUNCHER=mpirun) in steps longer than mpirun's own wait before its SIGKILL;
#   - the array task signalled stops and requeues alone, also the task whose own job id is the array's, which
#     names every task of the array;
#   - a command that runs as one process (info) refuses the tasks of `srun -n 2` with one error line, and runs as a
#     batch script's own process; a usage error is said once by the tasks of `srun -n 2`;
#   - a rank that stops without dying (SIGSTOP) is ended with its step by the other rank's hang watchdog.
# Slurm's own USR1 five minutes before the limit (--signal=B:USR1@300) is sent here with `scancel --batch`, which is
# what Slurm does then, so that the test need not wait for a time limit.
# Needs root, Slurm's slurmctld and slurmd, munge and /usr/bin/python3 with h5py (Debian: apt install slurmctld
# slurmd munge; scripts/test.sh installs them when SINKLAB_TEST_SLURM=1, as CI does); without them it is skipped
# (exit 77), and says why.
# Usage: tests/slurm/slurm_scripts_test.sh SINKLAB_BINARY   (KEEP=1 keeps the cluster's folder, logs and runs)
set -euo pipefail
SINKLAB=$(realpath "${1:?usage: slurm_scripts_test.sh SINKLAB_BINARY}")
SOURCE=$(realpath "$(dirname "$0")/../..")
export SINKLAB

skip() { echo "skipped: $*"; exit 77; }
[[ $(id -u) == 0 ]] || skip "not root (slurmd must run as root)"
for tool in slurmctld slurmd munged sbatch scontrol scancel srun; do
    command -v "$tool" >/dev/null || skip "no $tool (apt install slurmctld slurmd munge)"
done
/usr/bin/python3 -c "import h5py" 2>/dev/null || skip "no h5py for /usr/bin/python3"

fail() {
    echo "FAILED: $*" >&2
    for f in "$work"/*.out "$work"/runs/arr/slurm/*.out "$work"/slurmctld.log "$work"/slurmd.log; do
        [[ -e $f ]] && { echo "--- $f (end)" >&2; tail -n 25 "$f" >&2; }
    done
    exit 1
}

# No setting of a real cluster's (a partition, an account) may reach the test's sbatch and srun.
for var in $(compgen -e); do
    [[ $var =~ ^(SLURM|SBATCH|SRUN|SALLOC)_ ]] && unset "$var"
done

# The cluster: munged's socket must be reachable by every user, hence a world-executable folder.
work=$(mktemp -d /tmp/sinklab-slurm-XXXXXX)
chmod 755 "$work"
# Ends the test cluster's jobs (its own slurm.conf named, never another cluster's), then its daemons, whatever
# fails on the way; the test's exit status stays its own.
stop_cluster() {
    set +e
    pkill -P "$watchdog" 2>/dev/null
    kill "$watchdog" 2>/dev/null
    if [[ -e $work/slurmctld.pid ]]; then
        SLURM_CONF=$work/slurm.conf scancel --quiet --user=root 2>/dev/null
        for ((i = 0; i < 150; i++)); do
            [[ -z $(SLURM_CONF=$work/slurm.conf squeue -h 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    for daemon in slurmd slurmctld munged; do
        [[ -e $work/$daemon.pid ]] || continue
        pid=$(cat "$work/$daemon.pid")
        kill "$pid" 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
    done
    [[ -n ${KEEP:-} ]] || rm -rf "$work"
}
# A test that hangs ends itself before ctest's TIMEOUT would kill it, which would leave the daemons behind.
trap 'echo "FAILED: the test ran past 500 s" >&2; exit 1' TERM
(sleep 500 && kill -TERM $$) >/dev/null 2>&1 &
watchdog=$!
trap stop_cluster EXIT

dd if=/dev/urandom of="$work/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge.key"
munged --socket="$work/munge.sock" --key-file="$work/munge.key" --pid-file="$work/munged.pid" \
    --log-file="$work/munged.log" --seed-file="$work/munged.seed"

port=$((20000 + RANDOM % 12000))  # below the kernel's ephemeral ports
node=$(slurmd -C | head -n 1)  # NodeName=<host> CPUs=... as slurmd sees this machine
mkdir -p "$work/state" "$work/spool"
cat >"$work/slurm.conf" <<EOF
ClusterName=sinklabtest
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge.sock,cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ReturnToService=2
JobRequeue=1
KillWait=30
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
export SLURM_CONF=$work/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds.
wait_for() {
    local limit=$1 what=$2 i
    shift 2
    for ((i = 0; i < limit * 5; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    fail "$what: not within ${limit} s"
}
node_idle() { [[ $(sinfo -h -o %T 2>/dev/null) == idle ]]; }
wait_for 60 "the test cluster's node coming up" node_idle

# job_field JOB KEY: KEY's value in `scontrol show job JOB`.
job_field() { scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
job_is() { [[ $(job_field "$1" JobState) == "$2" ]]; }
# at_step JOB RUN STEP: until RUN's train.log has STEP, failing at once when JOB ends first.
at_step() {
    local i
    for ((i = 0; i < 600; i++)); do
        [[ -e $2/train.log ]] && grep -q "step $(printf '%6d' "$3")/" "$2/train.log" && return 0
        [[ $(job_field "$1" JobState) =~ ^(PENDING|RUNNING)$ ]] || fail "job $1 ended before $2 reached step $3"
        sleep 0.2
    done
    fail "$2 at step $3: not within 120 s"
}
# Every optimizer step 1..STEPS once in RUN's metrics.h5.
steps_once() {
    /usr/bin/python3 - "$1/metrics.h5" "$2" <<'EOF' || fail "$1/metrics.h5 does not hold steps 1..$2 once each"
import sys, h5py, numpy as np
steps = h5py.File(sys.argv[1], "r")["train/step"][:]
sys.exit(0 if np.array_equal(steps, np.arange(1, int(sys.argv[2]) + 1)) else 1)
EOF
}
# A requeued job may start again once its last start's credential has expired (cred_expire above), and then waits
# for the scheduler's next pass, up to a minute; the test starts it as soon as it may.
requeued() { (($(job_field "$1" Restarts) >= 1)); }
start_again() {
    wait_for 60 "job $1 requeued" requeued "$1"
    job_is "$1" PENDING || return 0
    local eligible
    eligible=$(date -d "$(job_field "$1" EligibleTime)" +%s)
    while (($(date +%s) <= eligible)); do sleep 0.5; done
    scontrol update JobId="$1" StartTime=now 2>/dev/null || true  # refused when the scheduler was first
}
has() { grep -q -- "$2" "$1" || fail "$1 lacks \"$2\""; }
lacks() { ! grep -q -- "$2" "$1" || fail "$1 has \"$2\""; }

# Small runs paced at 33 steps a second (the fault hook's pause), so that a signal at step 10 finds them mid-way.
cd "$work"
export SINKLAB_FAULT_INJECT=slow=0.03
steps=300
run_args=(--set run.out_dir="$work/runs" --set run.threads=1 --set model.d_model=32 --set model.n_layer=1
    --set model.n_head=2 --set model.d_ff=64 --set model.seq_len=32 --set train.micro_batch=4
    --set train.max_steps="$steps" --set train.warmup_steps=2 --set train.log_every=1 --set checkpoint.every=1000
    --set metrics.val_every=0 --set metrics.wo_std_positions=16 --set data.train="$work/data/train_*.bin"
    --set data.val="" --set data.missing=synthetic)
one_node=(--parsable --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-node=0 --time=10)

echo "== train.sbatch: signalled before its time limit, requeued, resumed"
job=$(sbatch "${one_node[@]}" --output="$work/limit.out" "$SOURCE/scripts/slurm/train.sbatch" \
    "$SOURCE/configs/tiny.yaml" "${run_args[@]}" --set run.name=limit)
at_step "$job" runs/limit 10
scancel --batch --signal=USR1 "$job"
start_again "$job"
wait_for 120 "job $job completing" job_is "$job" COMPLETED
[[ $(job_field "$job" Restarts) == 1 ]] || fail "job $job restarted $(job_field "$job" Restarts) times, not once"
has limit.out "on SIGUSR1: checkpoint written"
has limit.out "before the time limit: requeueing"
has limit.out "restart 1"
has runs/limit/train.log "resumed from"
steps_once runs/limit $steps

echo "== train.sbatch: cancelled, stays cancelled"
job=$(sbatch "${one_node[@]}" --output="$work/cancel.out" "$SOURCE/scripts/slurm/train.sbatch" \
    "$SOURCE/configs/tiny.yaml" "${run_args[@]}" --set run.name=cancel)
at_step "$job" runs/cancel 10
scancel "$job"
ranks_ended() { grep -q "on SIGTERM: checkpoint written" runs/cancel/train.log; }
wait_for 60 "the ranks of job $job checkpointing on SIGTERM" ranks_ended
# The batch script's last lines, where it used to requeue the job.
script_ended() { ! pgrep -f "$work/spool/job$(printf '%05d' "$job")/slurm_script" >/dev/null; }
wait_for 60 "the batch script of job $job ending" script_ended
settled() { [[ ! $(job_field "$job" JobState) =~ ^(RUNNING|COMPLETING|REQUEUED)$ ]]; }
wait_for 60 "job $job settling" settled
job_is "$job" CANCELLED || fail "job $job is $(job_field "$job" JobState) after scancel, not CANCELLED"
[[ $(job_field "$job" Restarts) == 0 ]] || fail "job $job was requeued after scancel"
lacks cancel.out "requeueing"

# Steps of 4 s: Slurm's SIGTERM finds the ranks with seconds of their step to go, longer than mpirun's own
# escalation to SIGKILL takes unless train.sbatch holds it back.
echo "== train.sbatch with LAUNCHER=mpirun: cancelled, its ranks checkpointing within Slurm's KillWait"
job=$(LAUNCHER=mpirun OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 SINKLAB_FAULT_INJECT=slow=4 \
    sbatch "${one_node[@]}" --output="$work/mpirun_cancel.out" "$SOURCE/scripts/slurm/train.sbatch" \
    "$SOURCE/configs/tiny.yaml" "${run_args[@]}" --set run.name=mpirun_cancel)
at_step "$job" runs/mpirun_cancel 1
scancel "$job"
mpirun_ranks_ended() { grep -q "on SIGTERM: checkpoint written" runs/mpirun_cancel/train.log; }
wait_for 60 "the ranks of job $job checkpointing on SIGTERM" mpirun_ranks_ended
compgen -G "runs/mpirun_cancel/checkpoints/step_*" >/dev/null || fail "job $job ended without a checkpoint"

echo "== sweep --slurm: one array task signalled, the other left alone"
cat >suite.yaml <<EOF
base: $SOURCE/configs/tiny.yaml
name: arr
seeds: [1]
variants:
  - name: standard
    set: {attention.variant: standard}
  - name: headnorm
    set: {attention.variant: headnorm}
slurm:
  sbatch: ["--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", "--time=10"]
EOF
"$SINKLAB" sweep suite.yaml --slurm "${run_args[@]}" >sweep.out || fail "sweep --slurm: $(cat sweep.out)"
array=$(sbatch --parsable runs/arr/arr.sbatch)
at_step "${array}_0" runs/arr/standard-s1 10
at_step "${array}_1" runs/arr/headnorm-s1 10
# The task whose own job id is the array's: the one a script naming $SLURM_JOB_ID would stop with every other.
signalled=
for task in 0 1; do [[ $(job_field "${array}_$task" JobId) == "$array" ]] && signalled=$task; done
[[ -n $signalled ]] || fail "no task of array $array has the array's job id"
other=$((1 - signalled))
scancel --batch --signal=USR1 "${array}_$signalled"
start_again "${array}_$signalled"
wait_for 120 "array task $signalled completing" job_is "${array}_$signalled" COMPLETED
wait_for 120 "array task $other completing" job_is "${array}_$other" COMPLETED
for run in standard-s1 headnorm-s1; do steps_once "runs/arr/$run" $steps; done
runs=(standard-s1 headnorm-s1)
has "runs/arr/${runs[signalled]}/train.log" "resumed from"
lacks "runs/arr/${runs[other]}/train.log" "stopped after step"
[[ $(job_field "${array}_$other" Restarts) == 0 ]] || fail "array task $other was requeued with task $signalled"
echo "== a one-process command: refused once under srun -n 2, run from a batch script; a usage error said once"
rc=0
srun -n 2 "$SINKLAB" info "$SOURCE/configs/tiny.yaml" >srun_info.out 2>&1 || rc=$?
((rc != 0)) || fail "srun -n 2 sinklab info succeeded: $(cat srun_info.out)"
refusals=$(grep -c "sinklab info runs as one process, but this is one of 2 tasks that srun started" srun_info.out)
[[ $refusals == 1 ]] || fail "srun -n 2 sinklab info: $refusals refusals, not 1: $(cat srun_info.out)"
# Every task parses the same command line: one says what is wrong with it.
rc=0
srun -n 2 "$SINKLAB" train "$SOURCE/configs/tiny.yaml" --bogus >srun_usage.out 2>&1 || rc=$?
((rc != 0)) || fail "srun -n 2 sinklab train --bogus succeeded: $(cat srun_usage.out)"
refusals=$(grep -c "sinklab: error: The following argument was not expected: --bogus" srun_usage.out)
[[ $refusals == 1 ]] || fail "srun -n 2 sinklab train --bogus: $refusals errors, not 1: $(cat srun_usage.out)"
# The batch script's own process has slurmstepd for a parent too, as a task has, but no step task count.
sbatch --wait --ntasks=2 --output="$work/batch_info.out" \
    --wrap "exec $SINKLAB info $SOURCE/configs/tiny.yaml" >/dev/null || fail "info in a batch script: $(cat batch_info.out)"
has batch_info.out "seq_len 256"

echo "== a rank that stops without dying: the others' hang timeout ends the step, the stopped rank with it"
rc=0
SINKLAB_FAULT_INJECT=stop@4:1 srun -n 2 --mpi=pmix "$SINKLAB" train "$SOURCE/configs/tiny.yaml" "${run_args[@]}" \
    --set run.name=stopped --set fault.hang_timeout=3 >stopped.out 2>&1 || rc=$?
((rc != 0)) || fail "a run with a stopped rank succeeded: $(cat stopped.out)"
has stopped.out "rank 0 of 2: step 4 has not finished"
! pgrep -f "[r]un.name=stopped" >/dev/null || fail "a rank of the stopped run outlived its step"
echo "all passed"
