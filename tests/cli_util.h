// Runs the sinklab binary the way a user does, for end-to-end tests.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fs_util.h"

namespace sinklab::test {

// `args` is appended to the binary's path as is (quote what needs quoting); `env` ("A=1 B=2") goes before it.
inline CommandResult run_sinklab(const std::string& args, const std::string& env = "") {
    return run_command(env + (env.empty() ? "" : " ") + std::string(SINKLAB_BINARY) + " " + args);
}

// The words after `label` on the first line of `out` that starts with it (a row of a printed table), as printed;
// empty, and a test failure, when there is none.
inline std::vector<std::string> row_after(const std::string& out, const std::string& label) {
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(label + " ", 0) != 0) continue;
        std::istringstream rest(line.substr(label.size()));
        std::vector<std::string> words;
        for (std::string w; rest >> w;) words.push_back(w);
        return words;
    }
    ADD_FAILURE() << "no row '" << label << "' in\n" << out;
    return {};
}

// Polls `ready` every 20 ms for at most timeout_s seconds; true once it holds.
inline bool wait_until(const std::function<bool()>& ready, double timeout_s) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    while (!ready()) {
        if (std::chrono::steady_clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

// A command running in the background (through /bin/sh, which execs it, so pid() is the command's own),
// its stdout and stderr going to `log`. Killed with SIGKILL if still running when the object goes away.
class Background {
public:
    Background(const std::string& cmd, const std::string& log) {
        pid_ = ::fork();
        if (pid_ == 0) {
            ::execl("/bin/sh", "sh", "-c", ("exec " + cmd + " >" + log + " 2>&1").c_str(), (char*)nullptr);
            ::_exit(127);
        }
    }
    ~Background() {
        if (pid_ > 0 && !exited_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    Background(const Background&) = delete;
    Background& operator=(const Background&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig) const { ::kill(pid_, sig); }
    // Exit code as run_command reports it (128 + signal when killed by one); -1 when it did not end in time.
    int wait(double timeout_s) {
        wait_until([this] { return poll(0); }, timeout_s);
        if (!exited_) return -1;
        return WIFEXITED(status_) ? WEXITSTATUS(status_) : WIFSIGNALED(status_) ? 128 + WTERMSIG(status_) : -1;
    }
    // True once the command has stopped itself (SIGSTOP; SINKLAB_FAULT_INJECT=stop@N) within timeout_s seconds;
    // false at once when it ends instead (wait() then says how).
    bool wait_stopped(double timeout_s) {
        return wait_until([this] { return poll(WUNTRACED); }, timeout_s) && !exited_;
    }

private:
    // True when waitpid reports a change (an end, or a stop with WUNTRACED); an end is kept for wait().
    bool poll(int options) {
        if (exited_) return true;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG | options) != pid_) return false;
        if (!WIFSTOPPED(status)) exited_ = true, status_ = status;
        return true;
    }

    pid_t pid_ = -1;
    bool exited_ = false;
    int status_ = 0;
};

}  // namespace sinklab::test
