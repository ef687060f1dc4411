// Child processes for the commands that drive others (sweep runs `sinklab train`, compare runs the plot
// script): argv vectors instead of shell strings, so that no path or value needs quoting to be passed.
#pragma once
#include <csignal>
#include <string>
#include <vector>

namespace sinklab {

// The signals that ask sinklab to stop cleanly (train/stop_signal.h), and that run_process passes on.
inline constexpr int kStopSignals[] = {SIGTERM, SIGINT, SIGUSR1, SIGHUP};
inline constexpr int kStopSignalCount = sizeof kStopSignals / sizeof kStopSignals[0];

// Catches `sig` with a handler that does nothing, so that the call it interrupts fails with its error (EPIPE for
// SIGPIPE, EFBIG for SIGXFSZ) instead of the process ending. Not SIG_IGN, which the programs this one starts would
// inherit: exec resets a handler. The action it replaces goes to `previous` when given.
void drop_signal(int sig, struct sigaction* previous = nullptr);

struct ProcessResult {
    int exit_code = -1;   // when it exited; -1 when a signal ended it
    int signal = 0;       // the signal that ended it, 0 when it exited
    int stop_signal = 0;  // the last of kStopSignals that reached this process while the child ran, else 0
    bool ok() const { return exit_code == 0; }
    std::string describe() const;  // "exit code 3" / "signal 9 (Killed)"
};

// Runs argv[0] (searched on PATH when it has no '/') with stdin, stdout and stderr shared, and waits for it.
// kStopSignals that reach this process meanwhile are passed on to the child as SIGUSR1, the signal
// on which sinklab train checkpoints and stops and which mpirun and srun pass on to their ranks: a child that also
// got the signal itself (Ctrl-C reaches the whole foreground process group, scancel every process of a job) then
// sees two different signals, each of which it handles once, instead of one signal twice, the second of which
// would end it at once. Fails when argv[0] cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv);

// The word as a POSIX shell reads it back: unchanged when it is made of safe characters, else single-quoted.
std::string shell_quote(const std::string& word);
// The argv as one copy-pasteable shell line.
std::string shell_join(const std::vector<std::string>& argv);
// The words of a command line as a POSIX shell splits them (blanks; '...', "..." and \ quote), for commands given
// as one string and run without a shell. What only a shell could do (an unquoted $ ` ; & | < > ( ) * ? [ ~, a #
// that starts a word) and an unterminated quote are errors naming `what`: quote it, or put the command in a script.
std::vector<std::string> shell_split(const std::string& line, const std::string& what);

// The running executable's absolute path (/proc/self/exe).
std::string self_exe();

}  // namespace sinklab
