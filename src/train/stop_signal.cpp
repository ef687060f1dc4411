#include "train/stop_signal.h"

#include <csignal>
#include <cstring>

#include "core/process.h"

namespace sinklab {

namespace {

volatile std::sig_atomic_t g_received = 0;
struct sigaction g_previous[kStopSignalCount];
struct sigaction g_previous_pipe;
int g_depth = 0;  // StopSignals alive; only the outermost installs and restores

extern "C" void on_stop_signal(int sig) { g_received = sig; }

}  // namespace

StopSignals::StopSignals() {
    if (g_depth++ > 0) return;
    g_received = 0;
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART;  // the second signal takes the default action: the process ends
    // A signal the run was started ignoring (SIGHUP under nohup) stays ignored.
    for (int i = 0; i < kStopSignalCount; i++) {
        sigaction(kStopSignals[i], nullptr, &g_previous[i]);
        if (g_previous[i].sa_handler != SIG_IGN) sigaction(kStopSignals[i], &sa, nullptr);
    }
    drop_signal(SIGPIPE, &g_previous_pipe);
}

StopSignals::~StopSignals() {
    if (--g_depth > 0) return;
    for (int i = 0; i < kStopSignalCount; i++) sigaction(kStopSignals[i], &g_previous[i], nullptr);
    sigaction(SIGPIPE, &g_previous_pipe, nullptr);
}

int StopSignals::received() { return g_received; }

const char* signal_name(int sig) {
    switch (sig) {
        case SIGTERM: return "SIGTERM";
        case SIGINT: return "SIGINT";
        case SIGUSR1: return "SIGUSR1";
        case SIGHUP: return "SIGHUP";
        default: return "a signal";
    }
}

}  // namespace sinklab
