// SIGTERM, SIGINT, SIGUSR1 and SIGHUP ask a training run to stop cleanly: finish the step, checkpoint, flush the
// run log, exit 0. Slurm sends SIGTERM (or the --signal of the job) before the time limit; under mpirun use
// SIGUSR1, which mpirun forwards to every rank (its SIGTERM kills the ranks a second later); SIGHUP comes when the
// terminal of a run closes (one started under nohup ignores it, and goes on). A signal the process was started
// ignoring stays ignored. A second signal of the same kind ends the process at once, the default way. Meanwhile
// SIGPIPE is caught and dropped: a run whose stdout was a pipe that closed (`| head`) goes on, logging to train.log
// only, instead of dying mid-step without a checkpoint.
#pragma once

namespace sinklab {

class StopSignals {
public:
    // Installs the handlers and restores the previous ones; one made while another lives does nothing, so that the
    // train command can take signals from its first moment and the trainer's own, made later, keeps what came.
    StopSignals();
    ~StopSignals();
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    // The signal received since the outermost was made, or 0.
    static int received();
};

// "SIGTERM" for 15, ...
const char* signal_name(int sig);

}  // namespace sinklab
