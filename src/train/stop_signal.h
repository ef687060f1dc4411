// SIGTERM, SIGINT and SIGUSR1 ask a training run to stop cleanly: finish the step, checkpoint, flush the run
// log, exit 0. Slurm sends SIGTERM (or the --signal of the job) before the time limit; under mpirun use
// SIGUSR1, which mpirun forwards to every rank (its SIGTERM kills the ranks a second later). A second signal of
// the same kind ends the process at once, the default way.
#pragma once

namespace sinklab {

class StopSignals {
public:
    StopSignals();   // installs the handlers
    ~StopSignals();  // restores the previous ones
    StopSignals(const StopSignals&) = delete;
    StopSignals& operator=(const StopSignals&) = delete;

    // The signal received since construction, or 0.
    static int received();
};

// "SIGTERM" for 15, ...
const char* signal_name(int sig);

}  // namespace sinklab
