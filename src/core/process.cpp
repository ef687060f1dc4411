#include "core/process.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>

#include "core/check.h"

extern char** environ;

namespace sinklab {

std::string ProcessResult::describe() const {
    if (signal == 0) return fmt::format("exit code {}", exit_code);
    const char* name = strsignal(signal);
    return fmt::format("signal {} ({})", signal, name ? name : "unknown");
}

namespace {

// Stop signals received while run_process waits: the handler may run on any thread, so these are lock-free atomics.
std::atomic<int> g_stops{0};
std::atomic<int> g_last_stop{0};
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void count_stop(int sig) {
    g_last_stop = sig;
    g_stops++;
}

extern "C" void do_nothing(int) {}

}  // namespace

void drop_signal(int sig, struct sigaction* previous) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = do_nothing;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(sig, &sa, previous);
}

ProcessResult run_process(const std::vector<std::string>& argv) {
    SL_ASSERT(!argv.empty(), "run_process needs a program");
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    // A stop signal this process ignores (SIGHUP under nohup) stays ignored, here and in the child; but for SIGUSR1,
    // the signal that passes stops on, which the child must take.
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGUSR1);
    struct sigaction counting = {};
    struct sigaction old_actions[kStopSignalCount] = {};
    counting.sa_handler = count_stop;
    sigemptyset(&counting.sa_mask);
    counting.sa_flags = SA_RESTART;
    g_stops = 0;
    g_last_stop = 0;
    for (int i = 0; i < kStopSignalCount; i++) {
        sigaction(kStopSignals[i], nullptr, &old_actions[i]);
        if (old_actions[i].sa_handler == SIG_IGN) continue;
        sigaddset(&stops, kStopSignals[i]);
        sigaction(kStopSignals[i], &counting, nullptr);
    }

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigdefault(&attr, &stops);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    const int rc = posix_spawnp(&pid, args[0], nullptr, &attr, args.data(), environ);
    posix_spawnattr_destroy(&attr);
    int status = 0;
    if (rc == 0) {
        // Each stop signal is passed on once, from here: the handler may have run before the child's pid was known.
        // WNOWAIT keeps the ended child a zombie, its pid taken, until no signal can be sent to it any more.
        int passed = 0;
        for (;;) {
            siginfo_t ended = {};
            const int got = waitid(P_PID, id_t(pid), &ended, WEXITED | WNOWAIT | WNOHANG);
            if ((got == 0 && ended.si_pid == pid) || (got < 0 && errno != EINTR)) break;
            for (; passed < g_stops; passed++) kill(pid, SIGUSR1);
            usleep(50000);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    for (int i = 0; i < kStopSignalCount; i++) sigaction(kStopSignals[i], &old_actions[i], nullptr);
    SL_REQUIRE(rc == 0, "cannot start {}: {}; check that it exists and is executable", argv[0], std::strerror(rc));

    ProcessResult r;
    if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
    r.stop_signal = g_last_stop;
    return r;
}

std::string shell_quote(const std::string& word) {
    const bool safe = !word.empty() && word.find_first_not_of(
                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                           "0123456789_./=:,+-@%") == std::string::npos;
    if (safe) return word;
    std::string out = "'";
    for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string shell_join(const std::vector<std::string>& argv) {
    std::string line;
    for (const std::string& a : argv) {
        if (!line.empty()) line += ' ';
        line += shell_quote(a);
    }
    return line;
}

std::vector<std::string> shell_split(const std::string& line, const std::string& what) {
    std::vector<std::string> words;
    std::string word;
    bool in_word = false;
    const auto refuse = [&](const char* why) {
        fail("{} '{}' {}: it runs without a shell, so quote the character or put the command in a script", what,
             line, why);
    };
    for (size_t i = 0; i < line.size(); i++) {
        const char c = line[i];
        if (c == ' ' || c == '\t' || c == '\n') {
            if (in_word) words.push_back(std::move(word));
            word.clear();
            in_word = false;
        } else if (c == '\'') {
            const size_t end = line.find('\'', i + 1);
            if (end == std::string::npos) refuse("has a ' with no closing one");
            word.append(line, i + 1, end - i - 1);
            i = end;
            in_word = true;
        } else if (c == '"') {
            for (i++;; i++) {
                if (i >= line.size()) refuse("has a \" with no closing one");
                if (line[i] == '"') break;
                // Inside double quotes a backslash quotes only these, and before a newline joins the lines.
                if (line[i] == '\\' && i + 1 < line.size() && std::strchr("\"\\$`\n", line[i + 1])) {
                    if (line[++i] != '\n') word += line[i];
                    continue;
                }
                if (line[i] == '$' || line[i] == '`') refuse("expands $ or ` inside \"...\"");
                word += line[i];
            }
            in_word = true;
        } else if (c == '\\') {
            if (i + 1 == line.size()) refuse("ends in a \\");
            if (line[++i] == '\n') continue;
            word += line[i];
            in_word = true;
        } else if (std::strchr("$`;&|<>()*?[~", c) || (c == '#' && !in_word)) {
            refuse(fmt::format("has an unquoted {}", c).c_str());
        } else {
            word += c;
            in_word = true;
        }
    }
    if (in_word) words.push_back(std::move(word));
    return words;
}

std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

}  // namespace sinklab
